//! List mode: reliable consumption of a Redis list.
//!
//! Each consumer owns a processing list. Tasks move there atomically from the
//! queue (a Lua loop of `LMOVE`, one round trip for a whole batch) and leave
//! it only in the transaction that settles them (`LREM`). A consumer proves
//! it is alive with a heartbeat key that expires after `redis.lease`; any
//! consumer moves the processing list of one whose heartbeat is gone back to
//! the queue, so a killed daemon's tasks are taken again.
//!
//! Keys, for queue `Q` and consumer `C`: `Q` (producers LPUSH, we take from
//! the right: first in, first out) and `Q:processing:C`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{heartbeat_key, Common};
use crate::messages::Delivery;

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

pub fn processing_key(queue: &str, consumer: &str) -> String {
    format!("{queue}:processing:{consumer}")
}

#[derive(Clone)]
pub struct ListQueue {
    pub(super) common: Common,
    fetch: Arc<redis::Script>,
    recover: Arc<redis::Script>,
}

impl ListQueue {
    pub(super) fn new(common: Common) -> ListQueue {
        ListQueue { common, fetch: Arc::new(redis::Script::new(FETCH)), recover: Arc::new(redis::Script::new(RECOVER)) }
    }

    /// Returns the processing lists of consumers whose heartbeat expired to the
    /// queue; answers how many tasks went back.
    pub async fn recover_orphans(&self) -> redis::RedisResult<usize> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let names: Vec<String> = redis::cmd("SMEMBERS").arg(&c.keys.consumers).query_async(&mut conn).await?;
        let mut total = 0;
        for name in names.iter().filter(|n| **n != *c.consumer) {
            total += self.recover_consumer(name, false).await?;
        }
        Ok(total)
    }

    async fn recover_consumer(&self, name: &str, force: bool) -> redis::RedisResult<usize> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let n: i64 = self
            .recover
            .key(&c.keys.queue)
            .key(processing_key(&c.keys.queue, name))
            .key(heartbeat_key(&c.keys.queue, name))
            .key(&c.keys.consumers)
            .arg(name)
            .arg(if force { "1" } else { "0" })
            .invoke_async(&mut conn)
            .await?;
        Ok(n.max(0) as usize)
    }

    pub async fn fetch(&self, max: usize) -> redis::RedisResult<Vec<Delivery>> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let items: Vec<Vec<u8>> =
            self.fetch.key(&c.keys.queue).key(&c.keys.processing).arg(max).invoke_async(&mut conn).await?;
        Ok(items.into_iter().map(|p| Delivery::from_list(Bytes::from(p))).collect())
    }

    pub async fn fetch_blocking(&self, timeout: Duration) -> redis::RedisResult<Vec<Delivery>> {
        let c = &self.common;
        let mut conn = c.blocking.clone();
        let item: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&c.keys.queue)
            .arg(&c.keys.processing)
            .arg("RIGHT")
            .arg("LEFT")
            .arg(timeout.as_secs_f64())
            .query_async(&mut conn)
            .await?;
        Ok(item.map(|p| Delivery::from_list(Bytes::from(p))).into_iter().collect())
    }

    /// Tasks in our processing list that we do not hold in flight go back to
    /// the queue.
    pub async fn reconcile(&self, in_flight: &HashMap<Bytes, usize>) -> redis::RedisResult<usize> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let listed: Vec<Vec<u8>> =
            redis::cmd("LRANGE").arg(&c.keys.processing).arg(0).arg(-1).query_async(&mut conn).await?;
        let lost = orphans(listed.into_iter().map(Bytes::from), in_flight);
        if lost.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for item in &lost {
            pipe.cmd("LREM").arg(&c.keys.processing).arg(-1).arg(&item[..]).ignore();
            pipe.cmd("RPUSH").arg(&c.keys.queue).arg(&item[..]).ignore();
        }
        pipe.query_async::<()>(&mut conn).await?;
        Ok(lost.len())
    }

    pub async fn release(&self) -> redis::RedisResult<usize> {
        self.recover_consumer(&self.common.consumer.clone(), true).await
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
}
