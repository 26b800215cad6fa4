//! Shared helpers for hongyan end-to-end tests.
