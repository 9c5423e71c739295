//! What every actor with a dependency does alike when it fails: mark the
//! dependency down and count the retry, say whether to log (at most every
//! 10 s, with how many were suppressed), and how long to wait before the next
//! connect; and end the streak when real work succeeds, never on a connect
//! alone. Lives in the actor struct, so it survives restarts.

use std::time::Duration;

use super::LogLimiter;
use crate::backoff::Backoff;
use crate::failure::Failure;
use crate::metrics::{Dependency, Metrics};

/// How often a repeating failure is logged.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Reconnect {
    dependency: Dependency,
    backoff: Backoff,
    /// The last failure's kind, which caps the next wait.
    last: Failure,
    /// A failure happened since the actor started: connects wait.
    failed_before: bool,
    log_limit: LogLimiter,
}

impl Reconnect {
    pub fn new(dependency: Dependency) -> Reconnect {
        Reconnect {
            dependency,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(30)),
            last: Failure::Unavailable,
            failed_before: false,
            log_limit: LogLimiter::default(),
        }
    }

    /// Records a failure; `Some(suppressed)` when this one is to be logged,
    /// with how many like it were not.
    pub fn failed(&mut self, metrics: &Metrics, failure: Failure, why: String) -> Option<u64> {
        self.last = failure;
        self.failed_before = true;
        metrics.down(self.dependency, why);
        metrics.retry(self.dependency, failure.label());
        self.log_limit.allow(LOG_EVERY)
    }

    /// How long `started()` waits before connecting: not at all the first
    /// time, else the backoff capped for the last failure's kind.
    pub fn delay(&mut self) -> Duration {
        if self.failed_before {
            self.backoff.next_delay_capped(self.last.max_backoff())
        } else {
            Duration::ZERO
        }
    }

    /// Real work succeeded. True when that ends a failure streak (worth a
    /// line in the log).
    pub fn succeeded(&mut self) -> bool {
        let ended = self.failing();
        self.backoff.reset();
        self.log_limit.reset();
        ended
    }

    /// Within a failure streak (a connect then is no news).
    pub fn failing(&self) -> bool {
        self.backoff.failures() > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_work_ends_a_streak() {
        let metrics = Metrics::default();
        let mut r = Reconnect::new(Dependency::ClickHouse);
        assert_eq!(r.delay(), Duration::ZERO, "the first connect does not wait");
        assert_eq!(r.failed(&metrics, Failure::Unavailable, "down".into()), Some(0));
        assert_eq!(r.failed(&metrics, Failure::Unavailable, "down".into()), None, "logged at most every 10 s");
        assert!(metrics.problems().contains_key(&Dependency::ClickHouse));
        let mut waited = Vec::new();
        for _ in 0..8 {
            waited.push(r.delay());
        }
        assert!(r.failing());
        assert!(waited.iter().all(|d| *d <= Failure::Unavailable.max_backoff()), "{waited:?}");
        assert!(waited[7] >= Failure::Unavailable.max_backoff() / 2, "the cap is reached: {waited:?}");
        assert!(r.succeeded(), "a streak ended");
        assert!(!r.succeeded(), "no streak to end");
        assert_eq!(r.failed(&metrics, Failure::Misconfigured, "wrong password".into()), Some(0));
        assert!(r.delay() <= Duration::from_millis(100), "the backoff starts over after real work");
    }
}
