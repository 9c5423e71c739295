//! Counters, histograms and dependency health shared by all actors, and
//! their Prometheus text rendering.
//!
//! Actors only ever add to these; the `/metrics` and `/readyz` endpoints and
//! the shutdown report read them. Everything is atomic or behind a short
//! mutex, so any actor on any arbiter can update them.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The final outcome of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskOutcome {
    Published,
    NotFound,
    Dead,
    Duplicate,
    /// Not an outcome of the task, but of this consumer's part in it: taken
    /// over by another consumer while this one was silent, and dropped here.
    LostLease,
}

impl TaskOutcome {
    pub const ALL: [TaskOutcome; 5] = [Self::Published, Self::NotFound, Self::Dead, Self::Duplicate, Self::LostLease];

    pub fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::NotFound => "not_found",
            Self::Dead => "dead",
            Self::Duplicate => "duplicate",
            Self::LostLease => "lost_lease",
        }
    }
}

/// The external systems the daemon depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dependency {
    Redis,
    ClickHouse,
    PasteService,
    Disk,
}

impl Dependency {
    pub const ALL: [Dependency; 4] = [Self::Redis, Self::ClickHouse, Self::PasteService, Self::Disk];

    pub fn label(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::ClickHouse => "clickhouse",
            Self::PasteService => "paste_service",
            Self::Disk => "disk",
        }
    }
}

/// A histogram with fixed bucket bounds, updated with atomics.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// The sum, in millionths of the unit.
    sum_micro: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micro: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micro.fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The smallest bucket bound under which at least `q` of the observations
    /// fall (an upper estimate of the quantile); `None` when empty.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let mut seen = 0;
        for (b, n) in self.bounds.iter().zip(&self.buckets) {
            seen += n.load(Ordering::Relaxed);
            if seen as f64 >= q * total as f64 {
                return Some(*b);
            }
        }
        Some(f64::INFINITY)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

const LATENCY_BOUNDS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const BATCH_BOUNDS: &[f64] = &[1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];

#[derive(Debug)]
pub struct Metrics {
    outcomes: [AtomicU64; TaskOutcome::ALL.len()],
    retries: Mutex<BTreeMap<(Dependency, &'static str), u64>>,
    pub lookup_batches: AtomicU64,
    pub publish_attempts: AtomicU64,
    pub fsyncs: AtomicU64,
    pub in_flight: AtomicU64,
    /// `daemon.max_in_flight`, for alerts on a pipeline stuck at its limit.
    pub in_flight_limit: AtomicU64,
    /// Tasks in the queue as the last heartbeat saw it (list: waiting; stream:
    /// entries not yet settled, pending ones included).
    pub queue_depth: AtomicU64,
    /// Devices per lookup query.
    pub lookup_batch_size: Histogram,
    /// Seconds per lookup query.
    pub lookup_seconds: Histogram,
    /// Seconds per publish attempt.
    pub publish_seconds: Histogram,
    /// Seconds from taking a task off the queue to settling it.
    pub task_seconds: Histogram,
    /// Total time requests waited for the rate limiter, in microseconds.
    rate_limit_wait_micro: AtomicU64,
    health: Mutex<BTreeMap<Dependency, String>>,
    /// Bumped whenever a dependency goes up or down: whoever waits for the
    /// health to change awaits this rather than polling.
    health_changes: tokio::sync::watch::Sender<u64>,
    paste_refused: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            outcomes: Default::default(),
            retries: Default::default(),
            lookup_batches: Default::default(),
            publish_attempts: Default::default(),
            fsyncs: Default::default(),
            in_flight: Default::default(),
            in_flight_limit: Default::default(),
            queue_depth: Default::default(),
            lookup_batch_size: Histogram::new(BATCH_BOUNDS),
            lookup_seconds: Histogram::new(LATENCY_BOUNDS),
            publish_seconds: Histogram::new(LATENCY_BOUNDS),
            task_seconds: Histogram::new(LATENCY_BOUNDS),
            rate_limit_wait_micro: Default::default(),
            health: Default::default(),
            health_changes: tokio::sync::watch::channel(0).0,
            paste_refused: Default::default(),
        }
    }
}

impl Metrics {
    pub fn count(&self, outcome: TaskOutcome, n: u64) {
        self.outcomes[outcome as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn outcome(&self, outcome: TaskOutcome) -> u64 {
        self.outcomes[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn retry(&self, dep: Dependency, reason: &'static str) {
        *self.retries.lock().unwrap().entry((dep, reason)).or_default() += 1;
    }

    pub fn retries(&self) -> BTreeMap<(Dependency, &'static str), u64> {
        self.retries.lock().unwrap().clone()
    }

    /// Marks a dependency as failing, with why; `up` clears it.
    pub fn down(&self, dep: Dependency, why: impl Into<String>) {
        self.health.lock().unwrap().insert(dep, why.into());
        self.health_changes.send_modify(|n| *n += 1);
    }

    pub fn up(&self, dep: Dependency) {
        let was_down = self.health.lock().unwrap().remove(&dep).is_some();
        if dep == Dependency::PasteService {
            self.paste_refused.store(false, Ordering::Relaxed);
        }
        if was_down {
            self.health_changes.send_modify(|n| *n += 1);
        }
    }

    /// A receiver that sees a change whenever a dependency goes up or down.
    pub fn health_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.health_changes.subscribe()
    }

    /// The paste service refused our credentials or address: intake stops.
    pub fn refused(&self, why: impl Into<String>) {
        self.paste_refused.store(true, Ordering::Relaxed);
        self.down(Dependency::PasteService, why);
    }

    pub fn is_refused(&self) -> bool {
        self.paste_refused.load(Ordering::Relaxed)
    }

    /// What is wrong right now, by dependency; empty when all is well.
    pub fn problems(&self) -> BTreeMap<Dependency, String> {
        self.health.lock().unwrap().clone()
    }

    pub fn rate_limit_wait(&self, d: Duration) {
        self.rate_limit_wait_micro.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        out.push_str("# HELP device_lookup_tasks_total Tasks settled, by outcome.\n");
        out.push_str("# TYPE device_lookup_tasks_total counter\n");
        for o in TaskOutcome::ALL {
            let _ = writeln!(out, "device_lookup_tasks_total{{outcome=\"{}\"}} {}", o.label(), self.outcome(o));
        }
        out.push_str("# HELP device_lookup_retries_total Failures of a dependency that led to a retry, by reason.\n");
        out.push_str("# TYPE device_lookup_retries_total counter\n");
        for ((dep, reason), n) in self.retries() {
            let _ =
                writeln!(out, "device_lookup_retries_total{{dependency=\"{}\",reason=\"{reason}\"}} {n}", dep.label());
        }
        let problems = self.problems();
        out.push_str(
            "# HELP device_lookup_dependency_failing 1 while a dependency is failing (work that needs it is paused).\n",
        );
        out.push_str("# TYPE device_lookup_dependency_failing gauge\n");
        for dep in Dependency::ALL {
            let _ = writeln!(
                out,
                "device_lookup_dependency_failing{{dependency=\"{}\"}} {}",
                dep.label(),
                u8::from(problems.contains_key(&dep))
            );
        }
        let _ = writeln!(
            out,
            "# HELP device_lookup_paste_refused 1 while the paste service refuses our key or address.\n# TYPE device_lookup_paste_refused gauge\ndevice_lookup_paste_refused {}",
            u8::from(self.is_refused())
        );
        let _ = writeln!(
            out,
            "# HELP device_lookup_in_flight Tasks taken from Redis and not yet settled.\n# TYPE device_lookup_in_flight gauge\ndevice_lookup_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP device_lookup_in_flight_limit daemon.max_in_flight.\n# TYPE device_lookup_in_flight_limit gauge\ndevice_lookup_in_flight_limit {}",
            self.in_flight_limit.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP device_lookup_queue_depth Tasks in the queue at the last heartbeat (stream: unsettled entries).\n# TYPE device_lookup_queue_depth gauge\ndevice_lookup_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "device_lookup_lookup_queries_total",
            "ClickHouse lookup queries.",
            self.lookup_batches.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "device_lookup_publish_attempts_total",
            "Requests sent to the paste service.",
            self.publish_attempts.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "device_lookup_fsyncs_total",
            "Group commits of the results file.",
            self.fsyncs.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP device_lookup_rate_limit_wait_seconds_total Time requests waited for the rate limiter.\n# TYPE device_lookup_rate_limit_wait_seconds_total counter\ndevice_lookup_rate_limit_wait_seconds_total {}",
            self.rate_limit_wait_micro.load(Ordering::Relaxed) as f64 / 1e6
        );
        self.lookup_batch_size.render(
            &mut out,
            "device_lookup_lookup_batch_size",
            "Devices per ClickHouse lookup query.",
        );
        self.lookup_seconds.render(&mut out, "device_lookup_lookup_seconds", "Duration of a ClickHouse lookup query.");
        self.publish_seconds.render(
            &mut out,
            "device_lookup_publish_seconds",
            "Duration of one request to the paste service.",
        );
        self.task_seconds.render(
            &mut out,
            "device_lookup_task_seconds",
            "From taking a task off the queue to settling it.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_changes_are_events_not_polls() {
        let m = Metrics::default();
        let mut rx = m.health_changes();
        m.up(Dependency::ClickHouse);
        assert!(!rx.has_changed().unwrap(), "up while already up is no change");
        m.down(Dependency::ClickHouse, "down");
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        m.up(Dependency::ClickHouse);
        assert!(rx.has_changed().unwrap(), "back up is a change");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 2.0, 3.0, 50.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_sum 55.5\n") && out.contains("x_count 4\n"), "{out}");
        assert_eq!(h.quantile_bound(0.5), Some(10.0));
        assert_eq!(h.quantile_bound(1.0), Some(f64::INFINITY));
    }

    #[test]
    fn render_has_every_family() {
        let m = Metrics::default();
        m.count(TaskOutcome::Published, 3);
        m.retry(Dependency::ClickHouse, "unavailable");
        m.down(Dependency::ClickHouse, "gone");
        let text = m.render();
        for needle in [
            "device_lookup_tasks_total{outcome=\"published\"} 3",
            "device_lookup_tasks_total{outcome=\"duplicate\"} 0",
            "device_lookup_retries_total{dependency=\"clickhouse\",reason=\"unavailable\"} 1",
            "device_lookup_dependency_failing{dependency=\"clickhouse\"} 1",
            "device_lookup_dependency_failing{dependency=\"redis\"} 0",
            "device_lookup_lookup_seconds_count 0",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
    }
}
