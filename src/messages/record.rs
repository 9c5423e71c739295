//! PublisherActor -> ResultWriter: tasks with the URL of their paste; and
//! ResultWriter -> QueueReader at start: what the results file holds that
//! Redis may not know yet.

use actix::Message;

use super::Found;

#[derive(Debug, Clone)]
pub struct Published {
    pub found: Found,
    pub url: String,
}

/// Append these results durably, then settle the tasks.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Record(pub Vec<Published>);

/// Sent once at start: (id, url) of the lines written after the last
/// checkpoint, whose tasks may not have been settled before a crash, and the
/// results file's id. The QueueReader records those lines as published
/// before it takes any task.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Recovered {
    pub lines: Vec<(String, String)>,
    pub file_id: String,
}
