//! The soak's ledger: every QoS message a client sent, what its sender was told, and where it
//! arrived; every client instance and what happened to its link. At the end it is audited
//! against what the application heard ([`Heard`]) and the acknowledgements the proxies
//! dropped ([`Audit`]).
//!
//! Events of one message come from different tasks in any order (an acknowledgement can be
//! handled before the send that caused it has been recorded), so each record is filled in by
//! whichever comes first.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::backend::Heard;

/// How long after acknowledging a message to its sender the server may hold it only in
/// memory: a message for an online receiver goes from memory (docs/PROTOCOL.md §6.6) and is
/// stored only once its retransmissions run out (the server's schedule: a 5 s tick, one retry
/// after 2 s), and a client → server message is handed to the application through an
/// in-memory webhook queue. A SIGKILL in that time loses it: the acknowledgement's promise,
/// "handed to the online receiver or durably stored", does not survive the process.
pub const CRASH_WINDOW: Duration = Duration::from_secs(15);

/// The moments the server was killed with SIGKILL.
pub type Kills = [Instant];

/// Whether a kill falls within [`CRASH_WINDOW`] after `acked` (or just before it: the
/// acknowledgement may reach the client through a proxy's delay after the server died).
fn crash_after(acked: Instant, kills: &Kills) -> bool {
    crash_window_kills(acked, kills).next().is_some()
}

/// The kills [`crash_after`] counts for a message acknowledged at `acked`.
fn crash_window_kills(acked: Instant, kills: &Kills) -> impl Iterator<Item = Instant> + '_ {
    kills
        .iter()
        .copied()
        .filter(move |&kill| kill + Duration::from_secs(1) >= acked && kill <= acked + CRASH_WINDOW)
}

/// Where a message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// To another user.
    C2c {
        /// The receiver.
        to: String,
    },
    /// To the server's application.
    C2s,
}

/// What a sender was told of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged.
    Delivered,
    /// Retries ran out, or the session ended with it pending.
    Lost,
}

#[derive(Debug, Default)]
struct Message {
    from: String,
    kind: Option<Kind>,
    instance: u64,
    /// The sender instance's link events when it was sent.
    link_events_at_send: u64,
    /// Each report: what, the sender's link events then, whether its session was ending.
    outcomes: Vec<(Outcome, u64, bool)>,
    /// When the first report came.
    reported_at: Option<Instant>,
    /// Each arrival: the receiving instance and its user.
    received: Vec<(u64, String)>,
}

#[derive(Debug, Default)]
struct Instance {
    /// Link losses, and re-logins after a 301: anything after which acknowledgements of what
    /// was sent before may not arrive.
    link_events: u64,
    /// Its session is ending: logged out deliberately, or kicked.
    ending: bool,
    online: u64,
    kicked: bool,
}

#[derive(Debug, Default)]
struct Inner {
    messages: HashMap<String, Message>,
    instances: HashMap<u64, Instance>,
    next_instance: u64,
    send_refused: usize,
    logins_refused: usize,
}

/// Everything the clients did and were told.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("no client task panics while holding the ledger")
    }

    /// A new client instance; its id.
    pub fn new_instance(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_instance += 1;
        let id = inner.next_instance;
        inner.instances.insert(id, Instance::default());
        id
    }

    /// Instance `instance` of `from` sent QoS message `fp`.
    pub fn sent(&self, fp: &str, from: &str, instance: u64, kind: Kind) {
        let mut inner = self.lock();
        let link_events = inner.instances.get(&instance).map_or(0, |i| i.link_events);
        let message = inner.messages.entry(fp.to_owned()).or_default();
        message.from = from.to_owned();
        message.kind = Some(kind);
        message.instance = instance;
        message.link_events_at_send = link_events;
    }

    /// `fp`, recorded as sent, was refused by the client: it never left.
    pub fn unsent(&self, fp: &str) {
        self.lock().messages.remove(fp);
    }

    /// A send the client refused.
    pub fn send_refused(&self) {
        self.lock().send_refused += 1;
    }

    /// Instance `instance` was told `outcome` of `fp`.
    pub fn outcome(&self, instance: u64, fp: &str, outcome: Outcome) {
        let mut inner = self.lock();
        let (link_events, ending) = inner
            .instances
            .get(&instance)
            .map_or((0, false), |i| (i.link_events, i.ending));
        let message = inner.messages.entry(fp.to_owned()).or_default();
        message.outcomes.push((outcome, link_events, ending));
        message.reported_at.get_or_insert_with(Instant::now);
    }

    /// Instance `instance` of `user` received QoS message `fp` (once per instance: its
    /// session drops duplicates, and the audit counts any that get through).
    pub fn received(&self, instance: u64, user: &str, fp: &str) {
        let mut inner = self.lock();
        let message = inner.messages.entry(fp.to_owned()).or_default();
        message.received.push((instance, user.to_owned()));
    }

    /// Instance `instance` lost its link or had to log in again.
    pub fn link_event(&self, instance: u64) {
        if let Some(i) = self.lock().instances.get_mut(&instance) {
            i.link_events += 1;
        }
    }

    /// Instance `instance` is being logged out, or was kicked: what it still has pending is
    /// reported lost as its session ends.
    pub fn ending(&self, instance: u64) {
        if let Some(i) = self.lock().instances.get_mut(&instance) {
            i.ending = true;
        }
    }

    /// Instance `instance` was kicked out.
    pub fn kicked(&self, instance: u64) {
        if let Some(i) = self.lock().instances.get_mut(&instance) {
            i.kicked = true;
            i.ending = true;
        }
    }

    /// Instance `instance` came online (a login, or a re-login).
    pub fn online(&self, instance: u64) {
        if let Some(i) = self.lock().instances.get_mut(&instance) {
            i.online += 1;
        }
    }

    /// A login was refused.
    pub fn login_refused(&self) {
        self.lock().logins_refused += 1;
    }

    /// Messages sent; of them, those with no outcome yet, and those acknowledged that have
    /// not arrived (C2C: at the receiver; C2S: at the application) and the server has not
    /// given up on either, nor lost in a crash (see [`CRASH_WINDOW`]).
    pub fn pending(&self, heard: &Heard, kills: &Kills) -> (usize, usize, usize) {
        let inner = self.lock();
        let mut sent = 0;
        let mut unsettled = 0;
        let mut undelivered = 0;
        for (fp, m) in &inner.messages {
            let Some(kind) = &m.kind else { continue };
            sent += 1;
            match m.outcomes.first() {
                None => unsettled += 1,
                Some((Outcome::Delivered, ..))
                    if !arrived(fp, m, kind, heard)
                        && !given_up(fp, kind, heard)
                        && !m.reported_at.is_some_and(|at| crash_after(at, kills)) =>
                {
                    undelivered += 1;
                }
                Some(_) => {}
            }
        }
        (sent, unsettled, undelivered)
    }

    /// The audit of the whole run.
    pub fn audit(&self, heard: &Heard, dropped_acks: &HashSet<String>, kills: &Kills) -> Audit {
        let inner = self.lock();
        let mut a = Audit {
            send_refused: inner.send_refused,
            logins_refused: inner.logins_refused,
            instances: inner.instances.len(),
            kicked_instances: inner.instances.values().filter(|i| i.kicked).count(),
            logins: inner.instances.values().map(|i| i.online).sum(),
            link_events: inner.instances.values().map(|i| i.link_events).sum(),
            ..Audit::default()
        };
        for (fp, m) in &inner.messages {
            let Some(kind) = &m.kind else {
                if m.outcomes.is_empty() {
                    a.received_never_sent += 1;
                } else {
                    a.outcome_never_sent += 1;
                }
                continue;
            };
            match kind {
                Kind::C2c { .. } => a.sent_c2c += 1,
                Kind::C2s => a.sent_c2s += 1,
            }
            // What arrived: each instance at most once, only at the addressee.
            let mut instances = HashSet::new();
            let mut users = HashSet::new();
            for (instance, user) in &m.received {
                if !instances.insert(*instance) {
                    a.duplicates += 1;
                }
                users.insert(user.as_str());
                match kind {
                    Kind::C2c { to } if to == user => {}
                    _ => a.misdelivered += 1,
                }
            }
            a.again_at_another_instance += instances.len().saturating_sub(users.len());
            let delivered = arrived(fp, m, kind, heard);
            if let Kind::C2s = kind
                && let Some(times) = heard.c2s.get(&(m.from.clone(), fp.clone()))
                && times.len() > 1
            {
                // The server's de-duplication window lives in its memory: a copy the sender
                // sent again after a crash (its acknowledgement lost with the process) is
                // handed over again, which the application must drop itself (§6.3).
                let first = times.iter().min().expect("more than one");
                let last = times.iter().max().expect("more than one");
                if kills.iter().any(|kill| first <= kill && kill <= last) {
                    a.c2s_again_after_crash += times.len() - 1;
                } else {
                    a.duplicates += times.len() - 1;
                }
            }
            // What its sender was told: exactly once.
            let Some(&(outcome, link_events, ending)) = m.outcomes.first() else {
                a.unsettled += 1;
                continue;
            };
            if m.outcomes.len() > 1 {
                a.reported_twice += 1;
            }
            match outcome {
                Outcome::Delivered => {
                    a.acked += 1;
                    if delivered {
                        continue;
                    }
                    if given_up(fp, kind, heard) {
                        a.acked_then_given_up_by_server += 1;
                    } else if let Some(at) = m.reported_at
                        && crash_after(at, kills)
                    {
                        a.acked_lost_in_crash += 1;
                        // 0 for a kill just before the acknowledgement reached the client.
                        let before = crash_window_kills(at, kills)
                            .map(|kill| kill.saturating_duration_since(at))
                            .min()
                            .unwrap_or_default();
                        a.acked_lost_in_crash_ms_before = a
                            .acked_lost_in_crash_ms_before
                            .max(before.as_millis() as u64);
                    } else {
                        a.acked_but_lost += 1;
                    }
                }
                Outcome::Lost => {
                    a.reported_lost += 1;
                    if !delivered {
                        continue;
                    }
                    a.lost_but_delivered += 1;
                    if dropped_acks.contains(fp) {
                        a.lost_but_delivered_ack_dropped += 1;
                    } else if link_events > m.link_events_at_send {
                        a.lost_but_delivered_link_lost += 1;
                    } else if ending {
                        a.lost_but_delivered_session_ended += 1;
                    } else {
                        a.lost_but_delivered_unexplained += 1;
                    }
                }
            }
        }
        a
    }
}

/// Whether `m` (`fp`) reached where it was going: a C2C message an instance of its
/// receiver, a C2S message the server's application.
fn arrived(fp: &str, m: &Message, kind: &Kind, heard: &Heard) -> bool {
    match kind {
        Kind::C2c { to } => m.received.iter().any(|(_, user)| user == to),
        Kind::C2s => heard.c2s.contains_key(&(m.from.clone(), fp.to_owned())),
    }
}

/// Whether the server told the application it gave up delivering C2C message `fp`.
fn given_up(fp: &str, kind: &Kind, heard: &Heard) -> bool {
    match kind {
        Kind::C2c { to } => heard.s2c_lost.contains(&(to.clone(), fp.to_owned())),
        Kind::C2s => false,
    }
}

/// What the audit found. The fields a correct server and client keep at zero are named in
/// [`violations`](Self::violations).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Audit {
    /// C2C QoS messages sent.
    pub sent_c2c: usize,
    /// C2S QoS messages sent.
    pub sent_c2s: usize,
    /// Sends the client refused.
    pub send_refused: usize,
    /// Messages their sender saw acknowledged.
    pub acked: usize,
    /// Messages their sender was told were lost.
    pub reported_lost: usize,
    /// Messages with no outcome at all.
    pub unsettled: usize,
    /// Messages reported more than once.
    pub reported_twice: usize,
    /// Acknowledged, and never arrived, and the server never said it gave up.
    pub acked_but_lost: usize,
    /// Acknowledged, then not acknowledged by the receiver after the server's retries, which
    /// the server reported to the application (`s2cLost`): the server's part of the promise,
    /// kept by reporting (the message store will keep these instead).
    pub acked_then_given_up_by_server: usize,
    /// Acknowledged, never arrived, and the server was killed within [`CRASH_WINDOW`] of
    /// the acknowledgement, while the message may have been only in its memory.
    pub acked_lost_in_crash: usize,
    /// Of those, the longest time from the acknowledgement to the kill, ms: how long a
    /// message was only in the server's memory at most.
    pub acked_lost_in_crash_ms_before: u64,
    /// Copies an application was handed twice: one client instance, or the server's
    /// application for one C2S fingerprint.
    pub duplicates: usize,
    /// Copies of a C2S message handed to the server's application again after a server
    /// crash (its de-duplication window died with it).
    pub c2s_again_after_crash: usize,
    /// Copies that arrived at a later instance of a receiver that already had it (after a
    /// duplicate-login kick or a reconnection as a new instance): two devices, each seeing it
    /// once.
    pub again_at_another_instance: usize,
    /// Arrivals at someone other than the addressee.
    pub misdelivered: usize,
    /// Reported lost, yet it arrived.
    pub lost_but_delivered: usize,
    /// … because an acknowledgement of it was dropped by the network.
    pub lost_but_delivered_ack_dropped: usize,
    /// … because the sender's link was lost (or it had to log in again) while it was pending.
    pub lost_but_delivered_link_lost: usize,
    /// … because the sender's session ended (logout, kick) while it was pending.
    pub lost_but_delivered_session_ended: usize,
    /// … with none of those reasons.
    pub lost_but_delivered_unexplained: usize,
    /// Arrivals of a fingerprint no client sent.
    pub received_never_sent: usize,
    /// Outcomes of a fingerprint no client sent.
    pub outcome_never_sent: usize,
    /// Client instances started.
    pub instances: usize,
    /// Instances kicked out by a duplicate login.
    pub kicked_instances: usize,
    /// Times instances came online (logins and re-logins).
    pub logins: u64,
    /// Link losses and re-logins after a 301.
    pub link_events: u64,
    /// Logins refused: by the application, or because its verification did not answer in
    /// time (an overloaded machine, not a broken promise).
    pub logins_refused: usize,
}

impl Audit {
    /// Every broken promise, by name; empty when the run kept them all.
    pub fn violations(&self) -> Vec<String> {
        [
            ("messages with no outcome", self.unsettled),
            ("messages reported twice", self.reported_twice),
            ("acknowledged but lost", self.acked_but_lost),
            ("duplicates seen by an application", self.duplicates),
            ("messages delivered to the wrong user", self.misdelivered),
            (
                "reported lost and delivered, unexplained",
                self.lost_but_delivered_unexplained,
            ),
            ("arrivals never sent", self.received_never_sent),
            ("outcomes never sent", self.outcome_never_sent),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{what}: {n}"))
        .collect()
    }
}
