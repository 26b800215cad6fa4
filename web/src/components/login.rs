//! The login screen.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use super::context::{use_chat_state, use_session};
use crate::session::remembered;
use crate::state::{ConnectionStatus, LoginForm, default_server_url};

/// The server URL for this page: its own origin at `/websocket`.
fn page_server_url() -> String {
    let location = web_sys::window().map(|w| w.location());
    let protocol = location
        .as_ref()
        .and_then(|l| l.protocol().ok())
        .unwrap_or_default();
    let host = location
        .as_ref()
        .and_then(|l| l.host().ok())
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    default_server_url(&protocol, &host)
}

/// User id, token, optional extra and server URL; shows why the last login failed.
#[component]
pub fn LoginScreen() -> impl IntoView {
    let state = use_chat_state();
    let session = use_session();
    let mut initial = LoginForm::with_server(page_server_url());
    initial.user_id = state.with_untracked(|s| s.me().map(ToString::to_string).unwrap_or_default());
    let form = RwSignal::new(initial);
    let form_error = RwSignal::new(None::<String>);
    let refused = move || {
        state.with(|s| match s.connection() {
            status @ ConnectionStatus::LoginRefused { .. } => Some(status.describe()),
            _ => None,
        })
    };

    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match form.with_untracked(LoginForm::validate) {
            Ok(request) => {
                form_error.set(None);
                form.with_untracked(remembered::save);
                state.update(|s| s.begin_login(request.user_id()));
                session.login(request);
            }
            Err(error) => form_error.set(Some(error.to_string())),
        }
    };

    view! {
        <form id="login" class="login" on:submit=submit novalidate>
            <h1 class="brand">"鸿雁" <small>"hongyan"</small></h1>
            <label>
                "User id"
                <input
                    id="user-id"
                    name="user-id"
                    autocomplete="username"
                    autofocus
                    prop:value=move || form.with(|f| f.user_id.clone())
                    on:input=move |ev| form.update(|f| f.user_id = event_target_value(&ev))
                />
            </label>
            <label>
                "Token"
                <input
                    id="token"
                    name="token"
                    type="password"
                    autocomplete="current-password"
                    prop:value=move || form.with(|f| f.token.clone())
                    on:input=move |ev| form.update(|f| f.token = event_target_value(&ev))
                />
            </label>
            <label>
                "Extra " <span class="hint">"(optional)"</span>
                <input
                    id="extra"
                    name="extra"
                    prop:value=move || form.with(|f| f.extra.clone())
                    on:input=move |ev| form.update(|f| f.extra = event_target_value(&ev))
                />
            </label>
            <details class="server">
                <summary>"Server"</summary>
                <input
                    id="server"
                    name="server"
                    type="url"
                    prop:value=move || form.with(|f| f.server.clone())
                    on:input=move |ev| form.update(|f| f.server = event_target_value(&ev))
                />
            </details>
            <p id="login-error" class="error" role="alert">
                {move || form_error.get().or_else(refused)}
            </p>
            <button id="login-button" type="submit">
                "Log in"
            </button>
        </form>
    }
}
