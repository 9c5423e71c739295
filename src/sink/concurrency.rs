//! Adaptive request concurrency (`publisher.concurrency = "adaptive"`), in
//! the manner of Vector's: a window of requests allowed in flight that grows
//! by one per round trip (doubling until the first cut, as TCP's slow start)
//! while latency stays flat and the window is used,
//! and shrinks by a factor on back pressure (429, 5xx, timeouts) or on a
//! round trip clearly slower than the service's unloaded one. A plain value
//! driven by the clock it is given, so a simulated sink can test it; the
//! publisher asks it for [`Controller::limit`] and tells it when requests
//! start and end.
//!
//! "Unloaded" is the lowest window mean seen, drifting up 0.2% per window
//! while windows are slower, and taken as is when the window is down to one
//! request (then our load cannot be the cause): a service that became slower
//! for good is learned.
//! Comparing with a running mean instead (Vector's) let the reference follow
//! the latency our own load caused, and the window grew deep into the
//! overloaded region (tests below: 68/s where 320/s was possible).

use std::time::{Duration, Instant};

/// What the window is cut by on back pressure or rising latency.
const DECREASE: f64 = 0.9;
/// A window whose mean round trip exceeds the unloaded one by more than this
/// share is "rising latency".
const TOLERANCE: f64 = 0.25;
/// Added to the allowance: a round trip of half a millisecond varies by more
/// than a quarter with scheduling alone, which is not the service slowing.
const SLACK: f64 = 0.002;
/// How fast the unloaded round trip follows slower windows, per window.
const FLOOR_DRIFT: f64 = 0.002;
/// After a cut, this many windows pass before the window grows again: the
/// knee was just found, and every probe above it costs latency for all.
const HOLD: u32 = 8;
/// Windows are at least this long, so a fast sink is not judged on noise.
const MIN_WINDOW: Duration = Duration::from_millis(50);

/// How a request ended, for the controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Signal {
    /// Answered, in this round trip (accepted or not, but not overloaded).
    Answered(Duration),
    /// 429, a 5xx, a timeout or a refused connection: the service is overloaded.
    BackPressure,
}

#[derive(Debug, Clone)]
pub struct Controller {
    limit: usize,
    max: usize,
    /// The unloaded round trip, in seconds: the lowest window mean, drifting up.
    floor: Option<f64>,
    window_start: Instant,
    rtt_sum: f64,
    rtt_count: u32,
    back_pressure: bool,
    /// The window was full at some point: growing it would be used.
    reached_limit: bool,
    /// When the window last changed: answers to requests sent before it
    /// describe the old window and are not used to judge the new one, so
    /// every change is judged on its own effect (one change per round trip,
    /// as TCP; in slow start it keeps the doubling from overshooting).
    last_change: Instant,
    /// Windows left before the next increase.
    hold: u32,
    /// Until the first cut the window doubles per round trip instead of
    /// growing by one (TCP's slow start): a fast service is reached in a few
    /// round trips, not hundreds.
    slow_start: bool,
}

impl Controller {
    /// Starts at one request in flight, as Vector does: the service's
    /// capacity is unknown until it answers.
    pub fn new(max: usize, now: Instant) -> Self {
        Controller {
            limit: 1,
            max: max.max(1),
            floor: None,
            window_start: now,
            rtt_sum: 0.0,
            rtt_count: 0,
            back_pressure: false,
            reached_limit: false,
            last_change: now,
            hold: 0,
            slow_start: true,
        }
    }

    /// Requests allowed in flight now.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A request started; `in_flight` counts it.
    pub fn started(&mut self, in_flight: usize) {
        if in_flight >= self.limit {
            self.reached_limit = true;
        }
    }

    /// A request ended at `now`.
    pub fn finished(&mut self, now: Instant, signal: Signal) {
        match signal {
            Signal::Answered(rtt) if now.checked_sub(rtt).is_some_and(|sent| sent >= self.last_change) => {
                self.rtt_sum += rtt.as_secs_f64();
                self.rtt_count += 1;
            }
            Signal::Answered(_) => {}
            Signal::BackPressure => self.back_pressure = true,
        }
        let window = self.floor.map_or(MIN_WINDOW, |f| Duration::from_secs_f64(f).max(MIN_WINDOW));
        if now.saturating_duration_since(self.window_start) >= window {
            self.adjust(now);
        }
    }

    /// The end of a window: one decision per round trip, like TCP's AIMD.
    fn adjust(&mut self, now: Instant) {
        let mean = (self.rtt_count > 0).then(|| self.rtt_sum / f64::from(self.rtt_count));
        let rising = match (mean, self.floor) {
            (Some(m), Some(f)) => m > f * (1.0 + TOLERANCE) + SLACK,
            _ => false,
        };
        if self.back_pressure || rising {
            self.limit = ((self.limit as f64 * DECREASE) as usize).max(1);
            self.last_change = now;
            self.hold = HOLD;
            self.slow_start = false;
        } else if self.hold > 0 {
            self.hold -= 1;
        } else if self.reached_limit && mean.is_some() {
            let grown = if self.slow_start { self.limit * 2 } else { self.limit + 1 };
            if grown.min(self.max) != self.limit {
                self.limit = grown.min(self.max);
                self.last_change = now;
            }
        }
        if let Some(m) = mean {
            self.floor = Some(match self.floor {
                Some(f) if m > f && self.limit > 1 => f * (1.0 + FLOOR_DRIFT),
                _ => m,
            });
        }
        self.window_start = now;
        self.rtt_sum = 0.0;
        self.rtt_count = 0;
        self.back_pressure = false;
        self.reached_limit = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink whose latency is flat up to `knee` requests in flight, rises
    /// steeply beyond, and that answers 503 from twice the knee on; each
    /// answer varies by up to ±10% (a fixed pseudo-random sequence), as real
    /// ones do.
    struct Sink {
        base: Duration,
        knee: usize,
        seed: std::cell::Cell<u64>,
    }

    impl Sink {
        fn new(base: Duration, knee: usize) -> Self {
            Sink { base, knee, seed: std::cell::Cell::new(0x2545_f491_4f6c_dd1d) }
        }

        fn answer(&self, in_flight: usize) -> (Duration, bool) {
            let x = self.seed.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            self.seed.set(x);
            let jitter = 0.9 + 0.2 * ((x >> 11) as f64 / (1u64 << 53) as f64);
            let over = in_flight.saturating_sub(self.knee) as f64;
            let latency = self.base.as_secs_f64() * (1.0 + over / 2.0) * jitter;
            (Duration::from_secs_f64(latency), in_flight >= 2 * self.knee)
        }
    }

    /// Runs the controller (or, with `fixed`, a fixed window) against
    /// `sink` for `seconds` of simulated time with an endless queue; answers
    /// (completed, 503s, highest limit, final limit).
    fn simulate(sink: &Sink, max: usize, fixed: Option<usize>, seconds: u64) -> (u64, u64, usize, usize) {
        let t0 = Instant::now();
        let mut c = Controller::new(max, t0);
        if let Some(n) = fixed {
            c.limit = n;
            c.max = n;
            c.hold = u32::MAX;
        }
        let mut now = t0;
        let end = t0 + Duration::from_secs(seconds);
        let mut in_flight: Vec<(Instant, Instant, bool)> = Vec::new();
        let (mut done, mut rejected, mut highest) = (0, 0, 0);
        while now < end {
            while in_flight.len() < c.limit() {
                let (latency, reject) = sink.answer(in_flight.len() + 1);
                in_flight.push((now, now + latency, reject));
                c.started(in_flight.len());
            }
            highest = highest.max(c.limit());

            in_flight.sort_by_key(|r| r.1);
            let (sent, at, reject) = in_flight.remove(0);
            now = at;
            let signal = if reject { Signal::BackPressure } else { Signal::Answered(at - sent) };
            if reject {
                rejected += 1;
            } else {
                done += 1;
            }
            if fixed.is_none() {
                c.finished(now, signal);
            }
        }
        (done, rejected, highest, c.limit())
    }

    #[test]
    fn converges_near_the_knee_and_reaches_most_of_the_best_fixed_rate() {
        let sink = Sink::new(Duration::from_millis(50), 16);
        let (done, rejected, highest, last) = simulate(&sink, 256, None, 120);
        // The best fixed setting is the knee itself: 16 / 50 ms = 320/s.
        let (best, _, _, _) = simulate(&sink, 256, Some(16), 120);
        let best = best as f64;
        let (_, rejected_at_twice, _, _) = simulate(&sink, 256, Some(32), 120);
        eprintln!(
            "adaptive: {done} completed ({:.0}% of the best fixed), {rejected} 503s, window {last}, highest {highest}",
            100.0 * done as f64 / best
        );
        assert!(done as f64 >= 0.85 * best, "{done} completed, best fixed {best}");
        assert!((8..=2 * 16).contains(&last), "final window {last}");
        assert!(highest <= 2 * 16 + 2, "the window ran to {highest}");
        assert!(rejected < rejected_at_twice, "{rejected} 503s, a fixed window of 32: {rejected_at_twice}");
    }

    #[test]
    fn never_exceeds_its_maximum() {
        let sink = Sink::new(Duration::from_millis(20), 1000);
        let (_, rejected, highest, last) = simulate(&sink, 24, None, 60);
        assert_eq!((highest, last, rejected), (24, 24, 0));
    }

    #[test]
    fn backs_off_on_back_pressure_and_grows_only_when_used() {
        let t0 = Instant::now();
        let mut c = Controller::new(64, t0);
        let mut now = t0;
        let ms = |n| Duration::from_millis(n);
        for _ in 0..40 {
            c.started(c.limit());
            now += ms(60);
            c.finished(now, Signal::Answered(ms(50)));
        }
        let grown = c.limit();
        assert!(grown > 20, "grew to {grown}");
        for _ in 0..3 {
            now += ms(60);
            c.finished(now, Signal::BackPressure);
        }
        assert!(c.limit() < grown, "429/503 cut the window: {} -> {}", grown, c.limit());
        let cut = c.limit();
        for _ in 0..20 {
            now += ms(60);
            c.finished(now, Signal::Answered(ms(50)));
        }
        assert_eq!(c.limit(), cut, "a window never filled does not grow");
    }
}
