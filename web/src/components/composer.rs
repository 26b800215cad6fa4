//! The message box.

use hongyan_shared::Outgoing;
use leptos::ev::{KeyboardEvent, SubmitEvent};
use leptos::prelude::*;

use super::context::{use_chat_state, use_session};
use crate::session::new_fingerprint;
use crate::state::{ComposeError, check_outgoing};

/// A text area and a send button (`#composer`). Enter sends, Shift+Enter breaks the line, and
/// Enter that confirms an IME composition (Chinese, Japanese…) does neither.
#[component]
pub fn Composer() -> impl IntoView {
    let state = use_chat_state();
    let session = use_session();
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let enabled = move || state.with(|s| s.selected().is_some() && s.connection().can_compose());

    let send = move || {
        let outcome = state.with_untracked(|s| {
            let me = s.me().ok_or(ComposeError::NoPeer)?;
            let peer = s.selected().ok_or(ComposeError::NoPeer)?;
            let outgoing = Outgoing::new(peer.clone(), text.get_untracked());
            check_outgoing(me, &outgoing)?;
            Ok::<_, ComposeError>(outgoing)
        });
        match outcome {
            Ok(outgoing) => {
                // Chosen here, not by the session, so the recorded message can follow the
                // session's reports on it.
                let outgoing = outgoing.with_fingerprint(new_fingerprint());
                state.update(|s| {
                    s.record_outgoing(&outgoing);
                });
                session.send(outgoing);
                text.set(String::new());
                error.set(None);
            }
            Err(ComposeError::Empty) => {}
            Err(e) => error.set(Some(e.to_string())),
        }
    };
    let send_on_enter = send.clone();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        send();
    };
    let on_keydown = move |ev: KeyboardEvent| {
        if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
            ev.prevent_default();
            send_on_enter();
        }
    };

    view! {
        <form id="composer" class="composer" on:submit=on_submit>
            <textarea
                id="message-input"
                rows="2"
                placeholder="Message"
                prop:disabled=move || !enabled()
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=on_keydown
            ></textarea>
            <button id="send" type="submit" prop:disabled=move || !enabled()>
                "Send"
            </button>
        </form>
        <p class="error compose-error" role="alert">
            {move || error.get()}
        </p>
    }
}
