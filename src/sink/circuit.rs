//! The publisher's view of the paste service, a circuit breaker: closed
//! (send up to `publisher.concurrency`), open (send nothing until a time),
//! half-open (one request at a time until one succeeds). A plain value; the
//! publisher asks it how many requests may be in flight.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    Closed,
    /// Nothing is sent until `until`. Then `probe`: half-open (the service
    /// was failing), or closed again (a quota or a refusal ran out).
    Open {
        until: Instant,
        probe: bool,
    },
    /// One request at a time, until one succeeds.
    HalfOpen,
}

impl Circuit {
    /// How many requests may be in flight at `now`, or until when none may.
    pub fn permits(&mut self, now: Instant, concurrency: usize) -> Result<usize, Instant> {
        match *self {
            Circuit::Closed => Ok(concurrency),
            Circuit::HalfOpen => Ok(1),
            Circuit::Open { until, .. } if now < until => Err(until),
            Circuit::Open { probe, .. } => {
                *self = if probe { Circuit::HalfOpen } else { Circuit::Closed };
                self.permits(now, concurrency)
            }
        }
    }

    /// Send nothing until `until` (a pause already longer stays); `probe`:
    /// the service is failing, so come back half-open. A circuit already
    /// probing keeps probing.
    pub fn open(&mut self, until: Instant, probe: bool) {
        *self = match *self {
            Circuit::Closed => Circuit::Open { until, probe },
            Circuit::HalfOpen => Circuit::Open { until, probe: true },
            Circuit::Open { until: was, probe: probing } => {
                Circuit::Open { until: was.max(until), probe: probing || probe }
            }
        };
    }

    /// A request succeeded.
    pub fn close(&mut self) {
        *self = Circuit::Closed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn transitions() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut c = Circuit::Closed;
        assert_eq!(c.permits(t0, 32), Ok(32));
        // A transient failure: open, then half-open, then closed on success.
        c.open(s(2), true);
        assert_eq!(c.permits(s(1), 32), Err(s(2)));
        assert_eq!(c.permits(s(2), 32), Ok(1));
        assert_eq!(c, Circuit::HalfOpen);
        c.open(s(5), false);
        assert_eq!(c, Circuit::Open { until: s(5), probe: true }, "a probing circuit keeps probing");
        assert_eq!(c.permits(s(5), 32), Ok(1));
        c.close();
        assert_eq!(c.permits(s(5), 32), Ok(32));
        // A quota or a refusal: open, then closed again (nothing was failing).
        c.open(s(10), false);
        assert_eq!(c.permits(s(9), 32), Err(s(10)));
        assert_eq!(c.permits(s(10), 32), Ok(32));
        // A shorter pause never cuts a longer one short.
        c.open(s(20), false);
        c.open(s(12), true);
        assert_eq!(c, Circuit::Open { until: s(20), probe: true });
    }
}
