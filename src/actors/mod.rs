//! The actors of the data path, one per file, and the wiring that starts and
//! supervises them ([`pipeline`]).
//!
//! Two rules hold for all of them:
//! - **State that a restart must not lose lives in the actor struct.** actix's
//!   `Supervisor` reuses the struct; `restarting()` drops only connections and
//!   flags of cancelled futures, and `started()` reconnects after a backoff.
//! - **Actors know messages, not each other.** Each gets the `Recipient`s of
//!   the messages it sends (wired in [`pipeline`]), so any of them can run
//!   against a recording stand-in in a test.
//! - **Hand-offs survive the sender's restart.** `ctx.stop()` cancels an
//!   actor's futures, so tasks are handed on with [`forward`], a send awaited
//!   in a task of its own. Backpressure comes from one place: the QueueReader
//!   holds at most `daemon.max_in_flight` tasks, so no mailbox can grow past it.

pub mod lookup;
pub mod pending;
pub mod pipeline;
pub mod publisher;
pub mod queue_reader;
pub mod reconnect;
pub mod result_writer;

use actix::{Message, Recipient};

use crate::messages::{Fence, FencePurpose, Fenced, Job};

/// Sends `msg` to `to`, awaiting the mailbox, in a task that outlives the
/// calling actor's context. A closed mailbox means the receiver died of a
/// panic, and the panic hook is already ending the process; the tasks stay in
/// Redis and are taken again at the next start.
pub fn forward<M>(to: &Recipient<M>, msg: M)
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    let to = to.clone();
    actix_rt::spawn(async move {
        if let Err(e) = to.send(msg).await {
            slog_scope::error!("hand-off failed, tasks stay in Redis"; "error" => %e);
        }
    });
}

/// Asks the QueueReader whether `jobs` are still ours, in a task of its own:
/// the answer, which the QueueReader has already acted on, then reaches `me`
/// as [`Fenced`] whatever happens to the asking actor's context meanwhile.
/// No answer (the QueueReader is gone: the process is ending) comes as an
/// empty one.
pub fn ask_fence(fence: &Recipient<Fence>, purpose: FencePurpose, jobs: Vec<Job>, me: Recipient<Fenced>) {
    let fence = fence.clone();
    actix_rt::spawn(async move {
        let answers = fence.send(Fence { purpose, jobs }).await.unwrap_or_default();
        me.do_send(Fenced(answers));
    });
}

/// Log at most once per `every` for a repeating failure; returns whether to log now.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// `Some(n)` when this occurrence should be logged, with `n` occurrences
    /// suppressed since the last one logged.
    pub fn allow(&mut self, every: std::time::Duration) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    pub fn reset(&mut self) {
        self.last = None;
        self.suppressed = 0;
    }
}
