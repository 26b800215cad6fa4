//! The defaults of the API's request bodies that MobileIMSDK's clients also assume, shared by
//! every operation that takes a message (pushes, and messages sent in a user's name).

/// `typeu` when the caller sets none: -1, as MobileIMSDK's clients send.
pub(crate) fn unset_typeu() -> i32 {
    -1
}

/// QoS when the caller says nothing: on, MobileIMSDK's default.
pub(crate) fn yes() -> bool {
    true
}
