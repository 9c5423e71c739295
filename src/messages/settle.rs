//! Any actor -> QueueReader: tasks whose outcome is final.

use actix::Message;
use tokio::sync::oneshot;

use super::Delivery;
use crate::metrics::TaskOutcome;

#[derive(Debug, Clone)]
pub enum Outcome {
    /// The results line is durable.
    Published { url: String },
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
    /// The task's id; `None` for a payload that did not parse.
    pub task_id: Option<String>,
    pub outcome: Outcome,
}

/// Remove these tasks from Redis (dead-lettering the dead, recording the
/// published). `durable`, when given, is answered once that is done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Settle {
    pub items: Vec<Settled>,
    pub durable: Option<oneshot::Sender<()>>,
}

impl Settle {
    pub fn new(items: Vec<Settled>) -> Settle {
        Settle { items, durable: None }
    }
}
