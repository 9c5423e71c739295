//! Reliable list-mode consumption in Redis.
//!
//! Each consumer owns a processing list. Tasks move there atomically from the
//! queue (a Lua loop of `LMOVE`, one round trip for a whole batch) and leave
//! it only in the transaction that settles them: `LREM` together with the
//! dead-letter `LPUSH` or the done record. A consumer proves it is alive with
//! a heartbeat key that expires after `redis.lease`; any consumer moves the
//! processing list of one whose heartbeat is gone back to the queue, so a
//! killed daemon's tasks are taken again.
//!
//! Keys, for queue `Q` and consumer `C`:
//! `Q` (producers LPUSH, we take from the right), `Q:processing:C`,
//! `Q:consumer:C` (heartbeat), `Q:consumers` (set of names), `Q:dead`,
//! `Q:done:<id>` (idempotency record, `redis.dedup_ttl`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use crate::config::RedisSettings;
use crate::messages::{Outcome, Receipt, Settled};

/// Moves up to ARGV[1] tasks from the tail of KEYS[1] to the head of KEYS[2].
const FETCH: &str = r"
local out = {}
for i = 1, tonumber(ARGV[1]) do
  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
  if not v then break end
  out[i] = v
end
return out";

/// Returns consumer ARGV[1]'s processing list KEYS[2] to the consuming end of
/// the queue KEYS[1], oldest ending up first in line, unless its heartbeat
/// KEYS[3] still exists (ARGV[2] = '1' forces, for our own clean shutdown).
const RECOVER: &str = r"
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local n = 0
while redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT') do n = n + 1 end
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[3])
return n";

#[derive(Debug)]
pub struct Keys {
    pub queue: String,
    pub dead: String,
    pub consumers: String,
    pub processing: String,
    pub heartbeat: String,
    done_prefix: String,
}

impl Keys {
    pub fn new(queue: &str, consumer: &str) -> Keys {
        Keys {
            queue: queue.to_owned(),
            dead: format!("{queue}:dead"),
            consumers: format!("{queue}:consumers"),
            processing: processing_key(queue, consumer),
            heartbeat: heartbeat_key(queue, consumer),
            done_prefix: format!("{queue}:done:"),
        }
    }

    pub fn done(&self, id: &str) -> String {
        format!("{}{id}", self.done_prefix)
    }
}

pub fn processing_key(queue: &str, consumer: &str) -> String {
    format!("{queue}:processing:{consumer}")
}

pub fn heartbeat_key(queue: &str, consumer: &str) -> String {
    format!("{queue}:consumer:{consumer}")
}

/// A connected list-mode queue. Cheap to clone; every method works on its own
/// handle of the multiplexed connection, so futures own what they use.
#[derive(Clone)]
pub struct ListQueue {
    conn: MultiplexedConnection,
    /// A second connection for the blocking `BLMOVE`, which would hold up
    /// every other command on a shared connection.
    blocking: MultiplexedConnection,
    keys: Arc<Keys>,
    consumer: Arc<str>,
    lease: Duration,
    dedup_ttl: Duration,
    fetch: Arc<redis::Script>,
    recover: Arc<redis::Script>,
}

impl ListQueue {
    pub async fn connect(s: &RedisSettings, consumer: &str) -> redis::RedisResult<ListQueue> {
        let client = redis::Client::open(s.url.expose())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.response_timeout))
            .set_response_timeout(Some(s.response_timeout));
        let conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let blocking_config = config.set_response_timeout(Some(s.response_timeout + s.block));
        let blocking = client.get_multiplexed_async_connection_with_config(&blocking_config).await?;
        Ok(ListQueue {
            conn,
            blocking,
            keys: Arc::new(Keys::new(&s.queue, consumer)),
            consumer: consumer.into(),
            lease: s.lease,
            dedup_ttl: s.dedup_ttl,
            fetch: Arc::new(redis::Script::new(FETCH)),
            recover: Arc::new(redis::Script::new(RECOVER)),
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Renews this consumer's heartbeat and registers its name.
    pub async fn heartbeat(&self) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        redis::pipe()
            .cmd("SET")
            .arg(&self.keys.heartbeat)
            .arg(std::process::id())
            .arg("PX")
            .arg(self.lease.as_millis() as u64)
            .ignore()
            .cmd("SADD")
            .arg(&self.keys.consumers)
            .arg(&*self.consumer)
            .ignore()
            .query_async(&mut c)
            .await
    }

    /// Returns the processing lists of consumers whose heartbeat expired to the
    /// queue; answers how many tasks went back.
    pub async fn recover_orphans(&self) -> redis::RedisResult<usize> {
        let mut c = self.conn.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS").arg(&self.keys.consumers).query_async(&mut c).await?;
        let mut total = 0;
        for name in names.iter().filter(|n| **n != *self.consumer) {
            total += self.recover_consumer(name, false).await?;
        }
        Ok(total)
    }

    async fn recover_consumer(&self, name: &str, force: bool) -> redis::RedisResult<usize> {
        let mut c = self.conn.clone();
        let n: i64 = self
            .recover
            .key(&self.keys.queue)
            .key(processing_key(&self.keys.queue, name))
            .key(heartbeat_key(&self.keys.queue, name))
            .key(&self.keys.consumers)
            .arg(name)
            .arg(if force { "1" } else { "0" })
            .invoke_async(&mut c)
            .await?;
        Ok(n.max(0) as usize)
    }

    /// Takes up to `max` tasks without waiting.
    pub async fn fetch(&self, max: usize) -> redis::RedisResult<Vec<Bytes>> {
        let mut c = self.conn.clone();
        let items: Vec<Vec<u8>> =
            self.fetch.key(&self.keys.queue).key(&self.keys.processing).arg(max).invoke_async(&mut c).await?;
        Ok(items.into_iter().map(Bytes::from).collect())
    }

    /// Waits up to `timeout` for one task.
    pub async fn fetch_blocking(&self, timeout: Duration) -> redis::RedisResult<Option<Bytes>> {
        let mut c = self.blocking.clone();
        let item: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&self.keys.queue)
            .arg(&self.keys.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(&mut c)
            .await?;
        Ok(item.map(Bytes::from))
    }

    /// The transaction that settles a batch: dead letters and done records
    /// are written in the same MULTI that removes the tasks from processing.
    /// Built apart from running it, so the batch can stay with its owner.
    pub fn settle_pipeline(&self, batch: &[Settled]) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let ttl = self.dedup_ttl.as_secs().max(1);
        for s in batch {
            match &s.outcome {
                Outcome::Dead { error } => {
                    pipe.lpush(&self.keys.dead, dead_letter(s, error, &self.consumer)).ignore();
                }
                Outcome::Published { url } => {
                    let id = s.task_id.as_deref().unwrap_or_default();
                    pipe.cmd("SET").arg(self.keys.done(id)).arg(url).arg("EX").arg(ttl).ignore();
                }
                Outcome::NotFound | Outcome::Duplicate => {}
            }
            if let Receipt::List(payload) = &s.delivery.receipt {
                pipe.cmd("LREM").arg(&self.keys.processing).arg(-1).arg(&payload[..]).ignore();
            }
        }
        pipe
    }

    /// Runs a pipeline built by this queue.
    pub async fn run(&self, pipe: redis::Pipeline) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        pipe.query_async(&mut c).await
    }

    /// Records these (id, url) as published: results that reached the file
    /// before a crash, whose tasks may still be in Redis.
    pub async fn mark_published(&self, items: &[(String, String)]) -> redis::RedisResult<()> {
        let ttl = self.dedup_ttl.as_secs().max(1);
        let mut c = self.conn.clone();
        for chunk in items.chunks(1000) {
            let mut pipe = redis::pipe();
            for (id, url) in chunk {
                pipe.cmd("SET").arg(self.keys.done(id)).arg(url).arg("EX").arg(ttl).ignore();
            }
            pipe.query_async::<()>(&mut c).await?;
        }
        Ok(())
    }

    /// Which of these task ids were already published (their record is kept).
    pub async fn published(&self, ids: &[String]) -> redis::RedisResult<Vec<bool>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.exists(self.keys.done(id));
        }
        let mut c = self.conn.clone();
        pipe.query_async(&mut c).await
    }

    /// After a lost connection: tasks in our processing list that we do not
    /// hold in flight (their fetch reply was lost) go back to the queue.
    pub async fn reconcile(&self, in_flight: &HashMap<Bytes, usize>) -> redis::RedisResult<usize> {
        let mut c = self.conn.clone();
        let listed: Vec<Vec<u8>> =
            redis::cmd("LRANGE").arg(&self.keys.processing).arg(0).arg(-1).query_async(&mut c).await?;
        let lost = orphans(listed.into_iter().map(Bytes::from), in_flight);
        if lost.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for item in &lost {
            pipe.cmd("LREM").arg(&self.keys.processing).arg(-1).arg(&item[..]).ignore();
            pipe.cmd("RPUSH").arg(&self.keys.queue).arg(&item[..]).ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
        Ok(lost.len())
    }

    /// Clean shutdown: what is still in processing goes back to the queue and
    /// this consumer leaves the set.
    pub async fn release(&self) -> redis::RedisResult<usize> {
        self.recover_consumer(&self.consumer, true).await
    }

    pub async fn len(&self) -> redis::RedisResult<(u64, u64)> {
        let mut c = self.conn.clone();
        redis::pipe().llen(&self.keys.queue).llen(&self.keys.dead).query_async(&mut c).await
    }
}

/// The items listed in processing beyond what we hold in flight (a multiset
/// difference: identical payloads count separately).
pub fn orphans(listed: impl IntoIterator<Item = Bytes>, in_flight: &HashMap<Bytes, usize>) -> Vec<Bytes> {
    let mut remaining = in_flight.clone();
    let mut out = Vec::new();
    for item in listed {
        match remaining.get_mut(&item) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(item),
        }
    }
    out
}

/// The dead-letter entry: the payload as received and why, in words.
pub fn dead_letter(s: &Settled, error: &str, consumer: &str) -> String {
    let (payload, lossy) = s.delivery.payload_json();
    let mut entry = serde_json::json!({
        "payload": payload,
        "error": error,
        "consumer": consumer,
        "at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    });
    if lossy {
        entry["payload_lossy_utf8"] = serde_json::Value::Bool(true);
    }
    entry.to_string()
}

/// A consumer name unique to this process: host, pid and a random suffix.
pub fn unique_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    format!("{host}-{}-{:04x}", std::process::id(), rand::random::<u16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn orphans_are_the_multiset_difference() {
        let in_flight: HashMap<Bytes, usize> = [(b("a"), 1), (b("b"), 2)].into_iter().collect();
        let listed = vec![b("a"), b("a"), b("b"), b("c"), b("b")];
        assert_eq!(orphans(listed, &in_flight), vec![b("a"), b("c")]);
        assert!(orphans(vec![b("b")], &in_flight).is_empty());
    }

    #[test]
    fn dead_letter_keeps_the_payload() {
        let s = Settled {
            delivery: crate::messages::Delivery::from_list(Bytes::from_static(b"{\"id\":\xff}")),
            task_id: None,
            outcome: Outcome::Dead { error: "bad".into() },
        };
        let v: serde_json::Value = serde_json::from_str(&dead_letter(&s, "bad", "c1")).unwrap();
        assert_eq!(v["error"], "bad");
        assert_eq!(v["payload"], "{\"id\":\u{fffd}}");
        assert_eq!(v["payload_lossy_utf8"], true);
    }
}
