//! PublisherActor: publishes found tasks to the paste service.
//!
//! **Job.** POSTs each document to the paste service (`publisher.kind`: the
//! pastebin form, a multipart `upload`, or a JSON `webhook`) with at most
//! `publisher.concurrency` requests in flight (with `"adaptive"`, as many as
//! the [`Controller`] finds the service takes), each limited to
//! `publisher.timeout`, paced by a governor rate limiter built from
//! `[publisher.rate_limit]`. Every answer is classified by
//! [`crate::sink::verdict::classify_redirect`] (redirects are not followed), then
//! [`crate::sink::verdict::classify_pastebin`] or [`crate::sink::verdict::classify_http`], and
//! acted on:
//! published -> [`Record`] to the ResultWriter, and the [`Circuit`] closes;
//! transient -> the circuit opens for a backoff, then probes with one request
//! at a time until one succeeds (half-open); over quota -> open for
//! `Retry-After` or `publisher.quota_cooldown`; refused -> open for
//! `publisher.refused_retry`, report not ready, and the QueueReader stops
//! intake; rejected -> the task's own failure, retried until
//! `publisher.max_attempts`, then settled as dead.
//!
//! **Fencing.** A job whose claim may have lapsed (its lease epoch is not the
//! live one: this process stalled, or Redis was away) is not sent: the jobs
//! in that state go to the QueueReader in one [`Fence`], and only those
//! still ours come back to the line. A paste can then be created twice only
//! for a request that was on the wire when the process stalled.
//!
//! **Messages.** In: [`Publish`]. Out: [`Record`], [`Fence`], [`Settle`]
//! (dead only).
//!
//! **Failure.** After three transient failures in a row, once no request is in
//! flight, the actor stops and its `Supervisor` restarts it with a new HTTP
//! client (fresh connections and DNS). No task is ever dropped: every job is
//! in `waiting`, `delayed` or `active` in the struct.
//!
//! **A restart resets** the HTTP client. The jobs (those being fenced too),
//! the rate limiter's state, the circuit, the adaptive window, the failure
//! counts and the log limiter stay.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use foldhash::{HashMap, HashMapExt};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use slog::{error, info, warn, Logger};

use super::pending::Pending;
use super::{ask_fence, forward, LogLimiter};
use crate::backoff::{full_jitter, Backoff};
use crate::config::{Concurrency, PublisherKind, PublisherSettings, RateLimit, Settings};
use crate::lease::{Act, LeaseClock};
use crate::messages::{Fence, FenceAnswer, FencePurpose, Fenced, Found, Outcome, Publish, Published, Record, Settle};
use crate::metrics::{Dependency, Metrics};
use crate::multipart;
use crate::sink::circuit::Circuit;
use crate::sink::concurrency::{Controller, Signal};
use crate::sink::request::{pastebin_form, post_request};
use crate::sink::verdict::{
    classify_http, classify_pastebin, classify_redirect, parse_retry_after, webhook_url, PastebinForm, Verdict,
};
use crate::task::Document;

/// Largest answer body read from the paste service.
const MAX_BODY: usize = 64 * 1024;
/// Below this, a rate-limit wait is slept on the thread rather than timed.
const PRECISE_WAIT: Duration = Duration::from_millis(2);
/// Transient failures in a row after which the HTTP client is rebuilt.
const RESTART_AFTER: u32 = 3;

struct Job {
    found: Found,
    /// Failures that were the task's own (rejected documents).
    rejections: u32,
}

pub struct PublisherActor {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    record: Recipient<Record>,
    settle: Recipient<Settle>,
    fence_to: Recipient<Fence>,
    /// The POST to `publisher.url` with its fixed headers, built once with
    /// the HTTP client and sent once per attempt with each body: a request
    /// head per paste is a large allocation on the hot path.
    request: Option<awc::FrozenClientRequest>,
    /// `publisher.url`, parsed once (config validation used the same parser).
    uri: awc::http::Uri,
    limiter: Option<DefaultDirectRateLimiter>,
    waiting: VecDeque<Job>,
    /// Jobs waiting out their own retry delay after a rejection.
    delayed: Vec<(Instant, Job)>,
    active: HashMap<u64, Job>,
    next_request: u64,
    /// Whether to send at all: closed, paused (open), or probing (half-open).
    circuit: Circuit,
    wake: Option<SpawnHandle>,
    /// Published results not yet handed to the ResultWriter: those answered
    /// within one turn of the event loop go together, one message per turn
    /// rather than one per task (each message wakes the writer's thread).
    to_record: Vec<Published>,
    record_scheduled: bool,
    backoff: Backoff,
    log_limit: LogLimiter,
    /// The pastebin form's fixed fields, encoded once.
    form: PastebinForm,
    clock: Arc<LeaseClock>,
    /// Jobs whose claim must be confirmed before they are sent; the batch
    /// whose fence is under way runs in it.
    fences: Pending<Job>,
    /// With `publisher.concurrency = "adaptive"`: the window of requests.
    adaptive: Option<Controller>,
}

impl PublisherActor {
    pub fn new(
        settings: Arc<Settings>,
        log: Logger,
        metrics: Arc<Metrics>,
        record: Recipient<Record>,
        settle: Recipient<Settle>,
        fence_to: Recipient<Fence>,
        clock: Arc<LeaseClock>,
    ) -> Self {
        let p = &settings.publisher;
        let form = pastebin_form(p);
        let uri = p.url.parse().expect("publisher.url is validated with this parser");
        PublisherActor {
            clock,
            fences: Pending::default(),
            adaptive: match p.concurrency {
                Concurrency::Adaptive { max } => Some(Controller::new(max, Instant::now())),
                Concurrency::Fixed(_) => None,
            },
            uri,
            log: log.new(slog::o!("actor" => "publisher")),
            form,
            limiter: p.rate_limit.map(|rl| RateLimiter::direct(quota(rl))),
            backoff: Backoff::new(p.backoff_base, p.backoff_max),
            settings,
            metrics,
            record,
            settle,
            fence_to,
            request: None,
            waiting: VecDeque::new(),
            delayed: Vec::new(),
            active: HashMap::new(),
            next_request: 0,
            circuit: Circuit::Closed,
            wake: None,
            to_record: Vec::new(),
            record_scheduled: false,
            log_limit: LogLimiter::default(),
        }
    }

    fn p(&self) -> &PublisherSettings {
        &self.settings.publisher
    }

    /// Starts as many requests as concurrency, pause and rate limit allow.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        if self.request.is_none() {
            return;
        }
        let window = match (&self.adaptive, self.p().concurrency) {
            (Some(c), _) => c.limit(),
            (None, c) => c.max(),
        };
        self.metrics.publish_window.set(window as i64);
        let concurrency = match self.circuit.permits(now, window) {
            Ok(n) => n,
            Err(until) => return self.wake_at(ctx, until),
        };
        // Rejected jobs whose delay is over join the line again.
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                let (_, job) = self.delayed.swap_remove(i);
                self.waiting.push_back(job);
            } else {
                i += 1;
            }
        }
        while self.active.len() < concurrency && !self.waiting.is_empty() {
            let epoch = self.waiting.front().expect("checked non-empty").found.delivery.lease_epoch;
            if self.clock.decide(epoch) == Act::Revalidate {
                let job = self.waiting.pop_front().expect("checked non-empty");
                self.fences.push(job);
                continue;
            }
            if let Some(limiter) = &self.limiter {
                if let Err(not_until) = limiter.check() {
                    let wait = not_until.wait_time_from(DefaultClock::default().now());
                    self.metrics.rate_limit_wait(wait);
                    if wait > PRECISE_WAIT {
                        // Wake a little early: the timer rounds up to whole
                        // milliseconds, and with burst 1 every late start is
                        // rate lost for good.
                        return self.wake_at(ctx, now + wait - PRECISE_WAIT);
                    }
                    // The last stretch on this actor's own thread, to the
                    // microsecond; only ever while the limiter holds us back.
                    std::thread::sleep(wait);
                    continue;
                }
            }
            let job = self.waiting.pop_front().expect("checked non-empty");
            self.send(ctx, job);
        }
        if let Some(next) = self.delayed.iter().map(|(t, _)| *t).min() {
            self.wake_at(ctx, next);
        }
        self.fence(ctx);
    }

    /// Asks the QueueReader whether the jobs waiting in `fences` are still ours;
    /// the answer comes back as [`Fenced`].
    fn fence(&mut self, ctx: &mut Context<Self>) {
        if !self.fences.ready() {
            return;
        }
        let batch = self.fences.take_queued();
        let jobs = self.fences.run(batch).iter().map(|j| j.found.job()).collect();
        ask_fence(&self.fence_to, FencePurpose::Publish, jobs, ctx.address().recipient());
    }

    fn wake_at(&mut self, ctx: &mut Context<Self>, at: Instant) {
        if let Some(h) = self.wake.take() {
            ctx.cancel_future(h);
        }
        let delay = at.saturating_duration_since(Instant::now());
        self.wake = Some(ctx.run_later(delay, |act, ctx| {
            act.wake = None;
            act.pump(ctx);
        }));
    }

    fn send(&mut self, ctx: &mut Context<Self>, job: Job) {
        let request = self.request.as_ref().expect("pump checks the client");
        let id = self.next_request;
        self.next_request += 1;
        let p = &self.settings.publisher;
        let document = Document::new(&job.found.task, &job.found.username).to_json();
        let sent = match p.kind {
            PublisherKind::Pastebin => request.send_body(self.form.body(&document, &job.found.task.id)),
            PublisherKind::Upload => {
                let filename = format!("{}.json", job.found.task.id);
                let (content_type, body) =
                    multipart::one_file(&p.field, &filename, "application/json", document.as_bytes());
                request.extra_header(("content-type", content_type)).send_body(body)
            }
            PublisherKind::Webhook => match &p.body {
                Some(template) => request.send_body(template.expand(&document, &job.found.task.id)),
                None => request.send_body(document),
            },
        };
        self.active.insert(id, job);
        if let Some(c) = &mut self.adaptive {
            c.started(self.active.len());
        }
        self.metrics.publish_attempts.inc();
        let (kind, pointer, pointer_first, timeout) = (p.kind, p.url_pointer.clone(), p.pointer_first, p.timeout);
        let url_template = p.url_template.clone();
        let attempt = async move {
            let mut resp = match sent.await {
                Ok(r) => r,
                Err(e) => return Verdict::Transient(format!("request failed: {e}")),
            };
            let status = resp.status().as_u16();
            let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
            let location = header("location");
            let body = match resp.body().limit(MAX_BODY).await {
                Ok(body) => body,
                Err(e) => return Verdict::Transient(format!("HTTP {status}, body unreadable: {e}")),
            };
            if let Some(verdict) = classify_redirect(kind == PublisherKind::Webhook, status, location.as_deref()) {
                return verdict;
            }
            match kind {
                PublisherKind::Pastebin => classify_pastebin(status, retry_after, &body),
                PublisherKind::Upload | PublisherKind::Webhook => {
                    let value = match kind {
                        PublisherKind::Webhook => webhook_url(location.as_deref(), &pointer, pointer_first, &body),
                        _ => std::str::from_utf8(&body).ok().map(|s| s.trim().to_owned()),
                    };
                    let url = match (&url_template, value) {
                        (Some(t), Some(v)) if (200..300).contains(&status) && !v.trim().is_empty() => {
                            Some(t.expand(&v))
                        }
                        (_, value) => value,
                    };
                    classify_http(status, retry_after, url.as_deref(), &body)
                }
            }
        };
        // One timer per attempt, for the head and the body.
        let fut = async move {
            tokio::time::timeout(timeout, attempt)
                .await
                .unwrap_or_else(|_| Verdict::Transient(format!("no complete answer within {timeout:?}")))
        };
        let started = Instant::now();
        ctx.spawn(fut.into_actor(self).map(move |verdict, act, ctx| {
            let rtt = started.elapsed();
            act.metrics.publish_seconds.observe(rtt.as_secs_f64());
            if let Some(c) = &mut act.adaptive {
                // Overload shrinks the window; a refusal says nothing of load.
                match &verdict {
                    Verdict::Transient(_) | Verdict::OverQuota { .. } => {
                        c.finished(Instant::now(), Signal::BackPressure)
                    }
                    Verdict::Published(_) | Verdict::Rejected(_) => c.finished(Instant::now(), Signal::Answered(rtt)),
                    Verdict::Refused(_) => {}
                }
            }
            act.answered(ctx, id, verdict)
        }));
    }

    fn answered(&mut self, ctx: &mut Context<Self>, id: u64, verdict: Verdict) {
        let Some(mut job) = self.active.remove(&id) else { return };
        let task_id = job.found.task.id.clone();
        match verdict {
            Verdict::Published(url) => {
                if self.metrics.problems().contains_key(&Dependency::PasteService) {
                    info!(self.log, "paste service answers again");
                }
                self.backoff.reset();
                self.log_limit.reset();
                self.circuit.close();
                self.metrics.up(Dependency::PasteService);
                self.to_record.push(Published { found: job.found, url });
                if !self.record_scheduled {
                    self.record_scheduled = true;
                    ctx.run_later(Duration::ZERO, |act, _| act.hand_on_results());
                }
            }
            Verdict::Transient(reason) => {
                self.waiting.push_front(job);
                let delay = self.backoff.next_delay();
                self.circuit.open(Instant::now() + delay, true);
                self.metrics.retry(Dependency::PasteService, "transient");
                self.metrics.down(Dependency::PasteService, reason.clone());
                if let Some(suppressed) = self.log_limit.allow(Duration::from_secs(10)) {
                    warn!(self.log, "paste service failed; publishing paused"; "task_id" => task_id,
                        "reason" => reason, "retry_in" => ?delay, "similar_errors_suppressed" => suppressed);
                }
                if self.backoff.failures() >= RESTART_AFTER && self.active.is_empty() {
                    info!(self.log, "rebuilding the HTTP client after repeated failures");
                    ctx.stop();
                    return;
                }
            }
            Verdict::OverQuota { retry_after, reason } => {
                self.waiting.push_front(job);
                let delay = retry_after.unwrap_or(self.p().quota_cooldown);
                self.circuit.open(Instant::now() + delay, false);
                self.metrics.retry(Dependency::PasteService, "quota");
                self.metrics.down(Dependency::PasteService, format!("over quota: {reason}"));
                warn!(self.log, "paste service quota reached; publishing paused"; "task_id" => task_id,
                    "reason" => reason, "resume_in" => ?delay);
            }
            Verdict::Refused(reason) => {
                self.waiting.push_front(job);
                let delay = self.p().refused_retry;
                self.circuit.open(Instant::now() + delay, false);
                self.metrics.retry(Dependency::PasteService, "refused");
                self.metrics.refused(format!("refused: {reason}"));
                error!(self.log, "paste service refuses us: check publisher.api_dev_key / api_user_key; \
                    intake stopped, every task is kept"; "reason" => reason, "retry_in" => ?delay);
            }
            Verdict::Rejected(reason) => {
                job.rejections += 1;
                self.metrics.retry(Dependency::PasteService, "rejected");
                if job.rejections >= self.p().max_attempts {
                    warn!(self.log, "paste service rejected the document; dead-lettered"; "task_id" => task_id,
                        "reason" => &reason, "attempts" => job.rejections);
                    let error = format!("paste service rejected the document {} times: {reason}", job.rejections);
                    forward(&self.settle, Settle::new(vec![job.found.settled(Outcome::Dead { error })]));
                } else {
                    let delay = full_jitter(self.p().backoff_base, self.p().backoff_max, job.rejections - 1);
                    warn!(self.log, "paste service rejected the document; will retry"; "task_id" => task_id,
                        "reason" => reason, "attempt" => job.rejections, "retry_in" => ?delay);
                    self.delayed.push((Instant::now() + delay, job));
                }
            }
        }
        self.pump(ctx);
    }

    fn hand_on_results(&mut self) {
        self.record_scheduled = false;
        if !self.to_record.is_empty() {
            forward(&self.record, Record(std::mem::take(&mut self.to_record)));
        }
    }
}

/// The governor quota for a configured limit: one request per interval, with
/// at most `burst` at once.
pub fn quota(rl: RateLimit) -> Quota {
    Quota::with_period(rl.interval()).expect("validated non-zero").allow_burst(rl.burst)
}

impl Actor for PublisherActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // awc clients are !Send: build it here, on this actor's arbiter.
        self.request = Some(post_request(self.p(), self.uri.clone()));
        self.pump(ctx);
    }
}

impl Supervised for PublisherActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        // The scheduled hand-on was cancelled with the context: do it now.
        self.hand_on_results();
        self.request = None;
        self.wake = None;
        // Only stopped with nothing in flight, but never lose a job regardless.
        for (_, job) in self.active.drain() {
            self.waiting.push_front(job);
        }
    }
}

impl Handler<Fenced> for PublisherActor {
    type Result = ();

    fn handle(&mut self, msg: Fenced, ctx: &mut Context<Self>) {
        let batch = self.fences.finish();
        if msg.0.len() != batch.len() {
            // No answer (the QueueReader is gone: the process is ending).
            self.fences.extend(batch);
            return;
        }
        let mut ours = Vec::new();
        for (mut job, answer) in batch.into_iter().zip(msg.0) {
            if let FenceAnswer::Go { epoch } = answer {
                job.found.delivery.lease_epoch = epoch;
                ours.push(job);
            }
        }
        // Back to the head of the line, in their order.
        for job in ours.into_iter().rev() {
            self.waiting.push_front(job);
        }
        self.pump(ctx);
    }
}

impl Handler<Publish> for PublisherActor {
    type Result = ();

    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) {
        self.waiting.extend(msg.0.into_iter().map(|found| Job { found, rejections: 0 }));
        self.pump(ctx);
    }
}
