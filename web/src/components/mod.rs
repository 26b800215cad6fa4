//! The Leptos components of the H5 client.

use leptos::prelude::*;

/// The whole application.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <main class="app">
            <h1>"鸿雁 hongyan"</h1>
        </main>
    }
}
