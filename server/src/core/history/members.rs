//! [`Members`]: a conversation's two members, borrowed from a message, which find its counter
//! and its recent messages without building a [`Conversation`].

use std::hash::BuildHasher;

use hashlink::DefaultHashBuilder;
use hongyan_shared::UserId;
use hongyan_store::Conversation;

/// A conversation's members in id order, borrowed from a message: finds its counter without
/// building a [`Conversation`].
#[derive(Clone, Copy)]
pub(crate) struct Members<'a> {
    pub(super) low: &'a UserId,
    pub(super) high: &'a UserId,
}

impl<'a> Members<'a> {
    /// The members of the conversation between `a` and `b`, in either order.
    pub(crate) fn between(a: &'a UserId, b: &'a UserId) -> Self {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        Self { low, high }
    }

    /// Whether `member` is the one whose id sorts first.
    pub(crate) fn is_low(&self, member: &UserId) -> bool {
        member == self.low
    }

    /// Whether `conversation` is theirs.
    pub(super) fn is(&self, conversation: &Conversation) -> bool {
        conversation.low() == self.low && conversation.high() == self.high
    }

    /// Their conversation, owned.
    pub(super) fn conversation(&self) -> Conversation {
        Conversation::between(self.low, self.high)
    }

    /// The hash `hasher` gives their conversation (a `Conversation` hashes its members in
    /// order, as this pair does).
    pub(super) fn hash(&self, hasher: &DefaultHashBuilder) -> u64 {
        hasher.hash_one((self.low, self.high))
    }
}
