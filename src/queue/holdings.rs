//! What this consumer holds in Redis, one variant per mode: list mode's
//! fetches with the tasks settled in each ([`list::Ledger`]), stream mode's
//! pending entries (a multiset: an entry delivered twice counts twice). The
//! QueueReader keeps one; the settle transaction reads it, and it records a
//! batch only once that transaction succeeded.

use std::collections::HashMap;

use bytes::Bytes;

use super::list;
use crate::config::QueueMode;
use crate::messages::{Delivery, Receipt, Settled};

#[derive(Debug)]
pub enum Holdings {
    List(list::Ledger),
    Stream(foldhash::HashMap<Receipt, usize>),
}

impl Holdings {
    pub fn new(mode: QueueMode) -> Holdings {
        match mode {
            QueueMode::List => Holdings::List(list::Ledger::default()),
            QueueMode::Stream => Holdings::Stream(foldhash::HashMap::default()),
        }
    }

    /// Counts fetched or claimed tasks in.
    pub fn took(&mut self, deliveries: &[Delivery]) {
        match self {
            Holdings::List(ledger) => ledger.took(deliveries),
            Holdings::Stream(entries) => {
                for d in deliveries {
                    *entries.entry(d.receipt.clone()).or_default() += 1;
                }
            }
        }
    }

    /// Whether we still hold this task.
    pub fn holds(&self, receipt: &Receipt) -> bool {
        match self {
            Holdings::List(ledger) => ledger.holds(receipt),
            Holdings::Stream(entries) => entries.contains_key(receipt),
        }
    }

    /// What Redis knows our tasks by ([`Receipt::key`]), with how many tasks
    /// each: list mode's fetch fields, stream mode's entry ids.
    pub fn held(&self) -> HashMap<Bytes, usize> {
        match self {
            Holdings::List(ledger) => ledger.held(),
            Holdings::Stream(entries) => entries.iter().map(|(r, n)| (r.key(), *n)).collect(),
        }
    }

    /// A fetch or entry that is ours no more (another consumer took it over):
    /// its tasks are settled by nobody here.
    pub fn forget(&mut self, token: &[u8]) {
        match self {
            Holdings::List(ledger) => ledger.forget(token),
            Holdings::Stream(entries) => {
                if let Ok(id) = std::str::from_utf8(token) {
                    entries.remove(&Receipt::Stream(id.to_owned()));
                }
            }
        }
    }

    /// Records a batch whose settle transaction succeeded.
    pub fn settled(&mut self, batch: &[Settled]) {
        match self {
            Holdings::List(ledger) => ledger.settled(batch),
            Holdings::Stream(entries) => {
                for s in batch {
                    if let Some(count) = entries.get_mut(&s.delivery.receipt) {
                        *count -= 1;
                        if *count == 0 {
                            entries.remove(&s.delivery.receipt);
                        }
                    }
                }
            }
        }
    }

    /// List mode's ledger, for the settle transaction.
    pub fn ledger(&self) -> Option<&list::Ledger> {
        match self {
            Holdings::List(ledger) => Some(ledger),
            Holdings::Stream(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Outcome;

    fn settled(d: &Delivery) -> Settled {
        Settled { delivery: d.clone(), task_id: None, outcome: Outcome::NotFound }
    }

    #[test]
    fn a_stream_entry_delivered_twice_is_held_until_both_copies_settle() {
        let mut h = Holdings::new(QueueMode::Stream);
        let d = Delivery::from_stream("1-0".into(), Vec::new(), 1);
        h.took(&[d.clone(), d.clone()]);
        assert_eq!(h.held()[&Bytes::from_static(b"1-0")], 2);
        h.settled(&[settled(&d)]);
        assert!(h.holds(&d.receipt));
        h.settled(&[settled(&d)]);
        assert!(!h.holds(&d.receipt));
    }

    #[test]
    fn what_another_consumer_took_is_forgotten() {
        for mode in [QueueMode::List, QueueMode::Stream] {
            let mut h = Holdings::new(mode);
            let d = match mode {
                QueueMode::List => Delivery::from_list(4, 0, Bytes::new()),
                QueueMode::Stream => Delivery::from_stream("9-0".into(), Vec::new(), 1),
            };
            h.took(std::slice::from_ref(&d));
            assert!(h.holds(&d.receipt));
            h.forget(&d.receipt.key());
            assert!(!h.holds(&d.receipt), "{mode:?}");
            assert!(h.held().is_empty());
        }
    }
}
