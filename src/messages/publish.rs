//! LookupActor -> PublisherActor: tasks whose device was found.

use actix::Message;

use super::{Delivery, Job, Outcome, Settled};
use crate::task::Task;

/// A task with the account bound to its device.
#[derive(Debug, Clone)]
pub struct Found {
    pub delivery: Delivery,
    pub task: Task,
    pub username: String,
}

impl Found {
    /// The task as it was before the lookup.
    pub fn job(&self) -> Job {
        Job { delivery: self.delivery.clone(), task: self.task.clone() }
    }

    /// This task, settled with `outcome`.
    pub fn settled(self, outcome: Outcome) -> Settled {
        Settled { task_id: Some(self.task.id), delivery: self.delivery, outcome }
    }
}

/// Publish these documents.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<Found>);
