//! QueueReader -> LookupActor: parsed tasks whose id is not yet published.

use actix::Message;

use super::{Delivery, Outcome, Settled};
use crate::task::Task;

/// A task taken from the queue and parsed.
#[derive(Debug, Clone)]
pub struct Job {
    pub delivery: Delivery,
    pub task: Task,
}

impl Job {
    /// This task, settled with `outcome`.
    pub fn settled(self, outcome: Outcome) -> Settled {
        Settled { task_id: Some(self.task.id), delivery: self.delivery, outcome }
    }
}

/// Look these tasks' devices up. `backlog`: the fetch that brought the
/// latest of them was full, so the queue likely holds more right now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Lookup {
    pub jobs: Vec<Job>,
    pub backlog: bool,
}
