//! The chat screen: header, conversation list and thread.

use leptos::prelude::*;

use super::composer::Composer;
use super::context::{use_chat_state, use_session};
use super::conversations::{ConversationList, NewChat};
use super::thread::Thread;

/// The connection status as a coloured badge (`#status`, `data-state` = the status key).
#[component]
pub fn StatusBadge() -> impl IntoView {
    let state = use_chat_state();
    let status = Memo::new(move |_| state.with(|s| s.connection().clone()));
    view! {
        <span id="status" class="status" data-state=move || status.with(|s| s.key()) role="status">
            {move || status.with(|s| s.describe())}
        </span>
    }
}

/// Header, then the conversation list and the open thread side by side (one at a time on a
/// phone).
#[component]
pub fn ChatScreen() -> impl IntoView {
    let state = use_chat_state();
    let session = use_session();
    let me = move || state.with(|s| s.me().map(ToString::to_string).unwrap_or_default());
    let thread_open = move || state.with(|s| s.selected().is_some());
    let ended = move || state.with(|s| s.connection().is_final());
    let leave = move |_| {
        session.logout();
        state.update(|s| s.leave());
    };
    view! {
        <div class="chat" class:thread-open=thread_open>
            <header class="topbar">
                <span class="brand">"鸿雁"</span>
                <span id="me" class="me">{me}</span>
                <StatusBadge />
                <button id="logout" class="logout" on:click=leave>
                    {move || if ended() { "Log in again" } else { "Log out" }}
                </button>
            </header>
            <div class="panes">
                <aside class="sidebar">
                    <NewChat />
                    <ConversationList />
                </aside>
                <section class="conversation-pane">
                    <Thread />
                    <Composer />
                </section>
            </div>
        </div>
    }
}
