//! Shutdown control, from the pipeline to the QueueReader.

use actix::Message;

/// Take no more tasks from Redis.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopIntake;

/// Resolves when no task is in flight any more.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drained;

/// Give what is still in flight back to the queue and leave the consumer
/// group; answers how many tasks went back.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Release;
