//! List mode: reliable consumption of a Redis list.
//!
//! Each consumer owns a processing hash. Tasks move there atomically from the
//! queue (one Lua call per batch: `RPOP` with a count, then `HSET`), each
//! under a sequence number unique within the queue, and leave it only in the
//! transaction that settles them (`HDEL` of their numbers). A consumer proves
//! it is alive with a heartbeat key that expires after `redis.lease`; any
//! consumer moves the processing hash of one whose heartbeat is gone back to
//! the queue, oldest first in line, so a killed daemon's tasks are taken again.
//!
//! Why a hash and not the classic processing list (`LMOVE` in, `LREM` out):
//! tasks settle out of order, and `LREM` scans the list for each one. With
//! 16k tasks in flight that scan was two thirds of Redis's CPU in the
//! benchmark (19 us per task); `HDEL` costs the same whatever is in flight.
//!
//! Keys, for queue `Q` and consumer `C`: `Q` (producers LPUSH, we take from
//! the right: first in, first out), `Q:processing:C` (field: sequence number,
//! value: the payload as received) and `Q:seq` (the last number given out).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{heartbeat_key, Common};
use crate::messages::Delivery;

/// Moves up to ARGV[1] tasks from the tail of KEYS[1] (oldest first) into the
/// hash KEYS[2], numbered from KEYS[3]; answers {first number, payloads}.
/// (`HSET` takes 500 fields at a time: Lua's `unpack` has a limit.)
const FETCH: &str = r"
local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not items then return {0, {}} end
local last = redis.call('INCRBY', KEYS[3], #items)
local first = last - #items + 1
local args = {}
for i, v in ipairs(items) do
  args[#args + 1] = string.format('%d', first + i - 1)
  args[#args + 1] = v
  if #args == 1000 or i == #items then
    redis.call('HSET', KEYS[2], unpack(args))
    args = {}
  end
end
return {first, items}";

/// The body of Lua function `put_back(from)`: puts the tasks of processing
/// hash KEYS[2] back at the consuming end of the queue KEYS[1], oldest first
/// in line. Fields: ARGV[from..] (those present), or every field when there
/// are none. A processing list, as versions before the hash kept, is moved
/// back the same way.
const PUT_BACK: &str = r"
local entries = {}
if redis.call('TYPE', KEYS[2]).ok == 'list' then
  local n = 0
  while redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT') do n = n + 1 end
  return n
elseif #ARGV >= from then
  for i = from, #ARGV do
    local v = redis.call('HGET', KEYS[2], ARGV[i])
    if v then entries[#entries + 1] = {tonumber(ARGV[i]), ARGV[i], v} end
  end
else
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do entries[#entries + 1] = {tonumber(flat[i]), flat[i], flat[i + 1]} end
end
table.sort(entries, function(a, b) return a[1] > b[1] end)
for _, e in ipairs(entries) do
  redis.call('RPUSH', KEYS[1], e[3])
  redis.call('HDEL', KEYS[2], e[2])
end
return #entries";

/// Returns consumer ARGV[1]'s processing hash KEYS[2] to the queue KEYS[1]
/// (as [`PUT_BACK`]) unless its heartbeat KEYS[3] still exists (ARGV[2] = '1'
/// forces, for our own clean shutdown), and forgets the consumer (set KEYS[4]).
const RECOVER: &str = r"
if ARGV[2] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local n = put_back(3)
redis.call('SREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[3])
return n";

pub fn processing_key(queue: &str, consumer: &str) -> String {
    format!("{queue}:processing:{consumer}")
}

pub fn seq_key(queue: &str) -> String {
    format!("{queue}:seq")
}

/// A script of the Lua function `put_back` and a body that calls it.
fn with_put_back(body: &str) -> redis::Script {
    redis::Script::new(&format!("local function put_back(from){PUT_BACK}\nend\n{body}"))
}

#[derive(Clone)]
pub struct ListQueue {
    pub(super) common: Common,
    seq: Arc<str>,
    fetch: Arc<redis::Script>,
    put_back: Arc<redis::Script>,
    recover: Arc<redis::Script>,
}

impl ListQueue {
    pub(super) fn new(common: Common) -> ListQueue {
        ListQueue {
            seq: seq_key(&common.keys.queue).into(),
            common,
            fetch: Arc::new(redis::Script::new(FETCH)),
            put_back: Arc::new(with_put_back("return put_back(1)")),
            recover: Arc::new(with_put_back(RECOVER)),
        }
    }

    /// Returns the processing hashes of consumers whose heartbeat expired to
    /// the queue; answers how many tasks went back.
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
        let (first, items): (u64, Vec<Vec<u8>>) = self
            .fetch
            .key(&c.keys.queue)
            .key(&c.keys.processing)
            .key(&*self.seq)
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        Ok(items.into_iter().zip(first..).map(|(p, seq)| Delivery::from_list(seq, Bytes::from(p))).collect())
    }

    /// Waits up to `timeout` for the queue to have a task, then takes up to
    /// `max`. The wait is a `BLMOVE` of the queue onto itself at the same
    /// end, which leaves it as it was: Redis has no blocking move into a hash.
    pub async fn fetch_blocking(&self, max: usize, timeout: Duration) -> redis::RedisResult<Vec<Delivery>> {
        let c = &self.common;
        let mut conn = c.blocking.clone();
        let ready: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(&c.keys.queue)
            .arg(&c.keys.queue)
            .arg("RIGHT")
            .arg("RIGHT")
            .arg(timeout.as_secs_f64())
            .query_async(&mut conn)
            .await?;
        match ready {
            Some(_) => self.fetch(max).await,
            None => Ok(Vec::new()),
        }
    }

    /// Tasks in our processing hash that we do not hold in flight go back to
    /// the queue.
    pub async fn reconcile(&self, in_flight: &HashMap<Bytes, usize>) -> redis::RedisResult<usize> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let listed: Vec<Vec<u8>> = redis::cmd("HKEYS").arg(&c.keys.processing).query_async(&mut conn).await?;
        let lost = orphans(listed.into_iter().map(Bytes::from), in_flight);
        if lost.is_empty() {
            return Ok(0);
        }
        let mut inv = self.put_back.key(&c.keys.queue);
        inv.key(&c.keys.processing);
        for field in &lost {
            inv.arg(&field[..]);
        }
        let n: usize = inv.invoke_async(&mut conn).await?;
        Ok(n)
    }

    /// Removes settled tasks (by their receipts' numbers) from our processing hash.
    pub fn settle(&self, pipe: &mut redis::Pipeline, seqs: &[u64]) {
        if !seqs.is_empty() {
            pipe.cmd("HDEL").arg(&self.common.keys.processing).arg(seqs).ignore();
        }
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
