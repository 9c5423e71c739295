//! Any actor -> QueueReader: tasks whose outcome is final.

use actix::Message;

use super::Delivery;
use crate::metrics::TaskOutcome;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The results line is durable.
    Published { id: String, url: String },
    /// No account is bound to the device.
    NotFound,
    /// The id was already published while its record is kept.
    Duplicate,
    /// Malformed, or rejected by the paste service `max_attempts` times.
    Dead { error: String },
}

impl Outcome {
    pub fn kind(&self) -> TaskOutcome {
        match self {
            Outcome::Published { .. } => TaskOutcome::Published,
            Outcome::NotFound => TaskOutcome::NotFound,
            Outcome::Duplicate => TaskOutcome::Duplicate,
            Outcome::Dead { .. } => TaskOutcome::Dead,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settled {
    pub delivery: Delivery,
    pub outcome: Outcome,
}

/// Remove these tasks from Redis (dead-lettering those that are dead).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle(pub Vec<Settled>);
