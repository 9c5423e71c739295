//! LookupActor: parses tasks and finds the account bound to each device.
//!
//! **Job.** Validates and normalises every task (the malformed are settled as
//! dead at once, with the reason), then batches valid tasks, up to
//! `lookup.batch_size` or `lookup.batch_wait`, into one ClickHouse query per
//! batch. Found tasks go to the publisher; the rest are settled as not found.
//! A pool of `lookup.workers` of these runs, each on its own arbiter (thread).
//!
//! **Messages.** In: [`Lookup`]. Out: [`Publish`], [`Settle`].
//!
//! **Failure.** A ClickHouse error (down, timeout, missing table) puts the
//! batch back at the head of the pending tasks and stops the actor; its
//! `Supervisor` restarts it and `started()` reconnects after a full-jitter
//! backoff. Nothing is dead-lettered because ClickHouse failed: the tasks wait,
//! and the QueueReader's in-flight bound pauses intake.
//!
//! **A restart resets** the ClickHouse client and the flags of the cancelled
//! query. The pending tasks stay in the struct.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use slog::{info, warn, Logger};

use super::publisher::PublisherActor;
use super::queue_reader::QueueReader;
use super::{forward, LogLimiter};
use crate::backoff::Backoff;
use crate::config::Settings;
use crate::db::{Db, DbError, Ipv4Column};
use crate::messages::{Delivery, Found, Lookup, Outcome, Publish, Settle, Settled};
use crate::metrics::{Dependency, Metrics};
use crate::task::Task;

struct Job {
    delivery: Delivery,
    task: Task,
}

pub struct LookupActor {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    queue_reader: Addr<QueueReader>,
    publisher: Addr<PublisherActor>,
    db: Option<(Db, Ipv4Column)>,
    pending: VecDeque<Job>,
    querying: bool,
    flush_timer: Option<SpawnHandle>,
    backoff: Backoff,
    log_limit: LogLimiter,
}

impl LookupActor {
    pub fn new(
        settings: Arc<Settings>,
        log: Logger,
        metrics: Arc<Metrics>,
        queue_reader: Addr<QueueReader>,
        publisher: Addr<PublisherActor>,
        worker: usize,
    ) -> Self {
        LookupActor {
            log: log.new(slog::o!("actor" => "lookup", "worker" => worker)),
            settings,
            metrics,
            queue_reader,
            publisher,
            db: None,
            pending: VecDeque::new(),
            querying: false,
            flush_timer: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            log_limit: LogLimiter::default(),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let settings = self.settings.clone();
        let fut = async move {
            let db = Db::connect(&settings.clickhouse).await?;
            let column = db.ipv4_column().await?;
            Ok::<_, DbError>((db, column))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((db, column)) => {
                info!(act.log, "connected to ClickHouse"; "version" => &db.version, "ipv4_column" => ?column,
                    "table" => db.table_ref());
                act.db = Some((db, column));
                act.backoff.reset();
                act.log_limit.reset();
                act.metrics.up(Dependency::ClickHouse);
                act.maybe_query(ctx);
            }
            Err(e) => act.fail(ctx, e),
        }));
    }

    fn fail(&mut self, ctx: &mut Context<Self>, e: DbError) {
        let reason = match e {
            DbError::Unavailable(_) => "unavailable",
            DbError::Schema(_) => "schema",
        };
        self.metrics.down(Dependency::ClickHouse, e.to_string());
        self.metrics.retry(Dependency::ClickHouse, reason);
        if let Some(suppressed) = self.log_limit.allow(Duration::from_secs(10)) {
            warn!(self.log, "ClickHouse failed; lookups wait until it answers again";
                "error" => %e, "pending" => self.pending.len(), "similar_errors_suppressed" => suppressed);
        }
        self.db = None;
        ctx.stop();
    }

    /// Runs a query when a batch is full, or arms the timer for a partial one.
    fn maybe_query(&mut self, ctx: &mut Context<Self>) {
        if self.querying || self.db.is_none() || self.pending.is_empty() {
            return;
        }
        if self.pending.len() >= self.settings.lookup.batch_size || self.settings.lookup.batch_wait.is_zero() {
            self.query(ctx);
        } else if self.flush_timer.is_none() {
            let wait = self.settings.lookup.batch_wait;
            self.flush_timer = Some(ctx.run_later(wait, |act, ctx| {
                act.flush_timer = None;
                act.query(ctx);
            }));
        }
    }

    fn query(&mut self, ctx: &mut Context<Self>) {
        if self.querying || self.pending.is_empty() {
            return;
        }
        let Some((db, column)) = self.db.clone() else { return };
        if let Some(t) = self.flush_timer.take() {
            ctx.cancel_future(t);
        }
        self.querying = true;
        let n = self.pending.len().min(self.settings.lookup.batch_size);
        let mut keys: Vec<(u32, u64)> = self.pending.iter().take(n).map(|j| j.task.device_key()).collect();
        keys.sort_unstable();
        keys.dedup();
        let fut = async move { db.lookup(column, &keys).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.querying = false;
            match res {
                Ok(found) => {
                    act.metrics.lookup_batches.fetch_add(1, Ordering::Relaxed);
                    act.metrics.lookup_rows.fetch_add(n as u64, Ordering::Relaxed);
                    let mut hits = Vec::new();
                    let mut misses = Vec::new();
                    for job in act.pending.drain(..n) {
                        match found.get(&job.task.device_key()) {
                            Some(username) => {
                                hits.push(Found { delivery: job.delivery, task: job.task, username: username.clone() })
                            }
                            None => misses.push(Settled { delivery: job.delivery, outcome: Outcome::NotFound }),
                        }
                    }
                    if !hits.is_empty() {
                        forward(&act.publisher, Publish(hits));
                    }
                    if !misses.is_empty() {
                        forward(&act.queue_reader, Settle(misses));
                    }
                    act.maybe_query(ctx);
                }
                // The batch is still at the head of `pending`.
                Err(e) => act.fail(ctx, e),
            }
        }));
    }
}

impl Actor for LookupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = if self.backoff.failures() == 0 { Duration::ZERO } else { self.backoff.next_delay() };
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }
}

impl Supervised for LookupActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.db = None;
        self.querying = false;
        self.flush_timer = None;
        if self.backoff.failures() == 0 {
            // Make the next start wait at least a little.
            let _ = self.backoff.next_delay();
        }
    }
}

impl Handler<Lookup> for LookupActor {
    type Result = ();

    fn handle(&mut self, msg: Lookup, ctx: &mut Context<Self>) {
        let mut dead = Vec::new();
        for delivery in msg.0 {
            match delivery.parse() {
                Ok(task) => self.pending.push_back(Job { delivery, task }),
                Err(e) => dead.push(Settled { delivery, outcome: Outcome::Dead { error: e.to_string() } }),
            }
        }
        if !dead.is_empty() {
            forward(&self.queue_reader, Settle(dead));
        }
        self.maybe_query(ctx);
    }
}
