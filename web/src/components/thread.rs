//! The open conversation's messages.

use hongyan_shared::UserId;
use leptos::html;
use leptos::prelude::*;

use super::context::{use_chat_state, use_session};
use crate::state::{
    ChatMessage, ChatState, Delivery, Earlier, MessageId, MessageKey, display_name,
};

/// How close to the top (in CSS pixels) scrolling loads earlier messages, and how close to
/// the bottom counts as reading the newest (so new messages keep it in view).
const EDGE_PX: i32 = 48;

/// The messages with the selected peer, oldest first (`#thread`); each `li.message` has
/// `data-author` (`me`, `peer`, `server`), `data-seq` once the history numbered it, and, for
/// ours, `data-status`. Scrolling to the top (or the "Load earlier messages" button,
/// `#load-earlier`) loads the page before the first message shown; the view stays where it
/// was. New messages keep the thread at the bottom when it was there.
#[component]
pub fn Thread() -> impl IntoView {
    let state = use_chat_state();
    let session = use_session();
    let peer = Memo::new(move |_| state.with(|s| s.selected().cloned()));
    let messages =
        Memo::new(move |_| state.with(|s| s.selected().map(|p| s.thread(p)).unwrap_or_default()));
    let earlier =
        Memo::new(move |_| state.with(|s| s.selected().map_or(Earlier::None, |p| s.earlier(p))));
    let list = NodeRef::<html::Ol>::new();
    // Whether the view is at the newest message, and the list's height and scroll offset as
    // last seen: what keeps the view still when a page is put above it.
    let at_bottom = StoredValue::new(true);
    let last_seen = StoredValue::new((0, 0));
    let remember = move |list: &web_sys::HtmlOListElement| {
        let (top, height) = (list.scroll_top(), list.scroll_height());
        last_seen.set_value((top, height));
        at_bottom.set_value(top + list.client_height() >= height - EDGE_PX);
    };
    let backfiller = session.clone();
    let load_earlier = Callback::new(move |()| {
        let Some(peer) = peer.get_untracked() else {
            return;
        };
        if let Some(list) = list.get_untracked() {
            remember(&list);
        }
        if let Some(before) = state.try_update(|s| s.begin_earlier(&peer)).flatten() {
            session.fetch_earlier(peer, before);
        }
    });
    // Messages shown without a seq that the catch-up did not reach: load earlier pages,
    // where they usually are, so they take their place.
    let backfill = Memo::new(move |_| state.with(ChatState::backfill_due));
    Effect::new(move |_| {
        if let Some((peer, _)) = backfill.get() {
            if let Some(list) = list.get_untracked() {
                remember(&list);
            }
            if let Some(before) = state.try_update(|s| s.begin_backfill(&peer)).flatten() {
                backfiller.fetch_earlier(peer, before);
            }
        }
    });
    let on_scroll = move |_| {
        let Some(list) = list.get_untracked() else {
            return;
        };
        remember(&list);
        if list.scroll_top() < EDGE_PX
            && matches!(earlier.get_untracked(), Earlier::Available { .. })
        {
            load_earlier.run(());
        }
    };
    let edges = Memo::new(move |_| {
        messages.with(|m| Edges {
            peer: peer.get(),
            first: m.first().map(|m| m.key),
            last: m.last().map(|m| (m.key, m.delivery.is_some())),
        })
    });
    Effect::new(move |before: Option<Edges>| {
        let now = edges.get();
        if let Some(list) = list.get() {
            keep_in_view(
                &list,
                before.as_ref(),
                &now,
                at_bottom.get_value(),
                last_seen.get_value(),
            );
            remember(&list);
        }
        now
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
        <ol id="thread" class="thread" node_ref=list on:scroll=on_scroll>
            {move || match earlier.get() {
                Earlier::Available { .. } => {
                    view! {
                        <li class="earlier">
                            <button id="load-earlier" on:click=move |_| load_earlier.run(())>
                                "Load earlier messages"
                            </button>
                        </li>
                    }
                        .into_any()
                }
                Earlier::Loading => {
                    view! { <li class="earlier loading" aria-busy="true">"Loading earlier messages…"</li> }
                        .into_any()
                }
                Earlier::None => ().into_any(),
            }}
            <For each=move || messages.get() key=|m| (m.key, m.delivery) let(message)>
                <MessageRow message />
            </For>
        </ol>
    }
}

/// What the thread's scrolling depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Edges {
    peer: Option<UserId>,
    first: Option<MessageKey>,
    /// The last message, and whether it is ours.
    last: Option<(MessageKey, bool)>,
}

/// Scrolls `list` after its messages changed from `before` to `now`: to the bottom for
/// another thread, for a message of ours, or for a new one while the reader was at the
/// bottom; by the height of a page put above the view, so what the reader sees stays put.
fn keep_in_view(
    list: &web_sys::HtmlOListElement,
    before: Option<&Edges>,
    now: &Edges,
    at_bottom: bool,
    (top, height): (i32, i32),
) {
    let to_bottom = || list.set_scroll_top(list.scroll_height());
    let Some(before) = before.filter(|b| b.peer == now.peer) else {
        to_bottom();
        return;
    };
    if before.last != now.last {
        let ours = now.last.is_some_and(|(_, ours)| ours);
        if at_bottom || ours {
            to_bottom();
        }
    } else if before.first != now.first {
        list.set_scroll_top(top + list.scroll_height() - height);
    }
}

#[component]
fn MessageRow(message: ChatMessage) -> impl IntoView {
    let author = message.author.key();
    let status = message.delivery.map(Delivery::key);
    let fp = message.fp.as_ref().map(ToString::to_string);
    let retry_id = message.local_id();
    let dom_id = format!("m-{}", message.key.dom_id());
    let seq = message.seq().map(|seq| seq.to_string());
    let mark = message
        .delivery
        .map(|delivery| view! { <DeliveryMark id=retry_id delivery /> });
    view! {
        <li
            class=format!("message {author}")
            id=dom_id
            data-author=author
            data-status=status
            data-seq=seq
            data-fp=fp
        >
            <div class="bubble">
                <p class="text">{message.text}</p>
                {mark}
            </div>
        </li>
    }
}

#[component]
fn DeliveryMark(id: Option<MessageId>, delivery: Delivery) -> impl IntoView {
    let state = use_chat_state();
    let session = use_session();
    let retry = move |_| {
        let again = id.and_then(|id| state.try_update(|s| s.retry(id)).flatten());
        if let Some(again) = again {
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
