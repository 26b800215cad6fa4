//! Unit tests of the core rules.
