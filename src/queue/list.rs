//! List mode: reliable consumption of a Redis list.
//!
//! Each consumer owns a processing hash. Tasks move there atomically from the
//! queue, a fetch at a time (one Lua call: `RPOP` with a count, then one
//! `HSET` of the whole fetch under a number unique within the queue), and
//! leave it in the transactions that settle them: a fetch partly settled
//! keeps a mask of its settled tasks next to it, and the last task settled
//! removes both. A consumer proves it is alive with a heartbeat key that
//! expires after `redis.lease`; any consumer moves the processing hash of one
//! whose heartbeat is gone back to the queue, oldest first in line, so a
//! killed daemon's tasks are taken again. A settled task never is: its bit
//! in the mask is written in the same transaction as its done record.
//!
//! Why a hash and not the classic processing list (`LMOVE` in, `LREM` out):
//! tasks settle out of order, and `LREM` scans the list for each one, which
//! with thousands in flight dominated Redis's CPU. Why a field per fetch and
//! not per task: a field per task costs Redis an `HSET` and an `HDEL` per
//! task, and the fetch script a loop in Lua over the tasks. The numbers are
//! in docs/performance.md.
//!
//! Keys, for queue `Q` and consumer `C`: `Q` (producers LPUSH, we take from
//! the right: first in, first out), `Q:processing:C` and `Q:seq` (the last
//! number given out). Fields of the processing hash: `b<n>`, fetch `n`: its
//! payloads as received, oldest first, as a MessagePack array (Redis's Lua has
//! `cmsgpack`); `s<n>`: which of them are settled, bit `i % 8` of byte
//! `i / 8` for the `i`-th, absent while none is.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::keys::{heartbeat_key, processing, seq};
use super::Common;
use crate::messages::{Delivery, Receipt, Settled};

/// Moves up to ARGV[1] tasks from the tail of KEYS[1] (oldest first) into the
/// hash KEYS[2] as one fetch, numbered from KEYS[3]; answers {number, payloads}.
const FETCH: &str = include_str!("lua/fetch.lua");

/// The body of Lua function `put_back(from)`: puts the unsettled tasks of
/// processing hash KEYS[2] back at the consuming end of the queue KEYS[1],
/// oldest first in line, and answers how many. Fields: the fetches `b<n>` in
/// ARGV[from..] (those absent are skipped), or every fetch when there are
/// none.
const PUT_BACK: &str = include_str!("lua/put_back.lua");

/// Returns consumer ARGV[1]'s processing hash KEYS[2] to the queue KEYS[1]
/// (as [`PUT_BACK`]) unless its heartbeat KEYS[3] still exists (ARGV[2] = '1'
/// forces, for our own clean shutdown), deletes what is left of the hash (the
/// masks of settled tasks), and forgets the consumer (set KEYS[4]).
const RECOVER: &str = include_str!("lua/recover.lua");

/// For each processing hash KEYS[i], how many tasks it holds unsettled (for
/// `status`): the payloads of each fetch `b<n>` whose bit in `s<n>` is clear.
pub const COUNT_HELD: &str = include_str!("lua/count_held.lua");

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
            seq: seq(&common.keys.queue).into(),
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
            .key(processing(&c.keys.queue, name))
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
        let (fetch, items): (u64, Vec<Vec<u8>>) = self
            .fetch
            .key(&c.keys.queue)
            .key(&c.keys.processing)
            .key(&*self.seq)
            .arg(max)
            .invoke_async(&mut conn)
            .await?;
        Ok(items.into_iter().zip(0..).map(|(p, index)| Delivery::from_list(fetch, index, Bytes::from(p))).collect())
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

    /// Fetches in our processing hash that we do not hold in flight go back
    /// to the queue: their reply was lost, or an earlier run under our name
    /// (a fixed `redis.consumer`) was killed holding them. `in_flight` counts
    /// the tasks we hold by [`Receipt::key`], which is their fetch's field.
    pub async fn reconcile(&self, in_flight: &HashMap<Bytes, usize>) -> redis::RedisResult<usize> {
        let c = &self.common;
        let mut conn = c.conn.clone();
        let listed: Vec<Vec<u8>> = redis::cmd("HKEYS").arg(&c.keys.processing).query_async(&mut conn).await?;
        // A mask goes back with its fetch.
        let fetches = listed.into_iter().filter(|field| !field.starts_with(b"s")).map(Bytes::from);
        let lost = orphans(fetches, in_flight);
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

    /// Adds to the settle transaction what settling `batch` changes in our
    /// processing hash: a fetch with every task settled is removed with its
    /// mask; one with tasks still open gets its new mask.
    pub fn settle(&self, pipe: &mut redis::Pipeline, batch: &[Settled], ledger: &Ledger) {
        let mut done = Vec::new();
        let mut masks = Vec::new();
        for (fetch, after) in ledger.after(batch) {
            match after {
                After::Done => {
                    done.push(format!("b{fetch}"));
                    done.push(format!("s{fetch}"));
                }
                After::Open { settled, .. } => masks.push((format!("s{fetch}"), settled)),
            }
        }
        let key = &self.common.keys.processing;
        if !done.is_empty() {
            pipe.cmd("HDEL").arg(key).arg(&done).ignore();
        }
        if !masks.is_empty() {
            let cmd = pipe.cmd("HSET").arg(key);
            for (field, mask) in &masks {
                cmd.arg(field).arg(&mask[..]);
            }
            cmd.ignore();
        }
    }

    /// Clean shutdown: every task we hold and have not settled goes back to
    /// the queue, oldest first in line; answers how many.
    pub async fn release(&self) -> redis::RedisResult<usize> {
        self.recover_consumer(&self.common.consumer.clone(), true).await
    }
}

/// List mode's account of the fetches this consumer holds: how many tasks
/// each has and which are settled, as committed to Redis. Settling builds
/// its transaction from it ([`ListQueue::settle`]) and records the batch
/// here only once the transaction succeeded, so the masks written are always
/// the committed ones plus the batch's.
#[derive(Debug, Default)]
pub struct Ledger {
    fetches: foldhash::HashMap<u64, Fetch>,
}

#[derive(Debug, Default, Clone)]
struct Fetch {
    /// Tasks taken from this fetch and not yet settled.
    open: u32,
    /// Bit `i % 8` of byte `i / 8`: task `i` is settled.
    settled: Vec<u8>,
}

/// What settling a batch leaves of one fetch.
#[derive(Debug, PartialEq, Eq)]
enum After {
    Done,
    Open { open: u32, settled: Vec<u8> },
}

impl Ledger {
    /// Counts fetched tasks in.
    pub fn took(&mut self, deliveries: &[Delivery]) {
        for d in deliveries {
            if let Receipt::List { fetch, .. } = d.receipt {
                self.fetches.entry(fetch).or_default().open += 1;
            }
        }
    }

    /// Records a batch whose settle transaction succeeded.
    pub fn settled(&mut self, batch: &[Settled]) {
        for (fetch, after) in self.after(batch) {
            match after {
                After::Done => {
                    self.fetches.remove(&fetch);
                }
                After::Open { open, settled } => {
                    let f = self.fetches.entry(fetch).or_default();
                    f.open = open;
                    f.settled = settled;
                }
            }
        }
    }

    /// The fields of the fetches held, with how many tasks are open in each.
    pub fn held(&self) -> HashMap<Bytes, usize> {
        self.fetches.iter().map(|(n, f)| (Bytes::from(format!("b{n}")), f.open as usize)).collect()
    }

    /// Whether this task's fetch is still ours.
    pub fn holds(&self, receipt: &Receipt) -> bool {
        matches!(receipt, Receipt::List { fetch, .. } if self.fetches.contains_key(fetch))
    }

    /// A fetch that is ours no more (another consumer moved it back to the
    /// queue while we were silent): its tasks are settled by nobody here.
    pub fn forget(&mut self, field: &[u8]) {
        if let Some(n) = field.strip_prefix(b"b").and_then(|n| std::str::from_utf8(n).ok()?.parse().ok()) {
            self.fetches.remove(&n);
        }
    }

    /// Each fetch `batch` touches, and what it would leave of it. A fetch we
    /// do not hold (forgotten, see [`Ledger::forget`]) is left alone: it is
    /// another consumer's now.
    fn after(&self, batch: &[Settled]) -> Vec<(u64, After)> {
        // A batch touches a few fetches (tasks settle roughly in the order
        // they were taken): a list, searched from the start, is enough.
        let mut touched: Vec<(u64, Fetch)> = Vec::new();
        for s in batch {
            let Receipt::List { fetch, index } = s.delivery.receipt else { continue };
            let at = match touched.iter().position(|(f, _)| *f == fetch) {
                Some(at) => at,
                None => {
                    let Some(held) = self.fetches.get(&fetch) else { continue };
                    touched.push((fetch, held.clone()));
                    touched.len() - 1
                }
            };
            let f = &mut touched[at].1;
            let (byte, bit) = (index as usize / 8, 1u8 << (index % 8));
            if f.settled.len() <= byte {
                f.settled.resize(byte + 1, 0);
            }
            if f.settled[byte] & bit == 0 {
                f.settled[byte] |= bit;
                f.open = f.open.saturating_sub(1);
            }
        }
        touched
            .into_iter()
            .map(|(fetch, f)| {
                (fetch, if f.open == 0 { After::Done } else { After::Open { open: f.open, settled: f.settled } })
            })
            .collect()
    }
}

/// The items listed in processing beyond what we hold in flight (a multiset
/// difference: a key held `n` times matches `n` listed items).
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
    use crate::messages::Outcome;

    fn settled(fetch: u64, index: u32) -> Settled {
        Settled { delivery: Delivery::from_list(fetch, index, Bytes::new()), task_id: None, outcome: Outcome::NotFound }
    }

    #[test]
    fn a_fetch_is_done_when_its_last_task_is_settled() {
        let mut ledger = Ledger::default();
        let fetch: Vec<Delivery> = (0..10).map(|i| Delivery::from_list(7, i, Bytes::new())).collect();
        ledger.took(&fetch);
        ledger.took(&[Delivery::from_list(8, 0, Bytes::new())]);
        let held = ledger.held();
        assert_eq!((held.len(), held[&b("b7")], held[&b("b8")]), (2, 10, 1));

        let first = [settled(7, 0), settled(7, 9), settled(8, 0)];
        let after = ledger.after(&first);
        assert_eq!(after[0], (7, After::Open { open: 8, settled: vec![0b0000_0001, 0b0000_0010] }));
        assert_eq!(after[1], (8, After::Done));
        // Building a transaction changes nothing; a success records it.
        assert_eq!(ledger.after(&first), after);
        ledger.settled(&first);
        // A batch retried after its transaction failed settles nothing twice.
        ledger.settled(&[settled(7, 0)]);

        let rest: Vec<Settled> = (1..9).map(|i| settled(7, i)).collect();
        assert_eq!(ledger.after(&rest[..7]), vec![(7, After::Open { open: 1, settled: vec![0xff, 0b10] })]);
        assert_eq!(ledger.after(&rest), vec![(7, After::Done)]);
        ledger.settled(&rest);
        assert!(ledger.fetches.is_empty());
    }

    #[test]
    fn a_fetch_not_held_is_left_alone() {
        let mut ledger = Ledger::default();
        assert_eq!(ledger.after(&[settled(3, 2)]), vec![]);
        ledger.took(&[Delivery::from_list(3, 0, Bytes::new()), Delivery::from_list(3, 1, Bytes::new())]);
        assert!(ledger.holds(&Receipt::List { fetch: 3, index: 1 }));
        ledger.forget(b"b3");
        assert!(!ledger.holds(&Receipt::List { fetch: 3, index: 1 }));
        assert_eq!(ledger.after(&[settled(3, 0)]), vec![], "another consumer's now");
    }

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
