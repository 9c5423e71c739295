//! QueueReader -> LookupActor: tasks taken from the queue, not yet parsed.

use actix::Message;

use super::Delivery;

/// Parse these tasks and look their devices up.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Lookup(pub Vec<Delivery>);
