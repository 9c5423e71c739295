//! A task as it came off the queue, and how to acknowledge it.

use std::time::Instant;

use bytes::Bytes;

/// How a task is acknowledged in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Receipt {
    /// List mode: the task's fetch (its number, unique within the queue,
    /// names its field in this consumer's processing hash) and its place in it.
    List { fetch: u64, index: u32 },
    /// Stream mode: the entry id, acknowledged with XACK.
    Stream(String),
}

impl Receipt {
    /// The bytes Redis knows this task by: in list mode its fetch's field
    /// (shared by the tasks of one fetch), in stream mode the entry id.
    pub fn key(&self) -> Bytes {
        match self {
            Receipt::List { fetch, .. } => Bytes::from(format!("b{fetch}")),
            Receipt::Stream(id) => Bytes::copy_from_slice(id.as_bytes()),
        }
    }
}

/// One task in flight: its receipt, the payload as received, when it was
/// taken (for latency), and how many times Redis has delivered it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub receipt: Receipt,
    /// The raw JSON (list mode) or the entry's fields (stream mode).
    pub payload: Payload,
    pub taken_at: Instant,
    /// Stream mode counts deliveries; list mode cannot and says 1.
    pub deliveries: u32,
    /// The lease epoch in which our claim of it was last confirmed
    /// ([`crate::lease`]); 0, never confirmed, until its id is claimed.
    pub lease_epoch: u64,
}

#[derive(Debug, Clone)]
pub enum Payload {
    Json(Bytes),
    Fields(Vec<(Bytes, Bytes)>),
}

impl Delivery {
    pub fn from_list(fetch: u64, index: u32, payload: Bytes) -> Delivery {
        Delivery {
            receipt: Receipt::List { fetch, index },
            payload: Payload::Json(payload),
            taken_at: Instant::now(),
            deliveries: 1,
            lease_epoch: 0,
        }
    }

    pub fn from_stream(id: String, fields: Vec<(Bytes, Bytes)>, deliveries: u32) -> Delivery {
        Delivery {
            receipt: Receipt::Stream(id),
            payload: Payload::Fields(fields),
            taken_at: Instant::now(),
            deliveries,
            lease_epoch: 0,
        }
    }

    /// Parses the payload into a task.
    pub fn parse(&self) -> Result<crate::task::Task, crate::task::TaskError> {
        match &self.payload {
            Payload::Json(b) => crate::task::parse_json(b),
            Payload::Fields(f) => crate::task::parse_fields(f.iter().map(|(k, v)| (&k[..], &v[..]))),
        }
    }

    /// The payload as a JSON value for a dead-letter entry: the text when it is
    /// UTF-8, else the text with invalid bytes replaced (and flagged).
    pub fn payload_json(&self) -> (serde_json::Value, bool) {
        match &self.payload {
            Payload::Json(b) => match std::str::from_utf8(b) {
                Ok(s) => (serde_json::Value::String(s.to_owned()), false),
                Err(_) => (serde_json::Value::String(String::from_utf8_lossy(b).into_owned()), true),
            },
            Payload::Fields(f) => {
                let mut lossy = false;
                let map = f
                    .iter()
                    .map(|(k, v)| {
                        lossy |= std::str::from_utf8(k).is_err() || std::str::from_utf8(v).is_err();
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                        )
                    })
                    .collect();
                (serde_json::Value::Object(map), lossy)
            }
        }
    }
}
