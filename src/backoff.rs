//! Capped exponential backoff with jitter.
//!
//! The ceiling before retry `n` (counting from 0) is `min(max, base * 2^n)`.
//! A dependency's [`Backoff`] draws the delay uniformly from the upper half
//! of it ("equal jitter"): spread enough that many clients that failed
//! together do not retry together, and never near zero, so that once the cap
//! is reached a failing dependency sees a try every `0.75 * max` on
//! average. A task's own retries use [`full_jitter`] (`[0, ceiling]`). Each
//! actor keeps one [`Backoff`] per dependency and resets it when real work
//! succeeds (never on a connect alone).

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max, failures: 0 }
    }

    /// Records one more failure and returns how long to wait before the next try.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_capped(self.max)
    }

    /// As [`Backoff::next_delay`], with another cap for this failure (a
    /// misconfiguration waits longer than an outage).
    pub fn next_delay_capped(&mut self, cap: Duration) -> Duration {
        let delay = equal_jitter(self.base, cap, self.failures);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The delay after `failures` earlier failures: uniform in `[0, ceiling]`.
pub fn full_jitter(base: Duration, max: Duration, failures: u32) -> Duration {
    rand::rng().random_range(Duration::ZERO..=ceiling(base, max, failures))
}

/// The delay after `failures` earlier failures: uniform in `[ceiling / 2, ceiling]`.
pub fn equal_jitter(base: Duration, max: Duration, failures: u32) -> Duration {
    let top = ceiling(base, max, failures);
    rand::rng().random_range(top / 2..=top)
}

/// The upper bound of the jittered delay after `failures` failures.
pub fn ceiling(base: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let ms = Duration::from_millis;
        let table = [(0, ms(100)), (1, ms(200)), (2, ms(400)), (5, ms(3200)), (6, ms(5000)), (40, ms(5000))];
        for (failures, want) in table {
            assert_eq!(ceiling(ms(100), ms(5000), failures), want, "after {failures} failures");
        }
    }

    #[test]
    fn delays_stay_under_the_ceiling_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        for n in 0..20 {
            let d = b.next_delay();
            let top = ceiling(Duration::from_millis(10), Duration::from_millis(80), n);
            assert!(d <= top && d >= top / 2, "{d:?} after {n}");
        }
        assert_eq!(b.failures(), 20);
        b.reset();
        assert_eq!(b.failures(), 0);
    }
}
