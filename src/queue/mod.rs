//! The Redis side of the daemon: taking tasks, making sure each id is worked
//! on by one consumer at a time, and settling tasks.
//!
//! Two ways to consume, one interface ([`Queue`]):
//! - [`list`]: producers `LPUSH`; each consumer moves tasks into a processing
//!   hash of its own and removes them when settled.
//! - [`stream`]: producers `XADD`; consumers of one group read with
//!   `XREADGROUP` and acknowledge with `XACK`.
//!
//! Shared by both, for queue `Q`:
//! - `Q:id:<id>`: the record of an id, one key for its whole life. While a
//!   consumer works on it, `claim:<consumer>`, expiring after `redis.lease`
//!   unless renewed by that consumer's heartbeat, so two replicas never work
//!   on one id at once. Just before its line is written, `write:<file>` (the
//!   results file's id), kept `redis.write_grace`: from then on no other
//!   consumer redoes the task, even if this one stalls before it settles.
//!   Once settled, `done:<url>`, kept `redis.dedup_ttl`. Settled otherwise
//!   (not found, dead), the claim is dropped. One key rather than a claim key
//!   and a done key: claiming is then one `SET NX` per id, less Redis CPU
//!   per task (docs/performance.md);
//! - `Q:dead`: dead letters; `Q:consumers`: consumer names;
//!   `Q:consumer:<name>`: a consumer's heartbeat.
//!
//! Every key's layout is written in one place, [`keys`].

pub mod holdings;
pub mod keys;
pub mod list;
pub mod stream;

pub use holdings::Holdings;
pub use keys::{heartbeat_key, write_value, Keys};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;

use crate::config::{QueueMode, RedisSettings};
use crate::messages::{Delivery, FencePurpose, Outcome, Receipt, Settled};

/// For each id record (KEYS) that [`Queue::check`] found taken, what it
/// holds now: 1 published; 0 our claim (renewed), or free again and now
/// claimed by us (ARGV[1]) for ARGV[2] ms; 2 another consumer's claim or
/// write record. Our own results file's write record (ARGV[3]) is ours to
/// take: intake starts only after the lines that file holds were recorded
/// as published, so such an id's line was never written.
const RESOLVE: &str = include_str!("lua/resolve.lua");

/// The Lua function `held(token)`: do we still hold this task? ARGV[1] is
/// the mode, ARGV[2] our processing hash (list: the token is the fetch's
/// field) or the stream (the token is the entry id), ARGV[3] the group,
/// ARGV[4] our consumer name. A stalled consumer's fetches are moved back to
/// the queue, its entries claimed by others: then it holds them no more.
const HELD: &str = include_str!("lua/held.lua");

/// The heartbeat's look at what we hold (tokens ARGV[5..]): answers those we
/// hold no more. In stream mode it also resets the idle time of the entries
/// still ours, so nobody claims them; only those (`XCLAIM` with no minimum
/// idle time would take back entries another consumer claimed meanwhile).
const HOLDINGS: &str = include_str!("lua/holdings.lua");

/// The fence, for each task: its id record KEYS[i] and its token
/// ARGV[9 + i] (as for `held`). Answers 0 keep, 1 lost, 2 duplicate,
/// 3 elsewhere ([`crate::lease::Fenced`]). Ours are our claim (ARGV[5]), our
/// file's write record (ARGV[6]), or no record while we hold the task; each
/// is kept, atomically with renewing the claim for ARGV[8] ms (ARGV[7] =
/// 'renew') or replacing it with the write record for ARGV[9] ms ('write').
const FENCE: &str = include_str!("lua/fence.lua");

/// Renews consumer ARGV[1]'s claims among the id records KEYS for ARGV[2] ms;
/// a record that holds anything else (published meanwhile, or claimed by
/// another after our lease ran out) is left alone.
const RENEW: &str = include_str!("lua/renew.lua");

/// Drops consumer ARGV[1]'s claims among the id records KEYS, and nothing
/// else: never a done record. Runs inside the settle transaction (as EVAL,
/// which cannot fail for a script missing from the cache).
const RELEASE: &str = include_str!("lua/release.lua");

/// What the check of an id found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Published already (within `dedup_ttl`): a duplicate.
    Published,
    /// Claimed by us: work on it.
    Mine,
    /// Another consumer works on it now: look again later.
    Elsewhere,
}

/// What every mode shares: connections, keys, timings.
#[derive(Clone)]
pub struct Common {
    pub conn: MultiplexedConnection,
    /// A second connection for blocking reads, which would hold up every other
    /// command on a shared connection; its response timeout covers the block.
    pub blocking: MultiplexedConnection,
    pub keys: Arc<Keys>,
    pub consumer: Arc<str>,
    pub lease: Duration,
    pub dedup_ttl: Duration,
    /// `claim:<consumer>`, the value of our claims.
    claim_value: Arc<str>,
    /// `redis.write_grace`: how long a write record holds an id.
    write_grace: Duration,
    /// The `held` function's fixed arguments: mode, where we hold tasks
    /// (processing hash or stream), group, consumer.
    held_args: Arc<[String; 4]>,
    resolve: Arc<redis::Script>,
    renew: Arc<redis::Script>,
    holdings: Arc<redis::Script>,
    fence: Arc<redis::Script>,
}

impl Common {
    /// Adds to `pipe` the command that records `id` as published at `url`
    /// for `dedup_ttl`, replacing its claim.
    fn record_done(&self, pipe: &mut redis::Pipeline, id: &str, url: &str) {
        let ttl = self.dedup_ttl.as_secs().max(1);
        pipe.add_command(self.keys.set_record(id, &["done:", url], &[&"EX", &ttl])).ignore();
    }
}

/// A connected queue. Cheap to clone; every method works on its own handle of
/// the multiplexed connections, so futures own what they use.
#[derive(Clone)]
pub enum Queue {
    List(list::ListQueue),
    Stream(stream::StreamQueue),
}

/// What one heartbeat did.
#[derive(Debug, Default)]
pub struct Beat {
    /// List mode: tasks of dead consumers put back on the queue.
    pub requeued: usize,
    /// Stream mode: entries of dead consumers now ours.
    pub reclaimed: Vec<Delivery>,
    /// Of what we held, the [`Receipt::key`]s that are ours no more (another
    /// consumer took them over while we were silent).
    pub lost: Vec<Bytes>,
    /// Tasks in the queue (list: `LLEN`; stream: `XLEN`, pending included).
    pub depth: u64,
}

/// A script whose body may call the Lua function `held(token)` ([`HELD`]).
fn with_held(body: &str) -> redis::Script {
    redis::Script::new(&format!("{HELD}\n{body}"))
}

impl Queue {
    pub async fn connect(s: &RedisSettings, consumer: &str) -> redis::RedisResult<Queue> {
        let client = redis::Client::open(s.url.expose())?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(s.response_timeout))
            .set_response_timeout(Some(s.response_timeout));
        let conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        let blocking_config = config.set_response_timeout(Some(s.response_timeout + s.block));
        let blocking = client.get_multiplexed_async_connection_with_config(&blocking_config).await?;
        let keys = Keys::new(&s.queue, consumer);
        let held_args = match s.mode {
            QueueMode::List => ["list".into(), keys.processing.clone(), String::new(), consumer.into()],
            QueueMode::Stream => ["stream".into(), keys.queue.clone(), s.group.clone(), consumer.into()],
        };
        let common = Common {
            conn,
            blocking,
            keys: Arc::new(keys),
            consumer: consumer.into(),
            lease: s.lease,
            dedup_ttl: s.dedup_ttl,
            claim_value: keys::claim_value(consumer).into(),
            write_grace: s.write_grace,
            held_args: Arc::new(held_args),
            resolve: Arc::new(redis::Script::new(RESOLVE)),
            renew: Arc::new(redis::Script::new(RENEW)),
            holdings: Arc::new(with_held(HOLDINGS)),
            fence: Arc::new(with_held(FENCE)),
        };
        Ok(match s.mode {
            QueueMode::List => Queue::List(list::ListQueue::new(common)),
            QueueMode::Stream => Queue::Stream(stream::StreamQueue::connect(common, s).await?),
        })
    }

    pub fn common(&self) -> &Common {
        match self {
            Queue::List(q) => &q.common,
            Queue::Stream(q) => &q.common,
        }
    }

    /// Renews this consumer's heartbeat and claims, finds which of the tasks
    /// we hold ([`Receipt::key`]s: list mode's fetches, stream mode's
    /// entries) are ours no more, and takes over the work of consumers that
    /// stopped beating.
    pub async fn heartbeat(&self, claimed: Vec<String>, held: Vec<Bytes>, capacity: usize) -> redis::RedisResult<Beat> {
        let c = self.common();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&c.keys.heartbeat)
            .arg(std::process::id())
            .arg("PX")
            .arg(c.lease.as_millis() as u64)
            .ignore();
        pipe.cmd("SADD").arg(&c.keys.consumers).arg(&*c.consumer).ignore();
        pipe.cmd(match self {
            Queue::List(_) => "LLEN",
            Queue::Stream(_) => "XLEN",
        })
        .arg(&c.keys.queue);
        let mut conn = c.conn.clone();
        let (depth,): (u64,) = pipe.query_async(&mut conn).await?;
        for chunk in claimed.chunks(1000) {
            let mut inv = c.renew.prepare_invoke();
            for id in chunk {
                inv.key(c.keys.record(id));
            }
            inv.arg(&*c.consumer).arg(c.lease.as_millis() as u64);
            inv.invoke_async::<()>(&mut conn).await?;
        }
        let mut lost = Vec::new();
        for chunk in held.chunks(1000) {
            let mut inv = c.holdings.prepare_invoke();
            inv.arg(&c.held_args[..]);
            for token in chunk {
                inv.arg(&token[..]);
            }
            let gone: Vec<Vec<u8>> = inv.invoke_async(&mut conn).await?;
            lost.extend(gone.into_iter().map(Bytes::from));
        }
        let mut beat = match self {
            Queue::List(q) => Beat { requeued: q.recover_orphans().await?, ..Beat::default() },
            Queue::Stream(q) => Beat { reclaimed: q.reclaim(capacity).await?, ..Beat::default() },
        };
        beat.lost = lost;
        beat.depth = depth;
        Ok(beat)
    }

    /// Asks Redis again whether each task (id, [`Receipt::key`]) is still
    /// ours, and for those that are, renews the claim or writes the write
    /// record of results file `file` ([`FencePurpose`]), in one script.
    pub async fn fence(
        &self,
        tasks: &[(String, Bytes)],
        purpose: FencePurpose,
        file: &str,
    ) -> redis::RedisResult<Vec<crate::lease::Fenced>> {
        let c = self.common();
        let mut conn = c.conn.clone();
        let mut out = Vec::with_capacity(tasks.len());
        for chunk in tasks.chunks(1000) {
            let mut inv = c.fence.prepare_invoke();
            for (id, _) in chunk {
                inv.key(c.keys.record(id));
            }
            inv.arg(&c.held_args[..])
                .arg(&*c.claim_value)
                .arg(write_value(file))
                .arg(match purpose {
                    FencePurpose::Publish => "renew",
                    FencePurpose::Write => "write",
                })
                .arg(c.lease.as_millis() as u64)
                .arg(c.write_grace.as_millis() as u64);
            for (_, token) in chunk {
                inv.arg(&token[..]);
            }
            let codes: Vec<u8> = inv.invoke_async(&mut conn).await?;
            out.extend(codes.into_iter().map(crate::lease::Fenced::from_code));
        }
        Ok(out)
    }

    /// Takes up to `max` tasks without waiting.
    pub async fn fetch(&self, max: usize) -> redis::RedisResult<Vec<Delivery>> {
        match self {
            Queue::List(q) => q.fetch(max).await,
            Queue::Stream(q) => q.fetch(max, None).await,
        }
    }

    /// Waits up to `timeout` for tasks.
    pub async fn fetch_blocking(&self, max: usize, timeout: Duration) -> redis::RedisResult<Vec<Delivery>> {
        match self {
            Queue::List(q) => q.fetch_blocking(max, timeout).await,
            Queue::Stream(q) => q.fetch(max, Some(timeout)).await,
        }
    }

    /// Claims each id, unless it was published already or another consumer
    /// works on it.
    ///
    /// The common case costs one plain command per id, all in one pipeline:
    /// `SET Q:id:<id> claim:<us> NX PX <lease>`. It succeeds only when the id
    /// has no record at all: never published (within `dedup_ttl`) and nobody
    /// working on it. The ids whose record exists go through a Lua script
    /// that tells a done record, our own claim (a check repeated after a
    /// reconnect) and another consumer's claim apart: Lua's per-call cost is
    /// paid only for those (docs/performance.md).
    pub async fn check(&self, ids: &[String], file: &str) -> redis::RedisResult<Vec<Check>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.common();
        let mut conn = c.conn.clone();
        let lease = c.lease.as_millis() as u64;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut pipe = redis::Pipeline::with_capacity(chunk.len());
            for id in chunk {
                pipe.add_command(c.keys.set_record(id, &[&c.claim_value], &[&"NX", &"PX", &lease]));
            }
            let replies: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
            let mut taken = Vec::new();
            for claimed in replies {
                if claimed.is_none() {
                    taken.push(out.len());
                }
                out.push(Check::Mine);
            }
            if taken.is_empty() {
                continue;
            }
            let mut inv = c.resolve.prepare_invoke();
            for &at in &taken {
                inv.key(c.keys.record(&ids[at]));
            }
            inv.arg(&*c.consumer).arg(lease).arg(write_value(file));
            let codes: Vec<u8> = inv.invoke_async(&mut conn).await?;
            for (&at, code) in taken.iter().zip(codes) {
                out[at] = match code {
                    1 => Check::Published,
                    0 => Check::Mine,
                    _ => Check::Elsewhere,
                };
            }
        }
        Ok(out)
    }

    /// The transaction that settles a batch: the tasks leave the queue in the
    /// same MULTI that writes their dead letters and done records and drops
    /// their claims. Built apart from running it, so the batch stays with its
    /// owner; `holdings` records the batch once the transaction succeeded
    /// ([`Holdings::settled`]). A task we hold no more (it is another
    /// consumer's now) keeps its place in the queue, and only its done record
    /// is written (its line is on disk).
    pub fn settle_pipeline(&self, batch: &[Settled], holdings: &Holdings) -> redis::Pipeline {
        let c = self.common();
        // A command per task, plus the transaction's and the batch's own.
        let mut pipe = redis::Pipeline::with_capacity(batch.len() + 4);
        pipe.atomic();
        // Claims to drop: tasks settled without being published.
        let mut release = Vec::new();
        for s in batch {
            match (&s.outcome, &s.task_id) {
                (Outcome::Published { url }, Some(id)) => c.record_done(&mut pipe, id, url),
                (Outcome::Dead { .. } | Outcome::NotFound, Some(id)) => release.push(c.keys.record(id)),
                // A duplicate's record is someone's done record: never touched.
                _ => {}
            }
            if let Outcome::Dead { error } = &s.outcome {
                pipe.lpush(&c.keys.dead, dead_letter(s, error, &c.consumer)).ignore();
            }
            if let (Queue::Stream(q), Receipt::Stream(id)) = (self, &s.delivery.receipt) {
                if holdings.holds(&s.delivery.receipt) {
                    q.ack(&mut pipe, id);
                }
            }
        }
        if !release.is_empty() {
            pipe.cmd("EVAL").arg(RELEASE).arg(release.len()).arg(&release).arg(&*c.consumer).ignore();
        }
        if let (Queue::List(q), Some(ledger)) = (self, holdings.ledger()) {
            q.settle(&mut pipe, batch, ledger);
        }
        pipe
    }

    /// Runs a pipeline built by this queue.
    pub async fn run(&self, pipe: redis::Pipeline) -> redis::RedisResult<()> {
        let mut c = self.common().conn.clone();
        pipe.query_async(&mut c).await
    }

    /// Records these (id, url) as published: results that reached the file
    /// before a crash, whose tasks may still be in Redis.
    pub async fn mark_published(&self, items: &[(String, String)]) -> redis::RedisResult<()> {
        let c = self.common();
        let mut conn = c.conn.clone();
        for chunk in items.chunks(1000) {
            let mut pipe = redis::pipe();
            for (id, url) in chunk {
                c.record_done(&mut pipe, id, url);
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        Ok(())
    }

    /// At every connect: tasks Redis counts as ours that we do not hold (their
    /// fetch reply was lost, or an earlier run under our fixed name was
    /// killed). List mode puts them back on the queue (answers none); stream
    /// mode answers them, to be taken again.
    pub async fn reconcile(&self, in_flight: &HashMap<Bytes, usize>) -> redis::RedisResult<(usize, Vec<Delivery>)> {
        match self {
            Queue::List(q) => Ok((q.reconcile(in_flight).await?, Vec::new())),
            Queue::Stream(q) => {
                let lost = q.own_pending(in_flight).await?;
                Ok((lost.len(), lost))
            }
        }
    }

    /// Clean shutdown: list mode returns what is still in processing to the
    /// queue; stream mode leaves it pending, for another consumer to claim
    /// after the lease.
    pub async fn release(&self) -> redis::RedisResult<usize> {
        match self {
            Queue::List(q) => q.release().await,
            Queue::Stream(q) => q.leave().await,
        }
    }
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
    if let Receipt::Stream(id) = &s.delivery.receipt {
        entry["stream_id"] = serde_json::Value::String(id.clone());
    }
    if lossy {
        entry["payload_lossy_utf8"] = serde_json::Value::Bool(true);
    }
    entry.to_string()
}

/// One multiplexed connection whose connect and every command are bounded by
/// `timeout` (for probes and reports; the daemon's own are built in
/// [`Queue::connect`]).
pub async fn connection(url: &str, timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
    redis::Client::open(url)?.get_multiplexed_async_connection_with_config(&config).await
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

    #[test]
    fn dead_letter_keeps_the_payload() {
        let s = Settled {
            delivery: Delivery::from_list(1, 0, Bytes::from_static(b"{\"id\":\xff}")),
            task_id: None,
            outcome: Outcome::Dead { error: "bad".into() },
        };
        let v: serde_json::Value = serde_json::from_str(&dead_letter(&s, "bad", "c1")).unwrap();
        assert_eq!(v["error"], "bad");
        assert_eq!(v["payload"], "{\"id\":\u{fffd}}");
        assert_eq!(v["payload_lossy_utf8"], true);
    }
}
