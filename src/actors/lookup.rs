//! LookupActor: finds the account bound to each task's device.
//!
//! **Job.** Batches the parsed tasks it is given (the QueueReader has already
//! validated and normalised them, and dead-lettered the malformed), up to
//! `lookup.batch_size` or `lookup.batch_wait` (`lookup.backlog_wait` while the
//! queue has a backlog), into one ClickHouse query per batch. Found tasks go
//! to the publisher; the rest are settled as not found.
//! A pool of `lookup.workers` of these runs, each on its own arbiter (thread).
//!
//! **Messages.** In: [`Lookup`]. Out: [`Publish`], [`Settle`].
//!
//! **Failure.** A ClickHouse error (down, timeout, missing table) leaves the
//! batch at the head of the pending tasks and stops the actor; its
//! `Supervisor` restarts it and `started()` reconnects after a backoff whose
//! cap depends on the failure ([`crate::failure::classify_clickhouse`]) and
//! which only an answered lookup resets: a server that accepts connections
//! and the connect-time queries but fails every lookup still sees the
//! backoff grow to its cap. Nothing is dead-lettered because
//! ClickHouse failed: the tasks wait, and the QueueReader pauses intake while
//! ClickHouse is marked failing.
//!
//! **A restart resets** the ClickHouse client; a query it cancelled puts its
//! batch back at the head of the pending tasks ([`super::pending::Pending`]).
//! The pending tasks, the backoff and the log limiter stay.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use slog::{debug, error, info, warn, Logger};

use super::forward;
use super::pending::Pending;
use super::reconnect::Reconnect;
use crate::config::Settings;
use crate::db::{Db, DbError, KeyLookup};
use crate::failure::{classify_clickhouse, Failure};
use crate::messages::{Found, Job, Lookup, Outcome, Publish, Settle};
use crate::metrics::{Dependency, Metrics};

pub struct LookupActor {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    settle: Recipient<Settle>,
    publish: Recipient<Publish>,
    /// The lookup client (holds an awc client: built here, on this arbiter).
    db: Option<Rc<KeyLookup>>,
    /// Tasks waiting for a query, and the batch a query runs for.
    pending: Pending<Job>,
    /// The timer that runs a partial batch, and when it fires.
    flush_timer: Option<(SpawnHandle, Instant)>,
    /// The latest tasks came while the queue had a backlog.
    backlog: bool,
    reconnect: Reconnect,
}

impl LookupActor {
    pub fn new(
        settings: Arc<Settings>,
        log: Logger,
        metrics: Arc<Metrics>,
        settle: Recipient<Settle>,
        publish: Recipient<Publish>,
        worker: usize,
    ) -> Self {
        LookupActor {
            log: log.new(slog::o!("actor" => "lookup", "worker" => worker)),
            settings,
            metrics,
            settle,
            publish,
            db: None,
            pending: Pending::default(),
            flush_timer: None,
            backlog: false,
            reconnect: Reconnect::new(Dependency::ClickHouse),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let settings = self.settings.clone();
        let fut = async move {
            let db = Db::connect(&settings.clickhouse).await?;
            let plan = db.plan().await?;
            Ok::<_, DbError>((db, plan))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((db, plan)) => {
                // While a failure streak lasts, a connect is no news.
                let kv = slog::o!("version" => db.version.clone(), "ipv4_column" => format!("{:?}", plan.column),
                    "table" => db.lookup_ref(), "access" => format!("{:?}", plan.access),
                    "block_cache" => plan.block_cache);
                if !act.reconnect.failing() {
                    info!(act.log.new(kv), "connected to ClickHouse");
                } else {
                    debug!(act.log.new(kv), "connected to ClickHouse");
                }
                act.db = Some(Rc::new(KeyLookup::new(&act.settings.clickhouse, plan)));
                // Ready again: intake waits for this, and a lookup needs intake.
                act.metrics.up(Dependency::ClickHouse);
                act.maybe_query(ctx);
            }
            Err(e) => act.fail(ctx, e),
        }));
    }

    fn fail(&mut self, ctx: &mut Context<Self>, e: DbError) {
        let failure = match &e {
            DbError::Unavailable(message) => classify_clickhouse(message),
            DbError::Schema(_) => Failure::Misconfigured,
        };
        if let Some(suppressed) = self.reconnect.failed(&self.metrics, failure, e.to_string()) {
            if failure == Failure::Misconfigured {
                error!(self.log, "ClickHouse refuses the lookup; fix the configuration or run `seed`. Lookups wait";
                    "error" => %e, "pending" => self.pending.len(), "similar_errors_suppressed" => suppressed);
            } else {
                warn!(self.log, "ClickHouse failed; lookups wait until it answers again";
                    "error" => %e, "failure" => failure.label(), "pending" => self.pending.len(),
                    "similar_errors_suppressed" => suppressed);
            }
        }
        self.db = None;
        ctx.stop();
    }

    /// Runs a query when a batch is full, or arms the timer for a partial one:
    /// `batch_wait`, or the longer `backlog_wait` while the queue has a
    /// backlog. A timer armed for a backlog is brought forward when the
    /// backlog ends.
    fn maybe_query(&mut self, ctx: &mut Context<Self>) {
        if !self.pending.ready() || self.db.is_none() {
            return;
        }
        let l = &self.settings.lookup;
        let wait = if self.backlog { l.backlog_wait.max(l.batch_wait) } else { l.batch_wait };
        if self.pending.queued() >= l.batch_size || wait.is_zero() {
            self.query(ctx);
            return;
        }
        let now = Instant::now();
        match self.flush_timer {
            Some((_, at)) if at <= now + wait => {}
            _ => {
                if let Some((t, _)) = self.flush_timer.take() {
                    ctx.cancel_future(t);
                }
                let handle = ctx.run_later(wait, |act, ctx| {
                    act.flush_timer = None;
                    act.query(ctx);
                });
                self.flush_timer = Some((handle, now + wait));
            }
        }
    }

    fn query(&mut self, ctx: &mut Context<Self>) {
        if !self.pending.ready() {
            return;
        }
        let Some(lookup) = self.db.clone() else { return };
        if let Some((t, _)) = self.flush_timer.take() {
            ctx.cancel_future(t);
        }
        let batch = self.pending.start(self.settings.lookup.batch_size);
        let mut keys: Vec<(u32, u64)> = batch.iter().map(|j| j.task.device_key()).collect();
        keys.sort_unstable();
        keys.dedup();
        let started = Instant::now();
        let devices = keys.len();
        let fut = async move { lookup.run(&keys).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(found) => {
                if act.reconnect.succeeded() {
                    info!(act.log, "ClickHouse answers lookups again");
                }
                act.metrics.up(Dependency::ClickHouse);
                act.metrics.lookup_seconds.observe(started.elapsed().as_secs_f64());
                act.metrics.lookup_batch_size.observe(devices as f64);
                act.metrics.lookup_batches.inc();
                let mut hits = Vec::new();
                let mut misses = Vec::new();
                for job in act.pending.finish() {
                    match found.get(&job.task.device_key()) {
                        Some(username) => {
                            hits.push(Found { delivery: job.delivery, task: job.task, username: username.clone() })
                        }
                        None => misses.push(job.settled(Outcome::NotFound)),
                    }
                }
                if !hits.is_empty() {
                    forward(&act.publish, Publish(hits));
                }
                if !misses.is_empty() {
                    forward(&act.settle, Settle::new(misses));
                }
                act.maybe_query(ctx);
            }
            Err(e) => {
                act.pending.cancel();
                act.fail(ctx, e);
            }
        }));
    }
}

impl Actor for LookupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.reconnect.delay();
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }
}

impl Supervised for LookupActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.db = None;
        // A query cancelled by the stop: its batch waits at the head again.
        self.pending.cancel();
        self.flush_timer = None;
    }
}

impl Handler<Lookup> for LookupActor {
    type Result = ();

    fn handle(&mut self, msg: Lookup, ctx: &mut Context<Self>) {
        self.pending.extend(msg.jobs);
        self.backlog = msg.backlog;
        self.maybe_query(ctx);
    }
}
