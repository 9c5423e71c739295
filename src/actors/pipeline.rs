//! Wiring: starts the actors under supervision, waits for a signal, and shuts
//! down in order.
//!
//! Threads: the QueueReader and the ResultWriter run on the system arbiter
//! (they exchange a message per group commit); the PublisherActor and each
//! LookupActor get an arbiter (thread) of their own. The publisher on its own
//! thread answers the paste service's responses as they come instead of
//! after whatever the QueueReader or the ResultWriter is doing, which the
//! drain benchmark shows as more tasks/s at the same CPU per task
//! (docs/performance.md). Under a rate limit its precise pacing sleeps on
//! that thread too (see [`super::publisher`]). Once they run, the main thread lowers its
//! own CPU priority to `daemon.main_thread_nice` (default 10), so that when
//! the cores are contended the publisher's thread, which bounds throughput,
//! runs first ([`lower_priority`]).
//! Every actor is started through `Supervisor`, so an actor that stops on a
//! dependency failure is restarted with the same struct (see [`super`]).
//!
//! The HTTP endpoints ([`crate::http`]) run on the system arbiter too.
//!
//! Shutdown (SIGTERM or SIGINT): stop intake; wait up to
//! `daemon.shutdown_timeout` for every task in flight to be settled (its line
//! is then already fsynced); return whatever is left in this consumer's
//! processing hash to the queue; exit 0.

use std::sync::Arc;

use actix::prelude::*;
use slog::{info, warn, Logger};

use super::lookup::LookupActor;
use super::publisher::PublisherActor;
use super::queue_reader::{AttachLookups, QueueReader};
use super::result_writer::{ResultWriter, WriterOutlets};
use crate::config::Settings;
use crate::lease::LeaseClock;
use crate::messages::{Drained, Release, StopIntake};
use crate::metrics::{Metrics, TaskOutcome};
use crate::queue::unique_consumer_name;

/// Runs the daemon until SIGTERM or SIGINT. Must be called inside an actix
/// `System`.
pub async fn run(settings: Settings, log: Logger) -> std::io::Result<()> {
    let settings = Arc::new(settings);
    let metrics = Arc::new(Metrics::default());
    metrics.in_flight_limit.set(settings.daemon.max_in_flight as i64);
    let consumer =
        if settings.redis.consumer.is_empty() { unique_consumer_name() } else { settings.redis.consumer.clone() };
    info!(log, "starting"; "consumer" => &consumer, "version" => env!("CARGO_PKG_VERSION"),
        "lookup_workers" => settings.lookup.workers, "max_in_flight" => settings.daemon.max_in_flight,
        "http" => %settings.http.listen);
    let http = crate::http::server(settings.clone(), metrics.clone()).map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on http.listen {}: {e}", settings.http.listen))
    })?;
    let http_handle = http.handle();
    actix_rt::spawn(http);

    let clock = Arc::new(LeaseClock::new(settings.redis.lease));
    let queue_reader = {
        let (s, l, m, c) = (settings.clone(), log.clone(), metrics.clone(), clock.clone());
        Supervisor::start(move |_| QueueReader::new(s, l, m, consumer, c))
    };
    let writer = {
        let (s, l, m) = (settings.clone(), log.clone(), metrics.clone());
        let to = WriterOutlets {
            settle: queue_reader.clone().recipient(),
            recovered: queue_reader.clone().recipient(),
            fence: queue_reader.clone().recipient(),
        };
        Supervisor::start(move |_| ResultWriter::new(s, l, m, to))
    };
    let mut arbiters = Vec::new();
    let publisher = {
        let (s, l, m, c) = (settings.clone(), log.clone(), metrics.clone(), clock.clone());
        let (record, settle, fence) =
            (writer.clone().recipient(), queue_reader.clone().recipient(), queue_reader.clone().recipient());
        let arbiter = Arbiter::new();
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            PublisherActor::new(s, l, m, record, settle, fence, c)
        });
        arbiters.push(arbiter);
        addr
    };
    let mut lookups = Vec::new();
    for worker in 0..settings.lookup.workers {
        let arbiter = Arbiter::new();
        let (s, l, m) = (settings.clone(), log.clone(), metrics.clone());
        let (settle, publish) = (queue_reader.clone().recipient(), publisher.clone().recipient());
        let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |_| {
            LookupActor::new(s, l, m, settle, publish, worker)
        });
        lookups.push(addr.recipient());
        arbiters.push(arbiter);
    }
    queue_reader.send(AttachLookups(lookups)).await.map_err(|e| std::io::Error::other(e.to_string()))?;
    // After the arbiters' threads are started: they keep the priority the
    // process was started with.
    match lower_priority(settings.daemon.main_thread_nice) {
        Ok(nice) => info!(log, "main thread priority"; "nice" => nice),
        Err(e) => warn!(log, "could not lower the main thread's priority"; "error" => %e),
    }

    let signal = wait_for_signal().await?;
    info!(log, "shutting down"; "signal" => signal, "timeout" => ?settings.daemon.shutdown_timeout);
    let _ = queue_reader.send(StopIntake).await;
    let drained = tokio::time::timeout(settings.daemon.shutdown_timeout, queue_reader.send(Drained)).await;
    if drained.is_err() {
        warn!(log, "shutdown timeout: tasks still in flight return to the queue";
            "in_flight" => metrics.in_flight.get());
    }
    match queue_reader.send(Release).await {
        Ok(Ok(n)) => info!(log, "left the queue"; "returned_to_queue" => n),
        Ok(Err(e)) => {
            warn!(log, "could not return tasks to the queue; they return when the lease expires"; "error" => e)
        }
        Err(e) => warn!(log, "queue reader gone at shutdown"; "error" => %e),
    }
    let counts: Vec<String> =
        TaskOutcome::ALL.iter().map(|o| format!("{}={}", o.label(), metrics.outcome(*o))).collect();
    info!(log, "stopped"; "tasks" => counts.join(" "));
    http_handle.stop(true).await;
    for a in arbiters {
        a.stop();
    }
    Ok(())
}

/// Lowers the calling thread's CPU priority to nice value `nice` unless it is
/// already as low; answers the nice value it runs at. (On Linux the nice
/// value is a thread's own; raising it needs no privilege.)
///
/// Why: the publisher's thread bounds the daemon's throughput (one HTTP
/// request after another), while the main thread works in batches with
/// deep buffers (up to `daemon.max_in_flight` tasks) and can wait. When the
/// cores are contended (Redis, ClickHouse or other work on the same host, or
/// a container's CPU quota), the scheduler then runs the publisher first
/// (measured in docs/performance.md); with idle cores it changes nothing.
fn lower_priority(nice: i32) -> std::io::Result<i32> {
    // SAFETY: plain system calls on the calling thread, no memory passed.
    let tid = unsafe { libc::gettid() } as libc::id_t;
    // -1 is also a valid nice value: errno tells a failure apart.
    // SAFETY: as above.
    let current = unsafe {
        *libc::__errno_location() = 0;
        libc::getpriority(libc::PRIO_PROCESS, tid)
    };
    if current == -1 && std::io::Error::last_os_error().raw_os_error() != Some(0) {
        return Err(std::io::Error::last_os_error());
    }
    if current >= nice {
        return Ok(current);
    }
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, nice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(nice)
}

async fn wait_for_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread, as the kernel reports it.
    fn own_nice() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19, counted after the parenthesised command name.
        let after_name = stat.rsplit_once(')').unwrap().1;
        after_name.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    #[test]
    fn lowers_only_the_calling_thread_and_never_raises_it() {
        let before = own_nice();
        let target = (before + 3).min(19);
        std::thread::spawn(move || {
            assert_eq!(lower_priority(target).unwrap(), target);
            assert_eq!(own_nice(), target);
            // Already lower than asked: left alone (raising needs privilege).
            assert_eq!(lower_priority(before).unwrap(), target);
            assert_eq!(own_nice(), target);
        })
        .join()
        .unwrap();
        assert_eq!(own_nice(), before, "other threads keep their priority");
    }
}
