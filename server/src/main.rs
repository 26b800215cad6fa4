//! The `hongyan` binary.

fn main() {}
