//! The lease clock: until when this consumer can prove, on the monotonic
//! clock, that it still owns what it holds in Redis; and what to do with a
//! task once Redis has been asked again ([`Fenced`]).
//!
//! Every claim of an id and every task held (list mode's fetches, stream
//! mode's pending entries) is renewed by the heartbeat, and made at least as
//! late as the heartbeat that came before it. So all of them expire no
//! earlier than `lease` after the *sending* of the last heartbeat that Redis
//! acknowledged. The clock keeps that instant, less a margin for Redis's own
//! delay and clock rate ([`margin`]).
//!
//! While heartbeats keep coming before that instant, the chain is unbroken
//! and nothing we hold can have been taken over: that stretch of time is one
//! *epoch*. A heartbeat sent after the instant passed (the process was
//! stopped, paused, frozen, or Redis was away) starts a new epoch: claims may
//! have lapsed meanwhile, and another consumer may have taken them. A task
//! carries the epoch in which its claim was last confirmed; one from an older
//! epoch is re-validated with Redis before anything acts on it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a confirmed heartbeat meant for the chain of leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// It was sent while the previous confirmation held: nothing lapsed.
    Continued,
    /// It was sent after the previous confirmation ran out (or is the
    /// first): a new epoch; everything held must be re-validated.
    NewEpoch(u64),
}

/// The clock's state, a plain value (the thread-safe shell is [`LeaseClock`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseState {
    /// Until when the current epoch's leases are proven.
    confirmed_until: Option<Instant>,
    /// Starts at 0, which no confirmed task ever carries.
    epoch: u64,
}

impl LeaseState {
    /// Redis acknowledged a heartbeat sent at `sent_at`; its leases hold
    /// for `valid_for` from then (the lease less the margin).
    pub fn confirm(&mut self, sent_at: Instant, valid_for: Duration) -> Confirmed {
        let until = sent_at + valid_for;
        match self.confirmed_until {
            Some(held) if sent_at <= held => {
                self.confirmed_until = Some(held.max(until));
                Confirmed::Continued
            }
            _ => {
                self.epoch += 1;
                self.confirmed_until = Some(until);
                Confirmed::NewEpoch(self.epoch)
            }
        }
    }

    /// The epoch, while its confirmation holds at `now`.
    pub fn live_epoch(&self, now: Instant) -> Option<u64> {
        self.confirmed_until.filter(|until| now < *until).map(|_| self.epoch)
    }

    /// Act on a task confirmed in `epoch`, or ask Redis first?
    pub fn decide(&self, epoch: u64, now: Instant) -> Act {
        if self.live_epoch(now) == Some(epoch) {
            Act::Go
        } else {
            Act::Revalidate
        }
    }
}

/// Whether a task may be acted on now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Its claim is proven for now: go on.
    Go,
    /// Its claim may have lapsed: ask Redis before acting.
    Revalidate,
}

/// How far before the lease's end the clock stops trusting it: a tenth of
/// the lease, so that a heartbeat every third of it keeps a wide gap.
pub fn margin(lease: Duration) -> Duration {
    lease / 10
}

/// The lease clock, shared by the actors of one consumer (any thread).
#[derive(Debug)]
pub struct LeaseClock {
    state: Mutex<LeaseState>,
    valid_for: Duration,
}

impl LeaseClock {
    pub fn new(lease: Duration) -> LeaseClock {
        LeaseClock { state: Mutex::new(LeaseState::default()), valid_for: lease - margin(lease) }
    }

    pub fn confirm(&self, sent_at: Instant) -> Confirmed {
        self.lock().confirm(sent_at, self.valid_for)
    }

    pub fn live_epoch(&self) -> Option<u64> {
        self.lock().live_epoch(Instant::now())
    }

    pub fn decide(&self, epoch: u64) -> Act {
        self.lock().decide(epoch, Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        // The state is two plain values, consistent after any panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What Redis said of a task asked about again (the fence script in
/// [`crate::queue`] decides, atomically with renewing or taking the claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    /// Still ours (renewed, or re-taken while nobody else had it): act.
    Keep,
    /// We no longer hold the task: another consumer took it over. Drop it:
    /// no paste, no line, not settled by us.
    Lost,
    /// We hold it, and its id was published meanwhile: settle as duplicate.
    Duplicate,
    /// We hold it, and another consumer works on its id now (a second copy
    /// of it): look again later, as at intake.
    Elsewhere,
}

impl Fenced {
    /// The fence script's answer for one task.
    pub fn from_code(code: u8) -> Fenced {
        match code {
            0 => Fenced::Keep,
            2 => Fenced::Duplicate,
            3 => Fenced::Elsewhere,
            _ => Fenced::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(10);

    #[test]
    fn heartbeats_in_time_keep_one_epoch() {
        let t0 = Instant::now();
        let valid = LEASE - margin(LEASE);
        let mut s = LeaseState::default();
        assert_eq!(s.live_epoch(t0), None, "nothing is proven before the first heartbeat");
        assert_eq!(s.confirm(t0, valid), Confirmed::NewEpoch(1));
        assert_eq!(s.live_epoch(t0 + Duration::from_secs(8)), Some(1));
        assert_eq!(s.live_epoch(t0 + Duration::from_secs(9)), None, "the margin is a tenth");
        // Every third of the lease, answered late or not: the same epoch.
        for n in 1..10u32 {
            assert_eq!(s.confirm(t0 + LEASE / 3 * n, valid), Confirmed::Continued);
        }
        assert_eq!(s.live_epoch(t0 + LEASE / 3 * 9 + Duration::from_secs(8)), Some(1));
    }

    #[test]
    fn a_late_answer_never_extends_past_its_sending() {
        let t0 = Instant::now();
        let valid = LEASE - margin(LEASE);
        let mut s = LeaseState::default();
        s.confirm(t0 + Duration::from_secs(5), valid);
        // An answer to an earlier heartbeat, processed after a stall, proves
        // only what it proved when it was sent.
        assert_eq!(s.confirm(t0, valid), Confirmed::Continued);
        assert_eq!(s.live_epoch(t0 + Duration::from_secs(13)), Some(1));
        assert_eq!(s.live_epoch(t0 + Duration::from_secs(14)), None);
    }

    #[test]
    fn a_stall_beyond_the_lease_starts_a_new_epoch() {
        let t0 = Instant::now();
        let valid = LEASE - margin(LEASE);
        let mut s = LeaseState::default();
        s.confirm(t0, valid);
        // Stopped for 22 s: the next heartbeat is sent long after the lease.
        let resumed = t0 + Duration::from_secs(22);
        assert_eq!(s.live_epoch(resumed), None);
        assert_eq!(s.confirm(resumed, valid), Confirmed::NewEpoch(2));
        assert_eq!(s.live_epoch(resumed), Some(2));
    }

    #[test]
    fn act_or_revalidate() {
        let t0 = Instant::now();
        let valid = LEASE - margin(LEASE);
        // (task's epoch, heartbeats sent at these seconds, now) -> decision
        let table: &[(u64, &[u64], u64, Act)] = &[
            (0, &[], 0, Act::Revalidate),       // never confirmed
            (1, &[0], 1, Act::Go),              // confirmed, lease running
            (1, &[0, 3, 6], 14, Act::Go),       // heartbeats in time renew it
            (1, &[0], 9, Act::Revalidate),      // no heartbeat: past the margin
            (1, &[0, 22], 23, Act::Revalidate), // stalled: an older epoch
            (2, &[0, 22], 23, Act::Go),         // confirmed after the stall
            (0, &[0], 1, Act::Revalidate),      // a task confirmed when nothing was live
        ];
        for (epoch, beats, now, want) in table {
            let mut s = LeaseState::default();
            for b in *beats {
                s.confirm(t0 + Duration::from_secs(*b), valid);
            }
            assert_eq!(s.decide(*epoch, t0 + Duration::from_secs(*now)), *want, "{epoch} {beats:?} {now}");
        }
    }

    #[test]
    fn fence_codes() {
        let table =
            [(0, Fenced::Keep), (1, Fenced::Lost), (2, Fenced::Duplicate), (3, Fenced::Elsewhere), (9, Fenced::Lost)];
        for (code, want) in table {
            assert_eq!(Fenced::from_code(code), want);
        }
    }
}
