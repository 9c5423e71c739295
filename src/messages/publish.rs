//! LookupActor -> PublisherActor: tasks whose device was found.

use actix::Message;

use super::Delivery;
use crate::task::Task;

/// A task with the account bound to its device.
#[derive(Debug, Clone)]
pub struct Found {
    pub delivery: Delivery,
    pub task: Task,
    pub username: String,
}

/// Publish these documents.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub Vec<Found>);
