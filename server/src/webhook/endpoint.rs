//! The webhook endpoints under the backend's base URL; each is also the `endpoint` label of
//! the webhook series.

use crate::metrics::labels::label_values;

label_values! {
    /// One webhook endpoint under the base URL.
    pub(crate) enum Endpoint {
        /// `POST {base}/verify`: login verification.
        verify,
        /// `POST {base}/offline`: offline message hand-off.
        offline,
        /// `POST {base}/events`: batched event notifications.
        events,
    }
}

impl Endpoint {
    /// The path under the base URL.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Self::verify => "verify",
            Self::offline => "offline",
            Self::events => "events",
        }
    }
}
