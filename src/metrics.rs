//! Counters and dependency health shared by all actors.
//!
//! Actors only ever add to these; the `/metrics` and `/readyz` endpoints and
//! the shutdown report read them. Everything is atomic or behind a short
//! mutex, so any actor on any arbiter can update them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// The final outcome of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskOutcome {
    Published,
    NotFound,
    Dead,
    Duplicate,
}

impl TaskOutcome {
    pub const ALL: [TaskOutcome; 4] = [Self::Published, Self::NotFound, Self::Dead, Self::Duplicate];

    pub fn label(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::NotFound => "not_found",
            Self::Dead => "dead",
            Self::Duplicate => "duplicate",
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

#[derive(Debug, Default)]
pub struct Metrics {
    outcomes: [AtomicU64; 4],
    retries: Mutex<BTreeMap<(Dependency, &'static str), u64>>,
    pub lookup_batches: AtomicU64,
    pub lookup_rows: AtomicU64,
    pub publish_attempts: AtomicU64,
    pub fsyncs: AtomicU64,
    pub in_flight: AtomicU64,
    health: Mutex<BTreeMap<Dependency, String>>,
    paste_refused: AtomicBool,
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
    }

    pub fn up(&self, dep: Dependency) {
        self.health.lock().unwrap().remove(&dep);
        if dep == Dependency::PasteService {
            self.paste_refused.store(false, Ordering::Relaxed);
        }
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
}
