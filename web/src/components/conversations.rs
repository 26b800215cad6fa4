//! The conversation list and the "new chat" box.

use hongyan_shared::UserId;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;

use super::context::use_chat_state;
use crate::state::{Author, ChatState, Conversation, Delivery};

/// What one row of the list shows; a change in any of it re-renders the row.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Row {
    peer: UserId,
    title: String,
    preview: String,
    unread: usize,
    selected: bool,
    system: bool,
}

impl Row {
    fn of(conversation: &Conversation, state: &ChatState) -> Self {
        let preview = conversation.last.as_ref().map_or_else(String::new, |m| {
            let text: String = m.text.chars().take(60).collect();
            match (m.author, m.delivery) {
                (Author::Me, Some(Delivery::Lost)) => format!("✕ {text}"),
                (Author::Me, _) => format!("You: {text}"),
                _ => text,
            }
        });
        Self {
            peer: conversation.peer.clone(),
            title: conversation.title(),
            preview,
            unread: conversation.unread,
            selected: state.selected() == Some(&conversation.peer),
            system: conversation.peer.is_server(),
        }
    }
}

/// Every conversation, most recent first, with its unread count (`#conversations`).
#[component]
pub fn ConversationList() -> impl IntoView {
    let state = use_chat_state();
    let rows = Memo::new(move |_| {
        state.with(|s| {
            s.conversations()
                .iter()
                .map(|c| Row::of(c, s))
                .collect::<Vec<_>>()
        })
    });
    view! {
        <ul id="conversations" class="conversations">
            <For each=move || rows.get() key=|row| row.clone() let(row)>
                <ConversationRow row />
            </For>
        </ul>
        <Show when=move || rows.with(Vec::is_empty)>
            <p class="empty">"No conversations yet. Enter a user id above to start one."</p>
        </Show>
    }
}

#[component]
fn ConversationRow(row: Row) -> impl IntoView {
    let state = use_chat_state();
    let peer = row.peer.clone();
    let open = move || state.update(|s| s.select(peer.clone()));
    let open_on_key = open.clone();
    view! {
        <li
            class="conversation"
            class:selected=row.selected
            class:system=row.system
            data-peer=row.peer.to_string()
            role="button"
            tabindex="0"
            aria-current=row.selected.then_some("true")
            on:click=move |_| open()
            on:keydown=move |ev: KeyboardEvent| {
                if ev.key() == "Enter" || ev.key() == " " {
                    ev.prevent_default();
                    open_on_key();
                }
            }
        >
            <span class="avatar" aria-hidden="true">
                {row.title.chars().next().map(String::from).unwrap_or_default()}
            </span>
            <span class="name">{row.title.clone()}</span>
            <span class="preview">{row.preview.clone()}</span>
            {(row.unread > 0)
                .then(|| {
                    view! {
                        <span class="unread" aria-label="unread messages">
                            {row.unread}
                        </span>
                    }
                })}
        </li>
    }
}

/// A box to open a conversation with any user id (`#new-chat`).
#[component]
pub fn NewChat() -> impl IntoView {
    let state = use_chat_state();
    let peer = RwSignal::new(String::new());
    let open = move |ev: SubmitEvent| {
        ev.prevent_default();
        let id = peer.with_untracked(|p| p.trim().to_owned());
        if id.is_empty() || id == UserId::UNSET {
            return;
        }
        state.update(|s| s.select(UserId::from(id)));
        peer.set(String::new());
    };
    view! {
        <form id="new-chat" class="new-chat" on:submit=open>
            <input
                id="peer-id"
                placeholder="Chat with user id…"
                autocomplete="off"
                prop:value=move || peer.get()
                on:input=move |ev| peer.set(event_target_value(&ev))
            />
            <button id="open-chat" type="submit">
                "Chat"
            </button>
        </form>
    }
}
