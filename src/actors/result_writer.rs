//! ResultWriter: makes results durable, then lets their tasks be settled.
//!
//! **Job.** Appends one JSON line per published task to `output.path` with
//! group commit: while one write+fsync runs (on a blocking thread), new
//! records gather, and the next write takes them all; under load it also
//! waits [`GATHER`] after each commit to take more. Only after the fsync
//! returns are the tasks sent on as settled, so a task leaves Redis only once
//! its line is on disk. When Redis confirms a batch settled, the checkpoint
//! beside the file moves past it. At start it repairs the file and reports
//! the lines after the checkpoint ([`Recovered`]), so that a task whose line
//! was written just before a crash gets no second line.
//!
//! **Fencing.** Before each group commit it asks the QueueReader to turn
//! each task's claim into this file's write record ([`Fence`]); only the
//! tasks still ours get a line. From then on no other consumer redoes them,
//! even if this process stalls between the fsync and the settle.
//!
//! **Messages.** In: [`Record`]. Out: [`Fence`], [`Settle`], [`Recovered`]
//! (once).
//!
//! **Failure.** A failed open, write or fsync (disk full, I/O error) puts the
//! batch back at the head of the buffer, truncates any partial write, and
//! stops the actor; its `Supervisor` restarts it, and `started()` reopens the
//! file after a backoff ([`crate::failure::classify_disk`]) that only a
//! write made durable resets. The QueueReader pauses intake while the disk is
//! marked failing.
//!
//! **A restart resets** the file handle. The buffered records, the batch
//! being fenced, the bookkeeping of unsettled batches, the backoff and the
//! log limiter stay.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix::prelude::*;
use slog::{error, info, warn, Logger};
use tokio::sync::oneshot;

use super::pending::Pending;
use super::reconnect::Reconnect;
use super::{ask_fence, forward};
use crate::config::Settings;
use crate::failure::{classify_disk, Failure};
use crate::messages::{Fence, FenceAnswer, FencePurpose, Fenced, Outcome, Published, Record, Recovered, Settle};
use crate::metrics::{Dependency, Metrics};
use crate::results::{write_checkpoint, Line, ResultsFile};

/// The checkpoint beside the results file is written at most this often.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Under load a group commit waits this long after the previous one before
/// it starts, so that each fsync (and each settle in Redis) carries more
/// lines: fewer fsyncs and transactions per task (docs/performance.md). A
/// commit of fewer than [`GATHER_FROM`] lines means the daemon is not under
/// load, and the next one starts at once, so light load sees no added
/// latency.
const GATHER: Duration = Duration::from_millis(4);
const GATHER_FROM: usize = 32;

/// Where the writer's messages go (all handled by the QueueReader in the
/// daemon).
pub struct WriterOutlets {
    pub settle: Recipient<Settle>,
    pub recovered: Recipient<Recovered>,
    pub fence: Recipient<Fence>,
}

/// A written batch, waiting for Redis to confirm it settled.
struct Written {
    seq: u64,
    end: u64,
    settled: bool,
}

pub struct ResultWriter {
    settings: Arc<Settings>,
    log: Logger,
    metrics: Arc<Metrics>,
    to: WriterOutlets,
    file: Option<ResultsFile>,
    /// Lines waiting for a group commit, and the batch a commit runs for.
    commit: Pending<Published>,
    /// The running batch waits for its fence's answer ([`Fenced`]), which
    /// comes by message, restart or not; otherwise it is being written.
    fencing: bool,
    reported: bool,
    written: VecDeque<Written>,
    next_seq: u64,
    /// The offset up to which every line is settled, and whether the file
    /// beside the results needs updating.
    checkpoint: u64,
    checkpoint_dirty: bool,
    checkpointing: bool,
    /// When the checkpoint was last written, to write it at most every
    /// CHECKPOINT_EVERY: a stale checkpoint is safe, and a file replaced per
    /// batch showed in the daemon's profile (docs/performance.md).
    last_checkpoint: Option<Instant>,
    checkpoint_timer: Option<SpawnHandle>,
    /// While set, the next group commit waits for more lines ([`GATHER`]).
    gather_timer: Option<SpawnHandle>,
    reconnect: Reconnect,
}

impl ResultWriter {
    pub fn new(settings: Arc<Settings>, log: Logger, metrics: Arc<Metrics>, to: WriterOutlets) -> Self {
        ResultWriter {
            log: log.new(slog::o!("actor" => "result_writer")),
            settings,
            metrics,
            to,
            file: None,
            commit: Pending::default(),
            fencing: false,
            reported: false,
            written: VecDeque::new(),
            next_seq: 0,
            checkpoint: 0,
            checkpoint_dirty: false,
            checkpointing: false,
            last_checkpoint: None,
            checkpoint_timer: None,
            gather_timer: None,
            reconnect: Reconnect::new(Dependency::Disk),
        }
    }

    fn open(&mut self, ctx: &mut Context<Self>) {
        let path = self.settings.output.path.clone();
        let scan = !self.reported;
        let fut = async move {
            actix_rt::task::spawn_blocking(move || {
                let (mut file, removed) = ResultsFile::open(&path)?;
                let unsettled = if scan { file.unsettled()? } else { Vec::new() };
                Ok::<_, std::io::Error>((file, removed, unsettled))
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| match res {
            Ok((file, removed, unsettled)) => {
                if removed > 0 {
                    warn!(act.log, "removed a partial last line left by a crash"; "bytes" => removed,
                        "path" => %file.path().display());
                }
                info!(act.log, "results file open"; "path" => %file.path().display(),
                    "lines_after_checkpoint" => unsettled.len());
                if !act.reported {
                    act.reported = true;
                    forward(&act.to.recovered, Recovered { lines: unsettled, file_id: file.id().to_owned() });
                }
                act.file = Some(file);
                act.metrics.up(Dependency::Disk);
                act.write(ctx);
            }
            Err(e) => act.fail(ctx, "open", e),
        }));
    }

    fn fail(&mut self, ctx: &mut Context<Self>, during: &'static str, e: std::io::Error) {
        let failure = classify_disk(&e);
        if let Some(suppressed) = self.reconnect.failed(&self.metrics, failure, format!("{during}: {e}")) {
            let path = self.settings.output.path.display().to_string();
            if failure == Failure::Misconfigured {
                error!(self.log, "cannot write the results file; fix its path or permissions"; "path" => path,
                    "during" => during, "error" => %e, "buffered" => self.commit.len(),
                    "similar_errors_suppressed" => suppressed);
            } else {
                warn!(self.log, "results file failed; results wait in memory"; "path" => path, "during" => during,
                    "error" => %e, "failure" => failure.label(), "buffered" => self.commit.len(),
                    "similar_errors_suppressed" => suppressed);
            }
        }
        self.file = None;
        ctx.stop();
    }

    /// Starts one group commit of everything buffered, unless one runs: first
    /// the fence, whose answer ([`Fenced`]) lets [`ResultWriter::append`] go on.
    fn write(&mut self, ctx: &mut Context<Self>) {
        if !self.commit.ready() || self.gather_timer.is_some() || self.file.is_none() {
            return;
        }
        let batch = self.commit.take_queued();
        let jobs = self.commit.run(batch).iter().map(|p| p.found.job()).collect();
        self.fencing = true;
        ask_fence(&self.to.fence, FencePurpose::Write, jobs, ctx.address().recipient());
    }

    /// Writes and fsyncs the fenced running batch on a blocking thread, then
    /// settles it. A batch not written goes back to the head of the line.
    fn append(&mut self, ctx: &mut Context<Self>) {
        let Some(mut file) = self.file.take() else {
            self.commit.cancel();
            return;
        };
        let batch = self.commit.running_mut().map_or(&[][..], |b| &b[..]);
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let mut bytes = Vec::with_capacity(batch.len() * 160);
        for p in batch {
            serde_json::to_writer(&mut bytes, &Line::new(p, now.clone())).expect("a line always serialises");
            bytes.push(b'\n');
        }
        let fut = async move {
            actix_rt::task::spawn_blocking(move || {
                let res = file.append(&bytes);
                (Some(file), res)
            })
            .await
            .unwrap_or_else(|e| (None, Err(std::io::Error::other(e.to_string()))))
        };
        ctx.spawn(fut.into_actor(self).map(move |(file, res), act, ctx| match (file, res) {
            (Some(file), Ok(end)) => {
                let batch = act.commit.finish();
                act.file = Some(file);
                if act.reconnect.succeeded() {
                    info!(act.log, "results file written again");
                }
                act.metrics.fsyncs.inc();
                let loaded = batch.len() >= GATHER_FROM;
                act.settle(ctx, batch, end);
                if loaded {
                    act.gather_timer = Some(ctx.run_later(GATHER, |act, ctx| {
                        act.gather_timer = None;
                        act.write(ctx);
                    }));
                } else {
                    act.write(ctx);
                }
            }
            (_, res) => {
                let e = res.err().unwrap_or_else(|| std::io::Error::other("the file handle was lost"));
                act.commit.cancel();
                act.fail(ctx, "write", e);
            }
        }));
    }

    /// Hands a durable batch to the QueueReader, and learns when Redis has it.
    fn settle(&mut self, ctx: &mut Context<Self>, batch: Vec<Published>, end: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.written.push_back(Written { seq, end, settled: false });
        let items = batch.into_iter().map(|p| p.found.settled(Outcome::Published { url: p.url })).collect();
        let (tx, rx) = oneshot::channel();
        let settle_to = self.to.settle.clone();
        let me = ctx.address();
        actix_rt::spawn(async move {
            if settle_to.send(Settle { items, durable: Some(tx) }).await.is_ok() && rx.await.is_ok() {
                let _ = me.send(BatchSettled(seq)).await;
            }
        });
    }

    fn save_checkpoint(&mut self, ctx: &mut Context<Self>) {
        if self.checkpointing || !self.checkpoint_dirty || self.checkpoint_timer.is_some() {
            return;
        }
        if let Some(wait) = self.last_checkpoint.and_then(|t| CHECKPOINT_EVERY.checked_sub(t.elapsed())) {
            self.checkpoint_timer = Some(ctx.run_later(wait, |act, ctx| {
                act.checkpoint_timer = None;
                act.save_checkpoint(ctx);
            }));
            return;
        }
        self.last_checkpoint = Some(Instant::now());
        self.checkpointing = true;
        self.checkpoint_dirty = false;
        let (path, offset) = (self.settings.output.path.clone(), self.checkpoint);
        let fut = async move { actix_rt::task::spawn_blocking(move || write_checkpoint(&path, offset)).await };
        ctx.spawn(fut.into_actor(self).map(|res, act, ctx| {
            act.checkpointing = false;
            if !matches!(res, Ok(Ok(()))) {
                // Harmless: a stale checkpoint only means more to read at start.
                act.checkpoint_dirty = true;
            }
            act.save_checkpoint(ctx);
        }));
    }
}

impl Handler<Fenced> for ResultWriter {
    type Result = ();

    fn handle(&mut self, msg: Fenced, ctx: &mut Context<Self>) {
        if !std::mem::take(&mut self.fencing) {
            return;
        }
        let Some(batch) = self.commit.running_mut() else { return };
        if msg.0.len() != batch.len() {
            // No answer (the QueueReader is gone: the process is ending).
            self.commit.cancel();
            return;
        }
        let mut answers = msg.0.into_iter();
        batch.retain(|_| matches!(answers.next(), Some(FenceAnswer::Go { .. })));
        if batch.is_empty() {
            self.commit.finish();
            self.write(ctx);
        } else {
            self.append(ctx);
        }
    }
}

/// Redis confirmed that the batch with this sequence number is settled.
#[derive(Message)]
#[rtype(result = "()")]
struct BatchSettled(u64);

impl Handler<BatchSettled> for ResultWriter {
    type Result = ();

    fn handle(&mut self, msg: BatchSettled, ctx: &mut Context<Self>) {
        if let Some(w) = self.written.iter_mut().find(|w| w.seq == msg.0) {
            w.settled = true;
        }
        while self.written.front().is_some_and(|w| w.settled) {
            let w = self.written.pop_front().expect("checked");
            self.checkpoint = w.end;
            self.checkpoint_dirty = true;
        }
        self.save_checkpoint(ctx);
    }
}

impl Actor for ResultWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.reconnect.delay();
        ctx.run_later(delay, |act, ctx| act.open(ctx));
    }
}

impl Supervised for ResultWriter {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.file = None;
        // A fence under way answers by message, restart or not; a write the
        // stop cancelled puts its batch back at the head of the line.
        if !self.fencing {
            self.commit.cancel();
        }
        self.checkpointing = false;
        self.checkpoint_timer = None;
        self.gather_timer = None;
        self.checkpoint_dirty = true;
    }
}

impl Handler<Record> for ResultWriter {
    type Result = ();

    fn handle(&mut self, msg: Record, ctx: &mut Context<Self>) {
        self.commit.extend(msg.0);
        self.write(ctx);
    }
}
