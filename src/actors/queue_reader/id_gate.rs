//! One id worked on at a time, within this consumer: the ids claimed, and the
//! copies of them that arrived meanwhile ("parked"), first come first served.
//! A plain type; the QueueReader keeps one and asks it.

use std::collections::VecDeque;

use foldhash::HashMap;

#[derive(Debug)]
pub struct IdGate<T> {
    /// Each claimed id, with its parked copies in arrival order.
    claimed: HashMap<String, VecDeque<T>>,
}

impl<T> Default for IdGate<T> {
    fn default() -> Self {
        IdGate { claimed: HashMap::default() }
    }
}

impl<T> IdGate<T> {
    /// `Some(item)` when `id` was free (it is claimed now: work on the item);
    /// `None` when a copy is being worked on (the item waits its turn).
    pub fn admit(&mut self, id: &str, item: T) -> Option<T> {
        match self.claimed.get_mut(id) {
            Some(parked) => {
                parked.push_back(item);
                None
            }
            None => {
                self.claimed.insert(id.to_owned(), VecDeque::new());
                Some(item)
            }
        }
    }

    /// The work on `id` is over: the next parked copy, which keeps the claim,
    /// or `None` when none waits (the id is free again).
    pub fn release(&mut self, id: &str) -> Option<T> {
        let parked = self.claimed.get_mut(id)?;
        let next = parked.pop_front();
        if next.is_none() {
            self.claimed.remove(id);
        }
        next
    }

    /// The ids claimed now (what the heartbeat renews).
    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.claimed.keys()
    }

    #[cfg(test)]
    fn is_claimed(&self, id: &str) -> bool {
        self.claimed.contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_wait_their_turn_in_order() {
        let mut gate = IdGate::default();
        assert_eq!(gate.admit("a", 1), Some(1));
        assert_eq!(gate.admit("a", 2), None, "parked behind 1");
        assert_eq!(gate.admit("b", 3), Some(3), "another id is free");
        assert_eq!(gate.admit("a", 4), None);
        assert_eq!(gate.release("a"), Some(2), "the first parked copy, which keeps the claim");
        assert!(gate.is_claimed("a"));
        assert_eq!(gate.release("a"), Some(4));
        assert_eq!(gate.release("a"), None, "none waits: free again");
        assert!(!gate.is_claimed("a"));
        assert_eq!(gate.admit("a", 5), Some(5));
        let mut ids: Vec<&String> = gate.ids().collect();
        ids.sort();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(gate.release("never"), None, "an id never claimed");
    }
}
