//! The Leptos components of the H5 client. Each reads the [`ChatState`] signal and the
//! [`SessionHandle`] from context; [`App`] provides both, and tests can provide their own with
//! [`Chat`].
//!
//! - `login.rs`: [`LoginScreen`], the login form.
//! - `chat.rs`: [`ChatScreen`], the header with status and logout, and the two panes.
//! - `conversations.rs`: [`ConversationList`] with unread counts, and [`NewChat`].
//! - `thread.rs`: [`Thread`], the messages of the open conversation with their ticks.
//! - `composer.rs`: [`Composer`], the message box.
//! - `context.rs`: how the components reach the state and the session handle that [`Chat`]
//!   provides.

mod chat;
mod composer;
mod context;
mod conversations;
mod login;
mod thread;

use leptos::prelude::*;

pub use chat::{ChatScreen, StatusBadge};
pub use composer::Composer;
pub use conversations::{ConversationList, NewChat};
pub use login::LoginScreen;
pub use thread::Thread;

use crate::session::{self, SessionHandle, remembered};
use crate::state::ChatState;

/// The whole application: a fresh state and a session driver on a gloo-net WebSocket.
#[component]
pub fn App() -> impl IntoView {
    let state = RwSignal::new(ChatState::new());
    let session = session::spawn(state);
    // A reload of a tab that was logged in logs in again at once.
    if let Some(request) = remembered::load().and_then(|form| form.validate().ok()) {
        state.update(|s| s.begin_login(request.user_id()));
        session.login(request);
    }
    // Once the session is over for good, a reload shows the login screen.
    let ended = Memo::new(move |_| state.with(|s| s.connection().is_final()));
    Effect::new(move |_| {
        if ended.get() {
            remembered::forget();
        }
    });
    let handle = session.clone();
    on_cleanup(move || handle.shutdown());
    view! { <Chat state session /> }
}

/// The application around a given state and session handle: the login screen while logged
/// out or refused, the chat screen otherwise.
#[component]
pub fn Chat(
    /// The client's state, shared with the session driver.
    state: RwSignal<ChatState>,
    /// Where the components send login, send and logout commands.
    session: SessionHandle,
) -> impl IntoView {
    provide_context(state);
    provide_context(session);
    let total_unread = Memo::new(move |_| state.with(ChatState::total_unread));
    Effect::new(move |_| {
        let title = match total_unread.get() {
            0 => "鸿雁 hongyan".to_owned(),
            n => format!("({n}) 鸿雁 hongyan"),
        };
        if let Some(document) = web_sys::window().and_then(|w| w.document()) {
            document.set_title(&title);
        }
    });
    // Reading the open thread moves the read position on the server (and so the unread count
    // of this user's other clients, at their next sync).
    let read_due = Memo::new(move |_| state.with(ChatState::read_due));
    let reader = use_context::<SessionHandle>().expect("provided above");
    Effect::new(move |_| {
        if let Some((peer, seq)) = read_due.get() {
            reader.mark_read(peer, seq);
        }
    });
    let chat_showing =
        Memo::new(move |_| state.with(|s| s.me().is_some() && s.connection().shows_chat()));
    view! {
        <div class="app">
            <Show when=move || chat_showing.get() fallback=|| view! { <LoginScreen /> }>
                <ChatScreen />
            </Show>
        </div>
    }
}
