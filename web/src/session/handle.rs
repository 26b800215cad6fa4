//! The UI's end of the session driver: the [`Command`]s it understands and the
//! [`SessionHandle`] that queues them.

use futures::channel::mpsc;
use hongyan_shared::{Outgoing, UserId};

use crate::state::LoginRequest;

/// What the UI asks of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Log in (replacing any finished session) and stay logged in.
    Login(LoginRequest),
    /// Send a message the UI has recorded as `Sending`, under its fingerprint.
    Send(Outgoing),
    /// Tell the server the user has read the conversation with `peer` up to `seq`.
    MarkRead {
        /// The conversation's other member.
        peer: UserId,
        /// The newest message read.
        seq: u64,
    },
    /// Load the page of the conversation with `peer` before seq `before`.
    FetchEarlier {
        /// The conversation's other member.
        peer: UserId,
        /// The seq of the first message shown.
        before: u64,
    },
    /// Log out: the session sends a logout and ends.
    Logout,
    /// The app is being torn down: log out and stop the driver.
    Shutdown,
}

/// The UI's end of the session driver. Cheap to clone; every clone talks to the same driver.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl SessionHandle {
    /// A handle whose commands arrive on the returned receiver instead of a driver: for tests
    /// of the components, and for the driver itself.
    pub fn detached() -> (Self, mpsc::UnboundedReceiver<Command>) {
        let (commands, receiver) = mpsc::unbounded();
        (Self { commands }, receiver)
    }

    /// Queues `command` for the driver. After the driver stopped this does nothing.
    pub fn command(&self, command: Command) {
        if self.commands.unbounded_send(command).is_err() {
            log::debug!("session driver has stopped; command dropped");
        }
    }

    /// Logs in with a validated form.
    pub fn login(&self, request: LoginRequest) {
        self.command(Command::Login(request));
    }

    /// Sends a message the UI has already recorded as `Sending`.
    pub fn send(&self, outgoing: Outgoing) {
        self.command(Command::Send(outgoing));
    }

    /// Tells the server the user has read the conversation with `peer` up to `seq`.
    pub fn mark_read(&self, peer: UserId, seq: u64) {
        self.command(Command::MarkRead { peer, seq });
    }

    /// Loads the page of the conversation with `peer` before seq `before`.
    pub fn fetch_earlier(&self, peer: UserId, before: u64) {
        self.command(Command::FetchEarlier { peer, before });
    }

    /// Logs out.
    pub fn logout(&self) {
        self.command(Command::Logout);
    }

    /// Stops the driver (logging out first).
    pub fn shutdown(&self) {
        self.command(Command::Shutdown);
    }
}
