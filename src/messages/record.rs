//! PublisherActor -> ResultWriter: tasks with the URL of their paste.

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
