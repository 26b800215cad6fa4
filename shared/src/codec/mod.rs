//! Byte-level codecs: the packet JSON and the TCP length-prefixed frame.

pub mod frame;
pub mod json;
