//! QoS building blocks shared by the clients and the server: the retransmitting send queue
//! and the receiver's de-duplication window. Both are plain data structures driven by `now`.

mod dedup;
mod send_queue;

pub use dedup::{DEDUP_BYTES_PER_ENTRY, DEDUP_ENTRY_OVERHEAD, DedupConfig, DedupWindow};
pub use send_queue::{Retransmit, RetransmitSchedule, SendQueue};
