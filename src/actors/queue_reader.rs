//! QueueReader: takes tasks from Redis and settles them there.
//!
//! **Job.** Moves tasks from the queue into this consumer's processing list in
//! batches (at most `daemon.max_in_flight` in flight), hands them to the
//! LookupActor pool round-robin, and removes each from Redis only when its
//! outcome is final ([`Settle`]), dead-lettering in the same transaction.
//! Keeps the consumer's heartbeat and returns dead consumers' tasks to the
//! queue.
//!
//! **Messages.** In: [`Settle`] (from every stage), [`StopIntake`],
//! [`Drained`], [`Release`] (shutdown). Out: [`Lookup`].
//!
//! **Failure.** Any Redis error stops the actor; its `Supervisor` restarts it,
//! and `started()` reconnects after a full-jitter backoff. Meanwhile intake is
//! paused; settlements wait in the struct and are retried after reconnecting.
//!
//! **A restart resets** the connections and the fetching/settling flags (their
//! futures were cancelled). It keeps the in-flight set, the pending
//! settlements and the counters. After reconnecting, tasks found in our
//! processing list that we do not hold (a fetch whose reply was lost) go back
//! to the queue.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use slog::{debug, error, info, warn, Logger};
use tokio::sync::oneshot;

use super::lookup::LookupActor;
use super::{forward, LogLimiter};
use crate::backoff::Backoff;
use crate::config::{redact_url, Settings};
use crate::messages::{Delivery, Drained, Lookup, Receipt, Release, Settle, Settled, StopIntake};
use crate::metrics::{Dependency, Metrics};
use crate::queue::ListQueue;

pub struct QueueReader {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    consumer: String,
    lookups: Vec<Addr<LookupActor>>,
    next_lookup: usize,
    /// `None` while disconnected.
    queue: Option<ListQueue>,
    /// Receipts of tasks in flight (a multiset: identical payloads count twice).
    in_flight: HashMap<Bytes, usize>,
    in_flight_count: usize,
    to_settle: Vec<Settled>,
    fetching: bool,
    settling: bool,
    intake_open: bool,
    drain_waiters: Vec<oneshot::Sender<()>>,
    backoff: Backoff,
    /// True once a connection was lost, so the next connect reconciles.
    reconnecting: bool,
    log_limit: LogLimiter,
}

impl QueueReader {
    pub fn new(settings: Arc<Settings>, log: Logger, metrics: Arc<Metrics>, consumer: String) -> Self {
        let log = log.new(slog::o!("actor" => "queue_reader", "consumer" => consumer.clone()));
        QueueReader {
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            settings,
            log,
            metrics,
            consumer,
            lookups: Vec::new(),
            next_lookup: 0,
            queue: None,
            in_flight: HashMap::new(),
            in_flight_count: 0,
            to_settle: Vec::new(),
            fetching: false,
            settling: false,
            intake_open: true,
            drain_waiters: Vec::new(),
            reconnecting: false,
            log_limit: LogLimiter::default(),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let settings = self.settings.clone();
        let consumer = self.consumer.clone();
        let reconcile = self.reconnecting.then(|| self.in_flight.clone());
        let fut = async move {
            let q = ListQueue::connect(&settings.redis, &consumer).await?;
            q.heartbeat().await?;
            let recovered = q.recover_orphans().await?;
            let reconciled = match reconcile {
                Some(in_flight) => q.reconcile(&in_flight).await?,
                None => 0,
            };
            Ok::<_, redis::RedisError>((q, recovered, reconciled))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((q, recovered, reconciled)) => {
                info!(act.log, "connected to Redis";
                    "url" => redact_url(act.settings.redis.url.expose()),
                    "queue" => &act.settings.redis.queue,
                    "recovered_from_dead_consumers" => recovered,
                    "returned_lost_fetches" => reconciled);
                act.queue = Some(q);
                act.reconnecting = false;
                act.backoff.reset();
                act.log_limit.reset();
                act.metrics.up(Dependency::Redis);
                act.start_heartbeat(ctx);
                act.settle(ctx);
                act.fetch(ctx);
            }
            Err(e) => act.fail(ctx, "connect", e),
        }));
    }

    /// A Redis error: pause, and let the supervisor restart us to reconnect.
    fn fail(&mut self, ctx: &mut Context<Self>, during: &'static str, e: redis::RedisError) {
        self.metrics.down(Dependency::Redis, format!("{during}: {e}"));
        self.metrics.retry(Dependency::Redis, during);
        if let Some(suppressed) = self.log_limit.allow(Duration::from_secs(10)) {
            warn!(self.log, "Redis failed; intake paused until it answers again";
                "during" => during, "error" => %e, "similar_errors_suppressed" => suppressed);
        }
        self.queue = None;
        self.reconnecting = true;
        ctx.stop();
    }

    fn start_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let every = self.settings.redis.lease / 3;
        ctx.run_interval(every, |act, ctx| {
            let Some(q) = act.queue.clone() else { return };
            let fut = async move {
                q.heartbeat().await?;
                q.recover_orphans().await
            };
            ctx.spawn(fut.into_actor(act).map(|res, act, ctx| match res {
                Ok(0) => {}
                Ok(n) => info!(act.log, "returned tasks of a dead consumer to the queue"; "tasks" => n),
                Err(e) => act.fail(ctx, "heartbeat", e),
            }));
        });
    }

    fn fetch(&mut self, ctx: &mut Context<Self>) {
        let max = self.settings.daemon.max_in_flight;
        if self.fetching || !self.intake_open || self.lookups.is_empty() || self.in_flight_count >= max {
            return;
        }
        let Some(q) = self.queue.clone() else { return };
        if self.metrics.is_refused() {
            // The paste service refuses us: take nothing until it accepts again.
            ctx.run_later(Duration::from_secs(1), |act, ctx| act.fetch(ctx));
            return;
        }
        self.fetching = true;
        let n = self.settings.redis.fetch_batch.min(max - self.in_flight_count);
        let block = self.settings.redis.block;
        let fut = async move {
            let items = q.fetch(n).await?;
            if !items.is_empty() {
                return Ok(items);
            }
            Ok(q.fetch_blocking(block).await?.into_iter().collect())
        };
        ctx.spawn(fut.into_actor(self).map(|res: redis::RedisResult<Vec<Bytes>>, act, ctx| {
            act.fetching = false;
            match res {
                Ok(items) => {
                    act.dispatch(items);
                    act.fetch(ctx);
                }
                Err(e) => act.fail(ctx, "fetch", e),
            }
            act.check_drained();
        }));
    }

    /// Counts the tasks in flight and hands them to the next LookupActor.
    fn dispatch(&mut self, items: Vec<Bytes>) {
        if items.is_empty() {
            return;
        }
        debug!(self.log, "took tasks"; "count" => items.len());
        let deliveries: Vec<Delivery> = items
            .into_iter()
            .map(|payload| {
                *self.in_flight.entry(payload.clone()).or_default() += 1;
                Delivery::from_list(payload)
            })
            .collect();
        self.in_flight_count += deliveries.len();
        self.metrics.in_flight.store(self.in_flight_count as u64, Ordering::Relaxed);
        let target = &self.lookups[self.next_lookup % self.lookups.len()];
        self.next_lookup = self.next_lookup.wrapping_add(1);
        forward(target, Lookup(deliveries));
    }

    fn settle(&mut self, ctx: &mut Context<Self>) {
        if self.settling || self.to_settle.is_empty() {
            return;
        }
        let Some(q) = self.queue.clone() else { return };
        self.settling = true;
        let batch = std::mem::take(&mut self.to_settle);
        let fut = async move {
            let res = q.settle(&batch).await;
            (batch, res)
        };
        ctx.spawn(fut.into_actor(self).map(|(batch, res), act, ctx| {
            act.settling = false;
            match res {
                Ok(()) => {
                    act.settled(&batch);
                    act.settle(ctx);
                    act.fetch(ctx);
                }
                Err(e) => {
                    // Keep them, in order, for the retry after reconnecting.
                    let mut batch = batch;
                    batch.append(&mut act.to_settle);
                    act.to_settle = batch;
                    act.fail(ctx, "settle", e);
                }
            }
        }));
    }

    fn settled(&mut self, batch: &[Settled]) {
        for s in batch {
            if let Receipt::List(payload) = &s.delivery.receipt {
                if let Some(n) = self.in_flight.get_mut(payload) {
                    *n -= 1;
                    if *n == 0 {
                        self.in_flight.remove(payload);
                    }
                }
            }
            self.metrics.count(s.outcome.kind(), 1);
        }
        self.in_flight_count = self.in_flight_count.saturating_sub(batch.len());
        self.metrics.in_flight.store(self.in_flight_count as u64, Ordering::Relaxed);
        self.check_drained();
    }

    /// Drained: nothing in flight and no fetch that could still bring a task.
    fn is_drained(&self) -> bool {
        self.in_flight_count == 0 && !self.fetching
    }

    fn check_drained(&mut self) {
        if self.is_drained() {
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

impl Actor for QueueReader {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay =
            if self.backoff.failures() == 0 && !self.reconnecting { Duration::ZERO } else { self.backoff.next_delay() };
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }
}

impl Supervised for QueueReader {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.queue = None;
        self.fetching = false;
        self.settling = false;
        self.reconnecting = true;
    }
}

/// The lookup pool, given once it exists (it needs our address first).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachLookups(pub Vec<Addr<LookupActor>>);

impl Handler<AttachLookups> for QueueReader {
    type Result = ();
    fn handle(&mut self, msg: AttachLookups, ctx: &mut Context<Self>) {
        self.lookups = msg.0;
        self.fetch(ctx);
    }
}

impl Handler<Settle> for QueueReader {
    type Result = ();
    fn handle(&mut self, msg: Settle, ctx: &mut Context<Self>) {
        self.to_settle.extend(msg.0);
        self.settle(ctx);
    }
}

impl Handler<StopIntake> for QueueReader {
    type Result = ();
    fn handle(&mut self, _: StopIntake, _: &mut Context<Self>) {
        info!(self.log, "intake stopped"; "in_flight" => self.in_flight_count);
        self.intake_open = false;
    }
}

impl Handler<Drained> for QueueReader {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Drained, _: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.is_drained() {
            let _ = tx.send(());
        } else {
            self.drain_waiters.push(tx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Release> for QueueReader {
    type Result = ResponseFuture<Result<usize, String>>;
    fn handle(&mut self, _: Release, _: &mut Context<Self>) -> Self::Result {
        let q = self.queue.clone();
        let left = self.in_flight_count;
        let log = self.log.clone();
        Box::pin(async move {
            let Some(q) = q else {
                error!(log, "Redis is unreachable at shutdown; tasks in flight return when the lease expires"; "tasks" => left);
                return Err("Redis unreachable".to_owned());
            };
            q.release().await.map_err(|e| e.to_string())
        })
    }
}
