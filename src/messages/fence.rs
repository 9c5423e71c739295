//! PublisherActor and ResultWriter -> QueueReader: is this task still ours?
//!
//! Asked before a paste when the task's claim may have lapsed (its lease
//! epoch is not the live one, [`crate::lease`]), and before every group
//! commit of lines, always: then the claim becomes the write record, so that
//! no other consumer redoes a task whose line may be on disk.

use actix::Message;

use super::Job;

/// What a fence is for: before a paste, the claim is renewed; before a
/// line, it becomes the write record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FencePurpose {
    Publish,
    Write,
}

#[derive(Message)]
#[rtype(result = "Vec<FenceAnswer>")]
pub struct Fence {
    pub purpose: FencePurpose,
    pub jobs: Vec<Job>,
}

/// The answers to a [`Fence`], delivered as a message of their own to the
/// actor that asked ([`crate::actors::ask_fence`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Fenced(pub Vec<FenceAnswer>);

/// One answer per job, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceAnswer {
    /// Still ours, proven in this lease epoch: go on.
    Go { epoch: u64 },
    /// Not ours to act on: the QueueReader has taken it back (to settle it
    /// as a duplicate, or to look again later) or dropped it (another
    /// consumer took it over). Forget it.
    Dropped,
}
