//! Counters, histograms and dependency health shared by all actors, and
//! their exposition, through the `prometheus-client` crate.
//!
//! Actors only ever add to these; the `/metrics` and `/readyz` endpoints and
//! the shutdown report read them. Every metric is atomic (histograms take a
//! short lock), so any actor on any arbiter can update them. The crate was
//! chosen over the `metrics` facade because the daemon owns one registry and
//! renders it itself: no global recorder, no exporter thread.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
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

const LATENCY_BOUNDS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const BATCH_BOUNDS: [f64; 11] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];

type Labels = [(&'static str, &'static str); 1];

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// One counter per outcome, taken from their family once, so counting
    /// is an atomic add with no map lookup.
    outcomes: [Counter; TaskOutcome::ALL.len()],
    retries: Family<[(&'static str, &'static str); 2], Counter>,
    pub lookup_batches: Counter,
    pub publish_attempts: Counter,
    pub fsyncs: Counter,
    pub in_flight: Gauge,
    /// `daemon.max_in_flight`, for alerts on a pipeline stuck at its limit.
    pub in_flight_limit: Gauge,
    /// Tasks in the queue as the last heartbeat saw it (list: waiting; stream:
    /// entries not yet settled, pending ones included).
    pub queue_depth: Gauge,
    /// Requests the publisher allows in flight: `publisher.concurrency`, or
    /// the adaptive window.
    pub publish_window: Gauge,
    /// Devices per lookup query.
    pub lookup_batch_size: Histogram,
    /// Seconds per lookup query.
    pub lookup_seconds: Histogram,
    /// Seconds per publish attempt.
    pub publish_seconds: Histogram,
    /// Seconds from taking a task off the queue to settling it.
    pub task_seconds: Histogram,
    rate_limit_wait: Counter<f64, AtomicU64>,
    /// Why each failing dependency fails; the gauges below mirror it.
    health: Mutex<BTreeMap<Dependency, String>>,
    failing: [Gauge; Dependency::ALL.len()],
    /// Bumped whenever a dependency goes up or down: whoever waits for the
    /// health to change awaits this rather than polling.
    health_changes: tokio::sync::watch::Sender<u64>,
    paste_refused: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::default();
        let tasks = Family::<Labels, Counter>::default();
        let outcomes = TaskOutcome::ALL.map(|o| tasks.get_or_create(&[("outcome", o.label())]).clone());
        r.register("device_lookup_tasks", "Tasks settled, by outcome", tasks);
        let retries = Family::default();
        r.register("device_lookup_retries", "Failures of a dependency that led to a retry, by reason", retries.clone());
        let failing_family = Family::<Labels, Gauge>::default();
        let failing = Dependency::ALL.map(|d| failing_family.get_or_create(&[("dependency", d.label())]).clone());
        r.register(
            "device_lookup_dependency_failing",
            "1 while a dependency is failing (work that needs it is paused)",
            failing_family,
        );
        // Registers a clone (the metrics share their value) and returns the metric.
        fn reg<M: prometheus_client::registry::Metric + Clone>(r: &mut Registry, name: &str, help: &str, m: M) -> M {
            r.register(name, help, m.clone());
            m
        }
        let paste_refused = reg(
            &mut r,
            "device_lookup_paste_refused",
            "1 while the paste service refuses our key or address",
            Gauge::default(),
        );
        let in_flight =
            reg(&mut r, "device_lookup_in_flight", "Tasks taken from Redis and not yet settled", Gauge::default());
        let in_flight_limit = reg(&mut r, "device_lookup_in_flight_limit", "daemon.max_in_flight", Gauge::default());
        let queue_depth = reg(
            &mut r,
            "device_lookup_queue_depth",
            "Tasks in the queue at the last heartbeat (stream: unsettled entries)",
            Gauge::default(),
        );
        let publish_window = reg(
            &mut r,
            "device_lookup_publish_concurrency",
            "Requests the publisher allows in flight (publisher.concurrency, or the adaptive window)",
            Gauge::default(),
        );
        let lookup_batches =
            reg(&mut r, "device_lookup_lookup_queries", "ClickHouse lookup queries", Counter::default());
        let publish_attempts =
            reg(&mut r, "device_lookup_publish_attempts", "Requests sent to the paste service", Counter::default());
        let fsyncs = reg(&mut r, "device_lookup_fsyncs", "Group commits of the results file", Counter::default());
        let rate_limit_wait = reg(
            &mut r,
            "device_lookup_rate_limit_wait_seconds",
            "Time requests waited for the rate limiter",
            Counter::default(),
        );
        let lookup_batch_size = reg(
            &mut r,
            "device_lookup_lookup_batch_size",
            "Devices per ClickHouse lookup query",
            Histogram::new(BATCH_BOUNDS),
        );
        let lookup_seconds = reg(
            &mut r,
            "device_lookup_lookup_seconds",
            "Duration of a ClickHouse lookup query",
            Histogram::new(LATENCY_BOUNDS),
        );
        let publish_seconds = reg(
            &mut r,
            "device_lookup_publish_seconds",
            "Duration of one request to the paste service",
            Histogram::new(LATENCY_BOUNDS),
        );
        let task_seconds = reg(
            &mut r,
            "device_lookup_task_seconds",
            "From taking a task off the queue to settling it",
            Histogram::new(LATENCY_BOUNDS),
        );
        Metrics {
            registry: r,
            outcomes,
            retries,
            lookup_batches,
            publish_attempts,
            fsyncs,
            in_flight,
            in_flight_limit,
            queue_depth,
            publish_window,
            lookup_batch_size,
            lookup_seconds,
            publish_seconds,
            task_seconds,
            rate_limit_wait,
            health: Default::default(),
            failing,
            health_changes: tokio::sync::watch::channel(0).0,
            paste_refused,
        }
    }
}

impl Metrics {
    pub fn count(&self, outcome: TaskOutcome, n: u64) {
        self.outcomes[outcome as usize].inc_by(n);
    }

    pub fn outcome(&self, outcome: TaskOutcome) -> u64 {
        self.outcomes[outcome as usize].get()
    }

    pub fn retry(&self, dep: Dependency, reason: &'static str) {
        self.retries.get_or_create(&[("dependency", dep.label()), ("reason", reason)]).inc();
    }

    /// Marks a dependency as failing, with why; `up` clears it.
    pub fn down(&self, dep: Dependency, why: impl Into<String>) {
        self.health.lock().unwrap().insert(dep, why.into());
        self.failing[dep as usize].set(1);
        self.health_changes.send_modify(|n| *n += 1);
    }

    pub fn up(&self, dep: Dependency) {
        let was_down = self.health.lock().unwrap().remove(&dep).is_some();
        self.failing[dep as usize].set(0);
        if dep == Dependency::PasteService {
            self.paste_refused.set(0);
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
        self.paste_refused.set(1);
        self.down(Dependency::PasteService, why);
    }

    pub fn is_refused(&self) -> bool {
        self.paste_refused.get() == 1
    }

    /// What is wrong right now, by dependency; empty when all is well.
    pub fn problems(&self) -> BTreeMap<Dependency, String> {
        self.health.lock().unwrap().clone()
    }

    pub fn rate_limit_wait(&self, d: Duration) {
        self.rate_limit_wait.inc_by(d.as_secs_f64());
    }

    /// Everything, in the OpenMetrics text format (served as
    /// [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
            "device_lookup_rate_limit_wait_seconds_total 0",
            "device_lookup_fsyncs_total 0",
            "device_lookup_in_flight 0",
            "# EOF",
        ] {
            assert!(text.contains(needle), "missing {needle}");
        }
    }
}
