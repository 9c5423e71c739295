//! Stream mode: consumption through a Redis Streams consumer group, so that
//! several daemons share one stream.
//!
//! Producers `XADD Q * id <id> ipv4 <ipv4> mac <mac>`. Each daemon reads new
//! entries with `XREADGROUP` (group `redis.group`, its own consumer name); an
//! entry stays in the group's pending list until its outcome is final, then
//! `XACK` and `XDEL` remove it in the settle transaction. A live consumer
//! renews the entries it holds on every heartbeat (`XCLAIM ... JUSTID` to
//! itself, which resets their idle time without counting a delivery, and only
//! for entries still its own: see `HOLDINGS` in [`super`]); an
//! entry idle longer than `redis.lease` therefore belongs to a consumer that
//! died, and any consumer claims it (`XPENDING ... IDLE`, then `XCLAIM` with
//! the same minimum idle time, so only one wins). An entry delivered more than
//! `redis.max_deliveries` times (it keeps killing its consumers) is
//! dead-lettered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::Value;

use super::Common;
use crate::config::RedisSettings;
use crate::messages::Delivery;

#[derive(Clone)]
pub struct StreamQueue {
    pub(super) common: Common,
    group: Arc<str>,
}

type Entry = (String, Vec<(Bytes, Bytes)>);

impl StreamQueue {
    /// Creates the group (and the stream) when absent; existing entries are
    /// read from the start.
    pub(super) async fn connect(common: Common, s: &RedisSettings) -> redis::RedisResult<StreamQueue> {
        let mut conn = common.conn.clone();
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&common.keys.queue)
            .arg(&s.group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match created {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(e),
        }
        Ok(StreamQueue { common, group: s.group.as_str().into() })
    }

    /// New entries for us: without waiting, or waiting up to `block`.
    pub async fn fetch(&self, max: usize, block: Option<Duration>) -> redis::RedisResult<Vec<Delivery>> {
        let c = &self.common;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(&*self.group).arg(&*c.consumer).arg("COUNT").arg(max);
        let mut conn = match block {
            Some(d) => {
                cmd.arg("BLOCK").arg(d.as_millis().max(1) as u64);
                c.blocking.clone()
            }
            None => c.conn.clone(),
        };
        cmd.arg("STREAMS").arg(&c.keys.queue).arg(">");
        let reply: Value = cmd.query_async(&mut conn).await?;
        Ok(read_reply_entries(reply).into_iter().map(|(id, fields)| Delivery::from_stream(id, fields, 1)).collect())
    }

    /// Adds the acknowledgement of one entry to a settle transaction.
    pub(super) fn ack(&self, pipe: &mut redis::Pipeline, id: &str) {
        let q = &self.common.keys.queue;
        pipe.cmd("XACK").arg(q).arg(&*self.group).arg(id).ignore();
        pipe.cmd("XDEL").arg(q).arg(id).ignore();
    }

    /// Claims up to `capacity` entries that other consumers left idle longer
    /// than the lease. An entry delivered too often comes back with its count,
    /// for the QueueReader to dead-letter.
    pub(super) async fn reclaim(&self, capacity: usize) -> redis::RedisResult<Vec<Delivery>> {
        if capacity == 0 {
            return Ok(Vec::new());
        }
        let c = &self.common;
        let idle = c.lease.as_millis() as u64;
        let mut conn = c.conn.clone();
        let pending: Vec<(String, String, u64, u32)> = redis::cmd("XPENDING")
            .arg(&c.keys.queue)
            .arg(&*self.group)
            .arg("IDLE")
            .arg(idle)
            .arg("-")
            .arg("+")
            .arg(capacity)
            .query_async(&mut conn)
            .await?;
        let theirs: HashMap<String, u32> =
            pending.into_iter().filter(|(_, owner, _, _)| *owner != *c.consumer).map(|(id, _, _, n)| (id, n)).collect();
        if theirs.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("XCLAIM");
        cmd.arg(&c.keys.queue).arg(&*self.group).arg(&*c.consumer).arg(idle);
        for id in theirs.keys() {
            cmd.arg(id);
        }
        let claimed: Value = cmd.query_async(&mut conn).await?;
        Ok(entries(claimed)
            .into_iter()
            .map(|(id, fields)| {
                let n = theirs.get(&id).copied().unwrap_or(0) + 1;
                Delivery::from_stream(id, fields, n)
            })
            .collect())
    }

    /// Our own pending entries that we do not hold (their read reply was lost).
    pub(super) async fn own_pending(&self, in_flight: &HashMap<Bytes, usize>) -> redis::RedisResult<Vec<Delivery>> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let reply: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&*self.group)
            .arg(&*c.consumer)
            .arg("COUNT")
            .arg(100_000)
            .arg("STREAMS")
            .arg(&c.keys.queue)
            .arg("0")
            .query_async(&mut conn)
            .await?;
        Ok(read_reply_entries(reply)
            .into_iter()
            .filter(|(id, _)| !in_flight.contains_key(id.as_bytes()))
            .map(|(id, fields)| Delivery::from_stream(id, fields, 1))
            .collect())
    }

    /// Clean shutdown: entries still pending stay for another consumer, which
    /// claims them after the lease; answers how many.
    pub(super) async fn leave(&self) -> redis::RedisResult<usize> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let _: () = redis::pipe()
            .cmd("SREM")
            .arg(&c.keys.consumers)
            .arg(&*c.consumer)
            .ignore()
            .cmd("DEL")
            .arg(&c.keys.heartbeat)
            .ignore()
            .query_async(&mut conn)
            .await?;
        let reply: Value = redis::cmd("XPENDING")
            .arg(&c.keys.queue)
            .arg(&*self.group)
            .arg("-")
            .arg("+")
            .arg(100_000)
            .arg(&*c.consumer)
            .query_async(&mut conn)
            .await?;
        Ok(match reply {
            Value::Array(rows) => rows.len(),
            _ => 0,
        })
    }
}

/// The entries of an `XREADGROUP` reply (one stream).
fn read_reply_entries(reply: Value) -> Vec<Entry> {
    match reply {
        Value::Array(streams) => streams
            .into_iter()
            .flat_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => entries(kv.pop().expect("two items")),
                _ => Vec::new(),
            })
            .collect(),
        Value::Map(streams) => streams.into_iter().flat_map(|(_, v)| entries(v)).collect(),
        _ => Vec::new(),
    }
}

/// `[[id, [field, value, ...]], ...]`; entries deleted meanwhile (nil) skipped.
fn entries(list: Value) -> Vec<Entry> {
    let Value::Array(items) = list else { return Vec::new() };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(mut pair) = item else { return None };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id = match pair.pop()? {
                Value::BulkString(b) => String::from_utf8(b).ok()?,
                Value::SimpleString(s) => s,
                _ => return None,
            };
            let Value::Array(flat) = fields else { return None };
            let flat: Vec<Bytes> = flat
                .into_iter()
                .filter_map(|v| match v {
                    Value::BulkString(b) => Some(Bytes::from(b)),
                    Value::SimpleString(s) => Some(Bytes::from(s)),
                    _ => None,
                })
                .collect();
            Some((id, flat.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0].clone(), c[1].clone())).collect()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_readgroup_replies() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("q"),
            Value::Array(vec![
                Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("id"), bulk("a"), bulk("mac"), bulk("m")])]),
                Value::Nil,
                Value::Array(vec![bulk("2-0"), Value::Array(vec![bulk("id"), bulk("b")])]),
            ]),
        ])]);
        let got = read_reply_entries(reply);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "1-0");
        assert_eq!(got[0].1[1], (Bytes::from_static(b"mac"), Bytes::from_static(b"m")));
        assert_eq!(got[1].1.len(), 1);
        assert!(read_reply_entries(Value::Nil).is_empty());
    }
}
