//! The open conversation's messages.

use leptos::html;
use leptos::prelude::*;

use super::context::{use_chat_state, use_session};
use crate::state::{Author, ChatMessage, Delivery, MessageId, display_name};

/// The messages with the selected peer, oldest first (`#thread`); each `li.message` has
/// `data-author` (`me`, `peer`, `server`) and, for ours, `data-status`.
#[component]
pub fn Thread() -> impl IntoView {
    let state = use_chat_state();
    let peer = Memo::new(move |_| state.with(|s| s.selected().cloned()));
    let messages = move || {
        state.with(|s| {
            s.selected()
                .and_then(|p| s.conversation(p))
                .map(|c| c.messages.clone())
                .unwrap_or_default()
        })
    };
    let list = NodeRef::<html::Ol>::new();
    let count = Memo::new(move |_| {
        state.with(|s| {
            s.selected()
                .and_then(|p| s.conversation(p))
                .map_or(0, |c| c.messages.len())
        })
    });
    // Keep the newest message in view.
    Effect::new(move |_| {
        count.track();
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });
    let back = move |_| state.update(|s| s.deselect());
    view! {
        <div class="thread-head">
            <button class="back" on:click=back aria-label="Back to conversations">
                "‹"
            </button>
            <h2 id="peer-name">
                {move || peer.with(|p| p.as_ref().map(display_name).unwrap_or_default())}
            </h2>
        </div>
        <Show when=move || peer.with(Option::is_none)>
            <p class="placeholder">"Choose a conversation, or start one with a user id."</p>
        </Show>
        <ol id="thread" class="thread" node_ref=list>
            <For each=messages key=|m| (m.id, m.delivery) let(message)>
                <MessageRow message />
            </For>
        </ol>
    }
}

#[component]
fn MessageRow(message: ChatMessage) -> impl IntoView {
    let author = match message.author {
        Author::Me => "me",
        Author::Peer => "peer",
        Author::Server => "server",
    };
    let status = message.delivery.map(Delivery::key);
    let fp = message.fp.as_ref().map(ToString::to_string);
    view! {
        <li
            class=format!("message {author}")
            id=format!("m{}", message.id.get())
            data-author=author
            data-status=status
            data-fp=fp
        >
            <div class="bubble">
                <p class="text">{message.text}</p>
                {message.delivery.map(|delivery| view! { <DeliveryMark id=message.id delivery /> })}
            </div>
        </li>
    }
}

#[component]
fn DeliveryMark(id: MessageId, delivery: Delivery) -> impl IntoView {
    let state = use_chat_state();
    let session = use_session();
    let retry = move |_| {
        if let Some(again) = state.try_update(|s| s.retry(id)).flatten() {
            session.send(again);
        }
    };
    match delivery {
        Delivery::Sending => {
            view! { <span class="tick sending" title="Sending">"🕓 sending"</span> }.into_any()
        }
        Delivery::Delivered => {
            view! { <span class="tick delivered" title="Delivered">"✓ delivered"</span> }.into_any()
        }
        Delivery::Lost => view! {
            <span class="tick lost" title="Not delivered">
                "✕ not delivered "
                <button class="retry" on:click=retry>
                    "Retry"
                </button>
            </span>
        }
        .into_any(),
    }
}
