//! How the components reach what [`Chat`](super::Chat) provides: the [`ChatState`] signal and
//! the [`SessionHandle`].

use leptos::prelude::*;

use crate::session::SessionHandle;
use crate::state::ChatState;

/// The state signal from context.
pub(super) fn use_chat_state() -> RwSignal<ChatState> {
    expect_context::<RwSignal<ChatState>>()
}

/// The session handle from context.
pub(super) fn use_session() -> SessionHandle {
    expect_context::<SessionHandle>()
}
