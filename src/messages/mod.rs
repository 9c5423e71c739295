//! The typed messages the actors exchange, one file per hop of the data path:
//!
//! ```text
//! QueueReader --Lookup--> LookupActor --Publish--> PublisherActor --Record--> ResultWriter
//!      ^                      |                          |                        |
//!      +------Settle----------+--------------------------+------------------------+
//! ```
//!
//! A task travels as a [`Delivery`] (how to acknowledge it, and the payload as
//! received) until its outcome is final; [`Settle`] hands it back to the
//! QueueReader, which removes it from Redis. At start the ResultWriter sends
//! [`Recovered`]: results written just before a crash. Before acting where
//! a stalled consumer could do harm, the publisher and the writer ask the
//! QueueReader whether a task is still ours ([`Fence`]).

mod control;
mod delivery;
mod fence;
mod lookup;
mod publish;
mod record;
mod settle;

pub use control::{Drained, Release, StopIntake};
pub use delivery::{Delivery, Payload, Receipt};
pub use fence::{Fence, FenceAnswer, FencePurpose, Fenced};
pub use lookup::{Job, Lookup};
pub use publish::{Found, Publish};
pub use record::{Published, Record, Recovered};
pub use settle::{Outcome, Settle, Settled};
