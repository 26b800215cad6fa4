//! The components in a real browser (wasm-bindgen-test, headless Chromium): what the DOM shows
//! for a given state, and which commands the user's clicks send to the session.
//!
//! Run with `cargo test -p hongyan-web --target wasm32-unknown-unknown` (scripts/test does).
#![cfg(target_arch = "wasm32")]

use futures::channel::mpsc::UnboundedReceiver;
use hongyan_shared::client::{HistoryEvent, ReceivedMessage};
use hongyan_shared::history::{ConversationInfo, HistoryMessage};
use hongyan_shared::{Fingerprint, Outgoing, UserId};
use hongyan_web::components::Chat;
use hongyan_web::session::{Command, SessionHandle};
use hongyan_web::state::{ChatState, SessionUpdate};
use leptos::mount::mount_to;
use leptos::prelude::*;
use leptos::task::tick;
use leptos::wasm_bindgen::JsCast;
use leptos::web_sys::{self, HtmlElement};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The app mounted in its own `<div>` with a state the test controls and a session handle
/// whose commands the test reads.
struct Mounted {
    root: HtmlElement,
    state: RwSignal<ChatState>,
    commands: UnboundedReceiver<Command>,
    _handle: leptos::mount::UnmountHandle<leptos::tachys::view::any_view::AnyViewState>,
}

impl Mounted {
    fn new(state: ChatState) -> Self {
        let document = web_sys::window().unwrap().document().unwrap();
        let root: HtmlElement = document.create_element("div").unwrap().unchecked_into();
        document.body().unwrap().append_child(&root).unwrap();
        let state = RwSignal::new(state);
        let (session, commands) = SessionHandle::detached();
        let handle = mount_to(root.clone(), move || {
            view! { <Chat state session /> }.into_any()
        });
        Self {
            root,
            state,
            commands,
            _handle: handle,
        }
    }

    fn find(&self, css: &str) -> Option<HtmlElement> {
        self.root
            .query_selector(css)
            .unwrap()
            .map(|e| e.unchecked_into())
    }

    fn get(&self, css: &str) -> HtmlElement {
        self.find(css)
            .unwrap_or_else(|| panic!("no {css} in {}", self.root.inner_html()))
    }

    fn count(&self, css: &str) -> u32 {
        self.root.query_selector_all(css).unwrap().length()
    }

    fn text(&self, css: &str) -> String {
        self.get(css).text_content().unwrap_or_default()
    }

    /// Types `value` into an input or textarea the way a user does (an `input` event).
    fn type_into(&self, css: &str, value: &str) {
        let element = self.get(css);
        js_sys_set(&element, "value", value);
        element
            .dispatch_event(&web_sys::Event::new("input").unwrap())
            .unwrap();
    }

    fn next_command(&mut self) -> Option<Command> {
        self.commands.try_recv().ok()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.root.remove();
    }
}

fn js_sys_set(element: &HtmlElement, property: &str, value: &str) {
    let ok = js_sys::Reflect::set(element, &property.into(), &value.into()).unwrap();
    assert!(ok, "set {property}");
}

fn fp(n: u128) -> Fingerprint {
    Fingerprint::from_random(n)
}

fn chatting_alice() -> ChatState {
    let mut state = ChatState::new();
    state.begin_login(UserId::from("alice"));
    state.apply(SessionUpdate::LoggedIn);
    state
}

#[wasm_bindgen_test]
async fn login_form_explains_a_bad_user_id_then_sends_a_login() {
    let mut app = Mounted::new(ChatState::new());
    tick().await;
    assert!(
        app.get("#server")
            .unchecked_into::<web_sys::HtmlInputElement>()
            .value()
            .ends_with("/websocket"),
        "the server defaults to this page's origin at /websocket"
    );

    app.get("#login-button").click();
    tick().await;
    assert_eq!(app.text("#login-error"), "enter a user id (not 0 or -1)");
    assert!(app.next_command().is_none());

    app.type_into("#user-id", "alice");
    app.type_into("#token", "secret");
    app.get("#login-button").click();
    tick().await;
    match app.next_command() {
        Some(Command::Login(request)) => {
            assert_eq!(request.user_id(), UserId::from("alice"));
            assert_eq!(request.info.login_token.as_deref(), Some("secret"));
        }
        other => panic!("expected a login, got {other:?}"),
    }
    assert_eq!(
        app.get("#status").get_attribute("data-state").as_deref(),
        Some("connecting"),
        "the chat screen shows while the login is under way"
    );
}

#[wasm_bindgen_test]
async fn sent_message_shows_sending_then_delivered() {
    let mut app = Mounted::new(chatting_alice());
    tick().await;
    app.type_into("#peer-id", "bob");
    app.get("#open-chat").click();
    tick().await;
    app.type_into("#message-input", "hello 👋 世界");
    app.get("#send").click();
    tick().await;

    let Some(Command::Send(outgoing)) = app.next_command() else {
        panic!("the composer sends a message");
    };
    assert_eq!(outgoing.content, "hello 👋 世界");
    assert_eq!(outgoing.to, UserId::from("bob"));
    assert!(outgoing.qos, "the browser sends with QoS");
    let fp = outgoing
        .fp
        .expect("the composer gives each message its fingerprint");
    let row = format!("li.message[data-fp=\"{fp}\"]");
    assert_eq!(
        app.get(&row).get_attribute("data-status").as_deref(),
        Some("sending")
    );
    assert_eq!(app.text(&format!("{row} .text")), "hello 👋 世界");
    assert_eq!(
        app.get("#message-input")
            .unchecked_into::<web_sys::HtmlTextAreaElement>()
            .value(),
        "",
        "the composer is cleared"
    );

    app.state.update(|s| s.apply(SessionUpdate::Delivered(fp)));
    tick().await;
    assert_eq!(
        app.get(&row).get_attribute("data-status").as_deref(),
        Some("delivered")
    );
}

#[wasm_bindgen_test]
async fn lost_message_offers_a_retry_under_the_same_fingerprint() {
    let mut state = chatting_alice();
    state.select(UserId::from("bob"));
    state.record_outgoing(&Outgoing::new("bob", "are you there?").with_fingerprint(fp(1)));
    state.apply(SessionUpdate::Lost(fp(1)));
    let mut app = Mounted::new(state);
    tick().await;
    assert_eq!(app.count("li.message[data-status=\"lost\"] .retry"), 1);

    app.get(".retry").click();
    tick().await;
    match app.next_command() {
        Some(Command::Send(again)) => assert_eq!(again.fp, Some(fp(1))),
        other => panic!("expected a resend, got {other:?}"),
    }
    assert_eq!(app.count(".retry"), 0);
    assert_eq!(app.count("li.message[data-status=\"sending\"]"), 1);
}

#[wasm_bindgen_test]
async fn unread_badges_count_messages_in_closed_conversations() {
    let app = Mounted::new(chatting_alice());
    app.state.update(|s| {
        for (n, text) in [(1, "one"), (2, "two"), (2, "two again")] {
            s.apply(SessionUpdate::Received(ReceivedMessage {
                fp: Some(fp(n)),
                from: UserId::from("carol"),
                to: UserId::from("alice"),
                content: text.to_owned(),
                typeu: -1,
                qos: true,
                sm: -1,
                seq: None,
            }));
        }
    });
    tick().await;
    assert_eq!(
        app.text("li.conversation[data-peer=\"carol\"] .unread"),
        "2",
        "the retransmitted message counts once"
    );
    app.get("li.conversation[data-peer=\"carol\"]").click();
    tick().await;
    assert_eq!(app.count(".unread"), 0);
    assert_eq!(app.count("#thread li.message[data-author=\"peer\"]"), 2);
}

#[wasm_bindgen_test]
async fn kickout_and_reconnecting_are_shown_in_the_status() {
    let app = Mounted::new(chatting_alice());
    tick().await;
    app.state.update(|s| s.apply(SessionUpdate::LinkLost));
    tick().await;
    assert_eq!(app.text("#status"), "Connection lost, reconnecting…");
    app.state.update(|s| {
        s.apply(SessionUpdate::KickedOut {
            code: 1,
            reason: None,
        })
    });
    tick().await;
    assert_eq!(
        app.get("#status").get_attribute("data-state").as_deref(),
        Some("kicked-out")
    );
    assert_eq!(app.text("#status"), "You logged in elsewhere");
    assert_eq!(app.text("#logout"), "Log in again");
}

/// Alice's state after a login: bob's conversation is in the history with `newest`
/// messages, of which she has read `read`, and the newest `shown` have been fetched.
fn alice_with_history(newest: u64, read: u64, shown: u64) -> ChatState {
    let mut state = chatting_alice();
    let bob = UserId::from("bob");
    state.apply(SessionUpdate::History(HistoryEvent::Conversations {
        epoch: 1,
        conversations: vec![ConversationInfo {
            peer: bob.clone(),
            newest,
            read,
            unread: newest - read,
            at: 10,
        }],
    }));
    let from = newest - shown + 1;
    state.apply(SessionUpdate::History(HistoryEvent::Page {
        peer: bob,
        from,
        through: newest,
        messages: (from..=newest)
            .map(|seq| HistoryMessage {
                seq,
                from: UserId::from("bob"),
                fp: Some(fp(u128::from(seq))),
                typeu: -1,
                at: 10,
                content: Some(format!("message {seq}")),
            })
            .collect(),
        older: false,
        more: false,
    }));
    state
}

#[wasm_bindgen_test]
async fn history_shows_unread_then_opening_the_thread_sends_the_read_position() {
    let mut app = Mounted::new(alice_with_history(12, 9, 12));
    tick().await;
    let bob = "li.conversation[data-peer=\"bob\"]";
    assert_eq!(app.text(&format!("{bob} .unread")), "3");
    assert_eq!(app.text(&format!("{bob} .preview")), "message 12");
    assert!(app.next_command().is_none(), "nothing is read while closed");

    app.get(bob).click();
    tick().await;
    assert_eq!(app.count("#thread li.message[data-seq]"), 12);
    match app.next_command() {
        Some(Command::MarkRead { peer, seq }) => {
            assert_eq!((peer.as_str(), seq), ("bob", 12));
        }
        other => panic!("expected the read position, got {other:?}"),
    }
    assert_eq!(app.count(".unread"), 0);
}

#[wasm_bindgen_test]
async fn load_earlier_asks_for_the_page_before_the_first_message_shown() {
    let mut state = alice_with_history(150, 150, 100);
    state.select(UserId::from("bob"));
    let mut app = Mounted::new(state);
    tick().await;
    assert_eq!(app.count("#thread li.message"), 100);
    app.get("#load-earlier").click();
    tick().await;
    match app.next_command() {
        Some(Command::FetchEarlier { peer, before }) => {
            assert_eq!((peer.as_str(), before), ("bob", 51));
        }
        other => panic!("expected a request for earlier messages, got {other:?}"),
    }
    assert_eq!(app.count("#load-earlier"), 0);
    assert_eq!(app.count(".earlier.loading"), 1);
}
