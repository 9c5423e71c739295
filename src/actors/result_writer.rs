//! ResultWriter: makes results durable, then lets their tasks be settled.
//!
//! **Job.** Appends one JSON line per published task to `output.path` with
//! group commit: while one write+fsync runs (on a blocking thread), new
//! records gather, and the next write takes them all. Only after the fsync
//! returns are the tasks sent on as settled, so a task leaves Redis only once
//! its line is on disk.
//!
//! **Messages.** In: [`Record`]. Out: [`Settle`].
//!
//! **Failure.** A failed open, write or fsync (disk full, I/O error) puts the
//! batch back at the head of the buffer, truncates any partial write, and
//! stops the actor; its `Supervisor` restarts it, and `started()` reopens the
//! file after a full-jitter backoff. Publishing goes on until the QueueReader's
//! in-flight bound pauses intake.
//!
//! **A restart resets** the file handle. The buffered records stay.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;
use slog::{info, warn, Logger};

use super::queue_reader::QueueReader;
use super::{forward, LogLimiter};
use crate::backoff::Backoff;
use crate::config::Settings;
use crate::messages::{Outcome, Published, Record, Settle, Settled};
use crate::metrics::{Dependency, Metrics};
use crate::results::{Line, ResultsFile};

pub struct ResultWriter {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    queue_reader: Addr<QueueReader>,
    file: Option<ResultsFile>,
    buffer: Vec<Published>,
    writing: bool,
    backoff: Backoff,
    log_limit: LogLimiter,
}

impl ResultWriter {
    pub fn new(settings: Arc<Settings>, log: Logger, metrics: Arc<Metrics>, queue_reader: Addr<QueueReader>) -> Self {
        ResultWriter {
            log: log.new(slog::o!("actor" => "result_writer")),
            settings,
            metrics,
            queue_reader,
            file: None,
            buffer: Vec::new(),
            writing: false,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
            log_limit: LogLimiter::default(),
        }
    }

    fn open(&mut self, ctx: &mut Context<Self>) {
        let path = self.settings.output.path.clone();
        let fut = async move { actix_rt::task::spawn_blocking(move || ResultsFile::open(&path)).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok(Ok((file, removed))) => {
                if removed > 0 {
                    warn!(act.log, "removed a partial last line left by a crash"; "bytes" => removed,
                        "path" => %file.path().display());
                }
                info!(act.log, "results file open"; "path" => %file.path().display());
                act.file = Some(file);
                act.backoff.reset();
                act.log_limit.reset();
                act.metrics.up(Dependency::Disk);
                act.write(ctx);
            }
            Ok(Err(e)) => act.fail(ctx, "open", e.to_string()),
            Err(e) => act.fail(ctx, "open", e.to_string()),
        }));
    }

    fn fail(&mut self, ctx: &mut Context<Self>, during: &'static str, error: String) {
        self.metrics.down(Dependency::Disk, format!("{during}: {error}"));
        self.metrics.retry(Dependency::Disk, during);
        if let Some(suppressed) = self.log_limit.allow(Duration::from_secs(10)) {
            warn!(self.log, "results file failed; results wait in memory"; "during" => during, "error" => error,
                "buffered" => self.buffer.len(), "similar_errors_suppressed" => suppressed);
        }
        self.file = None;
        ctx.stop();
    }

    /// Starts one group commit of everything buffered, unless one runs.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.buffer.is_empty() {
            return;
        }
        let Some(mut file) = self.file.take() else { return };
        self.writing = true;
        let batch = std::mem::take(&mut self.buffer);
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut bytes = Vec::with_capacity(batch.len() * 160);
        for p in &batch {
            serde_json::to_writer(&mut bytes, &Line::new(p, now.clone())).expect("a line always serialises");
            bytes.push(b'\n');
        }
        let fut = async move {
            actix_rt::task::spawn_blocking(move || {
                let res = file.append(&bytes);
                (file, res)
            })
            .await
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.writing = false;
            match res {
                Ok((file, Ok(()))) => {
                    act.file = Some(file);
                    act.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
                    let settled = batch
                        .into_iter()
                        .map(|p| Settled {
                            outcome: Outcome::Published { id: p.found.task.id.clone(), url: p.url },
                            delivery: p.found.delivery,
                        })
                        .collect();
                    forward(&act.queue_reader, Settle(settled));
                    act.write(ctx);
                }
                Ok((_, Err(e))) => {
                    act.requeue(batch);
                    act.fail(ctx, "write", e.to_string());
                }
                Err(e) => {
                    act.requeue(batch);
                    act.fail(ctx, "write", e.to_string());
                }
            }
        }));
    }

    fn requeue(&mut self, mut batch: Vec<Published>) {
        batch.append(&mut self.buffer);
        self.buffer = batch;
    }
}

impl Actor for ResultWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = if self.backoff.failures() == 0 { Duration::ZERO } else { self.backoff.next_delay() };
        ctx.run_later(delay, |act, ctx| act.open(ctx));
    }
}

impl Supervised for ResultWriter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.file = None;
        self.writing = false;
        if self.backoff.failures() == 0 {
            let _ = self.backoff.next_delay();
        }
    }
}

impl Handler<Record> for ResultWriter {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) {
        self.buffer.extend(msg.0);
        self.write(ctx);
    }
}
