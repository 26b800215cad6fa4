//! The core's protocol rules, driven without sockets or sleeps: sessions on in-memory pipes,
//! a manual clock, hooks that record what they are told.
//!
//! - `harness`: the test server ([`Harness`](harness::Harness)) and its peers.
//! - `dispatch`: the type table, 301, keepalive, echo, malformed and unknown input.
//! - `login`: verification, reserved ids, re-login, duplicate logins, `firstLoginTime`.
//! - `messages`: C2S, C2C, ACK matching, QoS without a fingerprint.
//! - `kickout`: what each kind of pipe does with a kickout.
//! - `deadlines`: idle expiry, retransmission and loss, a stalled outbox.
//! - `amplification`: answers to a spoofable peer that has not logged in, login included.
//! - `bounds`: what is refused once a bound is reached; the login deadline.
//! - `limits`: the abuse limits: messages per session, logins per address and in total,
//!   exemptions.
//! - `store`: store and forward on a memory store: storing, replay, order, limits, expiry.
//! - `as_user`: messages sent in a user's name; an HTTP session's pipe rules.

mod amplification;
mod as_user;
mod bounds;
mod deadlines;
mod dispatch;
mod harness;
mod kickout;
mod limits;
mod login;
mod messages;
mod store;
