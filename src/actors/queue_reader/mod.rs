//! QueueReader: takes tasks from Redis, makes sure each id is worked on once,
//! and settles tasks there.
//!
//! **Job.** Moves tasks from the queue into this consumer's processing hash in
//! batches (at most `daemon.max_in_flight` in flight) and parses each; a
//! malformed one is dead-lettered at once. A task whose id is already in
//! flight waits ("parked") until the first copy is settled; a task whose id
//! has a done record (published within `redis.dedup_ttl`) is settled as a
//! duplicate. The rest go to the LookupActor pool, round-robin. A task is
//! removed from Redis only when its outcome is final ([`Settle`]), in the same
//! transaction as its dead letter or done record. Also keeps this consumer's
//! heartbeat and returns dead consumers' tasks to the queue. Tells the
//! lookups whether the queue has a backlog (the last fetch was full).
//!
//! **Intake** opens only after the ResultWriter reported what the results
//! file holds beyond its checkpoint ([`Recovered`]) and those ids are recorded
//! as done, and it pauses while any dependency is failing.
//!
//! **Fencing.** It keeps the lease clock ([`crate::lease`]) from the
//! heartbeats, which also report what we hold no more. Nothing that touches
//! Redis runs (fetch, check, settle, fence) while the clock is not live; a
//! heartbeat is sent at once instead, so after a stall what we hold is
//! re-validated before anything else. Tasks another consumer took over are
//! dropped as they come back from the stages (counted `lost_lease`); the
//! stages ask before acting ([`Fence`]), and this actor answers, taking back
//! what it must settle as a duplicate or look at again.
//!
//! **Messages.** In: [`Recovered`], [`Settle`] (from every stage), [`Fence`],
//! [`StopIntake`], [`Drained`], [`Release`]. Out: [`Lookup`].
//!
//! **Failure.** Any Redis error stops the actor; its `Supervisor` restarts it,
//! and `started()` reconnects after a backoff (classified by
//! [`crate::failure::classify_redis_error`]) that only a fetch or a settle
//! done resets, never a connect alone. Settlements, checks, fences and marks
//! wait in the struct and are retried after reconnecting.
//!
//! **A restart resets** the connections and the flags of the cancelled
//! futures. It keeps the in-flight set, what it holds (`queue::Holdings`), the claims,
//! the lease clock, everything pending, the backoff, the log limiter and the
//! counters. On every connect, fetches found in
//! our processing hash that we do not hold (their reply was lost, or, under a
//! fixed `redis.consumer`, an earlier run of ours was killed) go back to the
//! queue; in stream mode such entries are taken again.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use slog::{debug, error, info, warn, Logger};
use tokio::sync::oneshot;

mod id_gate;
mod intake;

use id_gate::IdGate;
use intake::Intake;

use super::forward;
use super::pending::Pending;
use super::reconnect::Reconnect;
use crate::config::{redact_url, Settings};
use crate::failure::{classify_redis_error, Failure};
use crate::lease::{Confirmed, Fenced, LeaseClock};
use crate::messages::{
    Delivery, Drained, Fence, FenceAnswer, Job, Lookup, Outcome, Recovered, Release, Settle, Settled, StopIntake,
};
use crate::metrics::{Dependency, Metrics, TaskOutcome};
use crate::queue::{Beat, Check, Holdings, Queue};

/// How soon an id that another consumer works on is checked again.
const ELSEWHERE_RETRY: Duration = Duration::from_secs(1);

pub struct QueueReader {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    consumer: String,
    lookups: Vec<Recipient<Lookup>>,
    next_lookup: usize,
    /// `None` while disconnected.
    queue: Option<Queue>,

    in_flight_count: usize,
    /// What we hold in Redis: list mode's fetches, stream mode's entries.
    holdings: Holdings,
    /// Ids being worked on; a second task with the same id is parked.
    ids: IdGate<Job>,
    /// Parsed and claimed, to be checked against done records. Work stays in
    /// the struct while a future works on it ([`Pending`]): a failure
    /// cancels that future, and `restarting()` puts the work back.
    checks: Pending<Job>,
    /// Ids another consumer works on now; checked again after a while.
    elsewhere: Vec<Job>,
    elsewhere_timer: Option<SpawnHandle>,
    /// Tasks to settle, and who waits for their batch to be settled (the
    /// ResultWriter, to move its checkpoint): two lines run in step.
    settles: Pending<Settled>,
    settle_waiters: Pending<oneshot::Sender<()>>,
    /// Whether tasks are taken: after the results file's lines are recorded
    /// as published, until shutdown.
    intake: Intake,

    fetching: bool,
    /// The last fetch was full: the queue likely holds more (passed on to
    /// the lookups, which then wait for fuller batches).
    backlog: bool,
    /// While intake is paused for a failing dependency: the wait for the
    /// health to change.
    health_wait: Option<SpawnHandle>,
    health: tokio::sync::watch::Receiver<u64>,
    drain_waiters: Vec<oneshot::Sender<()>>,
    reconnect: Reconnect,
    /// Until when what we hold is proven ours; shared with the publisher.
    clock: Arc<LeaseClock>,
    /// The results file's id, from [`Recovered`]: names our write records.
    file_id: String,
    beating: bool,
    /// Fence requests waiting, and the one whose script runs now.
    fences: VecDeque<PendingFence>,
    in_fence: Option<PendingFence>,
}

/// A [`Fence`] request and where its answer goes.
struct PendingFence {
    msg: Fence,
    reply: oneshot::Sender<Vec<FenceAnswer>>,
}

impl QueueReader {
    pub fn new(
        settings: Arc<Settings>,
        log: Logger,
        metrics: Arc<Metrics>,
        consumer: String,
        clock: Arc<LeaseClock>,
    ) -> Self {
        let log = log.new(slog::o!("actor" => "queue_reader", "consumer" => consumer.clone()));
        QueueReader {
            health: metrics.health_changes(),
            holdings: Holdings::new(settings.redis.mode),
            clock,
            file_id: String::new(),
            beating: false,
            fences: VecDeque::new(),
            in_fence: None,
            settings,
            log,
            metrics,
            consumer,
            lookups: Vec::new(),
            next_lookup: 0,
            queue: None,
            in_flight_count: 0,
            ids: IdGate::default(),
            checks: Pending::default(),
            elsewhere: Vec::new(),
            elsewhere_timer: None,
            settles: Pending::default(),
            settle_waiters: Pending::default(),
            intake: Intake::default(),
            fetching: false,
            backlog: false,
            health_wait: None,
            drain_waiters: Vec::new(),
            reconnect: Reconnect::new(Dependency::Redis),
        }
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let settings = self.settings.clone();
        let consumer = self.consumer.clone();
        // Also at the first connect: under a fixed `redis.consumer`, what a
        // killed earlier run held is ours, and no other consumer takes it.
        let held = self.holdings.held();
        let (claimed, tokens) = self.beat_args();
        let capacity = self.capacity();
        let fut = async move {
            let q = Queue::connect(&settings.redis, &consumer).await?;
            let sent_at = Instant::now();
            let beat = q.heartbeat(claimed, tokens, capacity).await?;
            let (reconciled, lost) = q.reconcile(&held).await?;
            Ok::<_, redis::RedisError>((q, sent_at, beat, reconciled, lost))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((q, sent_at, beat, reconciled, lost)) => {
                // While a failure streak lasts, a connect is no news: a
                // dependency that accepts connections and fails real work
                // would log one per attempt.
                let kv = slog::o!("url" => redact_url(act.settings.redis.url.expose()),
                    "queue" => act.settings.redis.queue.clone(),
                    "mode" => format!("{:?}", act.settings.redis.mode),
                    "lost_fetches" => reconciled);
                if !act.reconnect.failing() {
                    info!(act.log.new(kv), "connected to Redis");
                } else {
                    debug!(act.log.new(kv), "connected to Redis");
                }
                act.queue = Some(q);
                act.metrics.up(Dependency::Redis);
                act.take(lost);
                act.start_heartbeat(ctx);
                act.beaten(ctx, sent_at, beat);
            }
            Err(e) => act.fail(ctx, "connect", e),
        }));
    }

    /// What a heartbeat renews: the ids we claimed, and what we hold
    /// ([`Receipt::key`]s).
    fn beat_args(&self) -> (Vec<String>, Vec<Bytes>) {
        let claimed = self.ids.ids().cloned().collect();
        let tokens = self.holdings.held().into_keys().collect();
        (claimed, tokens)
    }

    /// Sends a heartbeat now, unless one is under way.
    fn beat(&mut self, ctx: &mut Context<Self>) {
        let Some(q) = self.queue.clone() else { return };
        if self.beating {
            return;
        }
        self.beating = true;
        let (claimed, tokens) = self.beat_args();
        let capacity = self.capacity();
        let sent_at = Instant::now();
        let fut = async move { q.heartbeat(claimed, tokens, capacity).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.beating = false;
            match res {
                Ok(beat) => act.beaten(ctx, sent_at, beat),
                Err(e) => act.fail(ctx, "heartbeat", e),
            }
        }));
    }

    /// A heartbeat sent at `sent_at` was acknowledged: the lease clock moves
    /// on, what we hold no more is forgotten, dead consumers' work is taken.
    fn beaten(&mut self, ctx: &mut Context<Self>, sent_at: Instant, beat: Beat) {
        self.metrics.queue_depth.set(beat.depth as i64);
        if let Confirmed::NewEpoch(epoch) = self.clock.confirm(sent_at) {
            if epoch > 1 {
                warn!(self.log, "this consumer was silent beyond its lease (stalled, or Redis was away); \
                    what it holds was checked again"; "epoch" => epoch, "taken_over" => beat.lost.len());
            }
        }
        for token in &beat.lost {
            self.holdings.forget(token);
        }
        if beat.requeued > 0 {
            info!(self.log, "returned tasks of a dead consumer to the queue"; "tasks" => beat.requeued);
        }
        if !beat.reclaimed.is_empty() {
            info!(self.log, "claimed tasks of a dead consumer"; "tasks" => beat.reclaimed.len());
            self.take(beat.reclaimed);
        }
        self.kick(ctx);
    }

    /// The live lease epoch; when there is none, a heartbeat is sent and the
    /// caller waits for it (its answer kicks everything again).
    fn live(&mut self, ctx: &mut Context<Self>) -> Option<u64> {
        let epoch = self.clock.live_epoch();
        if epoch.is_none() {
            self.beat(ctx);
        }
        epoch
    }

    /// Tasks another consumer took over, back from wherever they were: they
    /// leave our count in flight, settled by nobody here.
    fn drop_lost(&mut self, ids: Vec<Option<String>>) {
        if ids.is_empty() {
            return;
        }
        warn!(self.log, "tasks taken over by another consumer while this one was silent; dropped here";
            "tasks" => ids.len());
        self.metrics.count(TaskOutcome::LostLease, ids.len() as u64);
        self.in_flight_count = self.in_flight_count.saturating_sub(ids.len());
        self.metrics.in_flight.set(self.in_flight_count as i64);
        for id in ids.into_iter().flatten() {
            self.release_claim(id);
        }
        self.check_drained();
    }

    /// How many more tasks intake may take now.
    fn capacity(&self) -> usize {
        if !self.intake.is_open() || self.intake_paused().is_some() {
            return 0;
        }
        self.settings.daemon.max_in_flight.saturating_sub(self.in_flight_count)
    }

    /// Restarts every piece of pending work that can run now.
    fn kick(&mut self, ctx: &mut Context<Self>) {
        self.mark(ctx);
        self.settle(ctx);
        self.fence(ctx);
        self.check(ctx);
        self.fetch(ctx);
    }

    /// A Redis error: pause, and let the supervisor restart us to reconnect.
    fn fail(&mut self, ctx: &mut Context<Self>, during: &'static str, e: redis::RedisError) {
        let failure = classify_redis_error(&e);
        if let Some(suppressed) = self.reconnect.failed(&self.metrics, failure, format!("{during}: {e}")) {
            if failure == Failure::Misconfigured {
                error!(self.log, "Redis refuses our commands; fix the configuration. Intake paused";
                    "during" => during, "error" => %e, "similar_errors_suppressed" => suppressed);
            } else {
                warn!(self.log, "Redis failed; intake paused until it answers again";
                    "during" => during, "error" => %e, "failure" => failure.label(),
                    "similar_errors_suppressed" => suppressed);
            }
        }
        self.queue = None;
        ctx.stop();
    }

    fn start_heartbeat(&mut self, ctx: &mut Context<Self>) {
        let every = self.settings.redis.lease / 3;
        ctx.run_interval(every, |act, ctx| act.beat(ctx));
    }

    // --- intake -----------------------------------------------------------

    /// Why intake is paused, if it is.
    fn intake_paused(&self) -> Option<String> {
        if self.intake.awaiting_results_file() {
            return Some("waiting for the results file to be checked".into());
        }
        let problems = self.metrics.problems();
        problems
            .iter()
            .find(|(dep, _)| **dep != Dependency::Redis)
            .map(|(dep, why)| format!("{} failing: {why}", dep.label()))
    }

    fn fetch(&mut self, ctx: &mut Context<Self>) {
        let max = self.settings.daemon.max_in_flight;
        if self.fetching || !self.intake.is_open() || self.lookups.is_empty() || self.in_flight_count >= max {
            return;
        }
        let Some(q) = self.queue.clone() else { return };
        if self.live(ctx).is_none() {
            return;
        }
        // Seen before looking, so a change after the look is not missed.
        self.health.borrow_and_update();
        if let Some(why) = self.intake_paused() {
            debug!(self.log, "intake paused"; "why" => why);
            if self.health_wait.is_none() {
                let mut changes = self.health.clone();
                let wait = async move { changes.changed().await.is_ok() };
                self.health_wait = Some(ctx.spawn(wait.into_actor(self).map(|_, act, ctx| {
                    act.health_wait = None;
                    act.fetch(ctx);
                })));
            }
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
            q.fetch_blocking(n, block).await
        };
        ctx.spawn(fut.into_actor(self).map(move |res: redis::RedisResult<Vec<Delivery>>, act, ctx| {
            act.fetching = false;
            match res {
                Ok(items) => {
                    act.succeeded();
                    act.backlog = items.len() >= n;
                    act.take(items);
                    act.kick(ctx);
                }
                Err(e) => act.fail(ctx, "fetch", e),
            }
            act.check_drained();
        }));
    }

    /// Counts fetched tasks in flight and sorts them: malformed (or delivered
    /// too often) to be dead-lettered, the rest claimed or parked.
    fn take(&mut self, items: Vec<Delivery>) {
        if items.is_empty() {
            return;
        }
        debug!(self.log, "took tasks"; "count" => items.len());
        self.in_flight_count += items.len();
        self.metrics.in_flight.set(self.in_flight_count as i64);
        self.holdings.took(&items);
        let max_deliveries = self.settings.redis.max_deliveries;
        for delivery in items {
            if delivery.deliveries > max_deliveries {
                let error = format!("delivered {} times without a final outcome", delivery.deliveries);
                warn!(self.log, "task keeps coming back; dead-lettered"; "deliveries" => delivery.deliveries);
                self.settles.push(Settled { delivery, task_id: None, outcome: Outcome::Dead { error } });
                continue;
            }
            match delivery.parse() {
                Ok(task) => self.claim(Job { delivery, task }),
                Err(e) => {
                    debug!(self.log, "malformed task"; "error" => %e);
                    self.settles.push(Settled {
                        delivery,
                        task_id: None,
                        outcome: Outcome::Dead { error: e.to_string() },
                    })
                }
            }
        }
    }

    /// One id is worked on once at a time: a second copy waits for the first.
    fn claim(&mut self, job: Job) {
        let id = job.task.id.clone();
        match self.ids.admit(&id, job) {
            Some(job) => self.checks.push(job),
            None => debug!(self.log, "same id already in flight; parked"; "task_id" => id),
        }
    }

    /// Settles ids already published as duplicates; hands on the rest.
    fn check(&mut self, ctx: &mut Context<Self>) {
        if !self.checks.ready() {
            return;
        }
        let Some(q) = self.queue.clone() else { return };
        let Some(epoch) = self.live(ctx) else { return };
        let (held, lost): (Vec<Job>, Vec<Job>) =
            self.checks.take_queued().into_iter().partition(|j| self.holdings.holds(&j.delivery.receipt));
        self.drop_lost(lost.into_iter().map(|j| Some(j.task.id)).collect());
        if held.is_empty() {
            return;
        }
        let ids: Vec<String> = self.checks.run(held).iter().map(|j| j.task.id.clone()).collect();
        let file = self.file_id.clone();
        let fut = async move { q.check(&ids, &file).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(checks) => {
                let jobs = act.checks.finish();
                let mut fresh = Vec::with_capacity(jobs.len());
                for (mut job, check) in jobs.into_iter().zip(checks) {
                    match check {
                        Check::Mine => {
                            job.delivery.lease_epoch = epoch;
                            fresh.push(job)
                        }
                        Check::Published => {
                            debug!(act.log, "already published; not again"; "task_id" => &job.task.id);
                            act.settles.push(job.settled(Outcome::Duplicate));
                        }
                        Check::Elsewhere => {
                            debug!(act.log, "another consumer works on this id; later"; "task_id" => &job.task.id);
                            act.elsewhere.push(job);
                        }
                    }
                }
                act.dispatch(fresh);
                act.retry_elsewhere_later(ctx);
                act.kick(ctx);
            }
            Err(e) => act.fail(ctx, "check", e),
        }));
    }

    fn retry_elsewhere_later(&mut self, ctx: &mut Context<Self>) {
        if self.elsewhere.is_empty() || self.elsewhere_timer.is_some() {
            return;
        }
        self.elsewhere_timer = Some(ctx.run_later(ELSEWHERE_RETRY, |act, ctx| {
            act.elsewhere_timer = None;
            let jobs = std::mem::take(&mut act.elsewhere);
            act.checks.extend(jobs);
            act.kick(ctx);
        }));
    }

    fn dispatch(&mut self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let target = &self.lookups[self.next_lookup % self.lookups.len()];
        self.next_lookup = self.next_lookup.wrapping_add(1);
        forward(target, Lookup { jobs, backlog: self.backlog });
    }

    // --- settling ---------------------------------------------------------

    /// Records the ids found in the results file at start as published.
    fn mark(&mut self, ctx: &mut Context<Self>) {
        let Some(q) = self.queue.clone() else { return };
        let Some(items) = self.intake.start_recording() else { return };
        let fut = async move { q.mark_published(&items).await.map(|()| items.len()) };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(n) => {
                if n > 0 {
                    info!(act.log, "recorded results written before the last stop as published"; "ids" => n);
                }
                act.intake.recorded();
                act.kick(ctx);
            }
            // `restarting()` lets it run again.
            Err(e) => act.fail(ctx, "mark", e),
        }));
    }

    fn settle(&mut self, ctx: &mut Context<Self>) {
        if !self.settles.ready() {
            return;
        }
        let Some(q) = self.queue.clone() else { return };
        if self.live(ctx).is_none() {
            return;
        }
        // What we hold no more is another consumer's to settle; a published
        // task's line is on disk, so its done record is written regardless.
        let (keep, lost): (Vec<Settled>, Vec<Settled>) =
            self.settles.take_queued().into_iter().partition(|s| {
                matches!(s.outcome, Outcome::Published { .. }) || self.holdings.holds(&s.delivery.receipt)
            });
        self.drop_lost(lost.into_iter().map(|s| s.task_id).collect());
        let waiters = self.settle_waiters.take_queued();
        self.settle_waiters.run(waiters);
        let pipe = q.settle_pipeline(self.settles.run(keep), &self.holdings);
        let fut = async move { q.run(pipe).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            match res {
                Ok(()) => {
                    act.succeeded();
                    for w in act.settle_waiters.finish() {
                        let _ = w.send(());
                    }
                    let batch = act.settles.finish();
                    act.holdings.settled(&batch);
                    act.settled(batch);
                    act.kick(ctx);
                }
                // The batch is still running in `settles`; `restarting()` requeues it.
                Err(e) => act.fail(ctx, "settle", e),
            }
        }));
    }

    fn settled(&mut self, batch: Vec<Settled>) {
        let n = batch.len();
        for s in batch {
            let took = s.delivery.taken_at.elapsed();
            self.metrics.count(s.outcome.kind(), 1);
            self.metrics.task_seconds.observe(took.as_secs_f64());
            debug!(self.log, "settled"; "task_id" => s.task_id.as_deref().unwrap_or("-"),
                "outcome" => s.outcome.kind().label(), "ms" => took.as_millis() as u64);
            if let Some(id) = s.task_id {
                self.release_claim(id);
            }
        }
        self.in_flight_count = self.in_flight_count.saturating_sub(n);
        self.metrics.in_flight.set(self.in_flight_count as i64);
        self.check_drained();
    }

    /// Real work done in Redis: the failure streak is over.
    fn succeeded(&mut self) {
        if self.reconnect.succeeded() {
            info!(self.log, "Redis answers again");
        }
    }

    /// Runs the next fence request: asks Redis, for each of its tasks,
    /// whether it is still ours, then answers, taking back what must be
    /// settled as a duplicate or looked at again.
    fn fence(&mut self, ctx: &mut Context<Self>) {
        if self.in_fence.is_some() || self.fences.is_empty() {
            return;
        }
        let Some(q) = self.queue.clone() else { return };
        let Some(epoch) = self.live(ctx) else { return };
        let pending = self.fences.pop_front().expect("checked non-empty");
        let tasks: Vec<(String, Bytes)> =
            pending.msg.jobs.iter().map(|j| (j.task.id.clone(), j.delivery.receipt.key())).collect();
        let (purpose, file) = (pending.msg.purpose, self.file_id.clone());
        self.in_fence = Some(pending);
        let fut = async move { q.fence(&tasks, purpose, &file).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
            Ok(verdicts) => {
                let pending = act.in_fence.take().expect("set while the script runs");
                let mut lost = Vec::new();
                let mut answers = Vec::with_capacity(verdicts.len());
                for (job, verdict) in pending.msg.jobs.into_iter().zip(verdicts) {
                    answers.push(match verdict {
                        Fenced::Keep => FenceAnswer::Go { epoch },
                        Fenced::Lost => {
                            lost.push(Some(job.task.id));
                            FenceAnswer::Dropped
                        }
                        Fenced::Duplicate => {
                            act.settles.push(job.settled(Outcome::Duplicate));
                            FenceAnswer::Dropped
                        }
                        Fenced::Elsewhere => {
                            act.elsewhere.push(job);
                            FenceAnswer::Dropped
                        }
                    });
                }
                let _ = pending.reply.send(answers);
                act.drop_lost(lost);
                act.retry_elsewhere_later(ctx);
                act.kick(ctx);
            }
            // The request is still in `in_fence`; `restarting()` requeues it.
            Err(e) => act.fail(ctx, "fence", e),
        }));
    }

    /// The first copy of an id is settled: the next parked copy takes the claim
    /// (its done record, if the first was published, makes it a duplicate).
    fn release_claim(&mut self, id: String) {
        if let Some(next) = self.ids.release(&id) {
            self.checks.push(next);
        }
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
        let delay = self.reconnect.delay();
        ctx.run_later(delay, |act, ctx| act.connect(ctx));
    }
}

impl Supervised for QueueReader {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        // Work whose future was cancelled goes back to the head of its line.
        self.settles.cancel();
        self.settle_waiters.cancel();
        self.checks.cancel();
        if let Some(fence) = self.in_fence.take() {
            self.fences.push_front(fence);
        }
        self.queue = None;
        self.fetching = false;
        self.intake.interrupted();
        self.beating = false;
        self.health_wait = None;
        self.elsewhere_timer = None;
        // Ids waiting on another consumer are checked again after reconnecting.
        let elsewhere = std::mem::take(&mut self.elsewhere);
        self.checks.extend(elsewhere);
    }
}

/// The lookup pool, given once it exists (it needs our address first).
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachLookups(pub Vec<Recipient<Lookup>>);

impl Handler<AttachLookups> for QueueReader {
    type Result = ();
    fn handle(&mut self, msg: AttachLookups, ctx: &mut Context<Self>) {
        self.lookups = msg.0;
        self.fetch(ctx);
    }
}

impl Handler<Recovered> for QueueReader {
    type Result = ();
    fn handle(&mut self, msg: Recovered, ctx: &mut Context<Self>) {
        self.intake.recovered(msg.lines);
        self.file_id = msg.file_id;
        self.mark(ctx);
    }
}

impl Handler<Fence> for QueueReader {
    type Result = ResponseFuture<Vec<FenceAnswer>>;
    fn handle(&mut self, msg: Fence, ctx: &mut Context<Self>) -> Self::Result {
        let (reply, answer) = oneshot::channel();
        self.fences.push_back(PendingFence { msg, reply });
        self.fence(ctx);
        // The sender is dropped only with this actor, when the process ends.
        Box::pin(async move { answer.await.unwrap_or_default() })
    }
}

impl Handler<Settle> for QueueReader {
    type Result = ();
    fn handle(&mut self, msg: Settle, ctx: &mut Context<Self>) {
        self.settles.extend(msg.items);
        self.settle_waiters.extend(msg.durable);
        self.settle(ctx);
    }
}

impl Handler<StopIntake> for QueueReader {
    type Result = ();
    fn handle(&mut self, _: StopIntake, _: &mut Context<Self>) {
        info!(self.log, "intake stopped"; "in_flight" => self.in_flight_count);
        self.intake.stop();
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
