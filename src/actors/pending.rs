//! Work that stays in the actor while a future works on it. actix cancels an
//! actor's futures when it stops, so the work must not live in the future:
//! items wait in line, one batch at a time is taken out to run, and when the
//! future's answer comes the batch is finished; a restart puts a running
//! batch back at the head of the line.

#[derive(Debug)]
pub struct Pending<T> {
    queued: Vec<T>,
    running: Option<Vec<T>>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Pending { queued: Vec::new(), running: None }
    }
}

impl<T> Pending<T> {
    pub fn push(&mut self, item: T) {
        self.queued.push(item);
    }

    pub fn extend(&mut self, items: impl IntoIterator<Item = T>) {
        self.queued.extend(items);
    }

    /// Whether a batch runs now.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Whether a batch could start: none runs, and something waits.
    pub fn ready(&self) -> bool {
        self.running.is_none() && !self.queued.is_empty()
    }

    /// Items waiting, not counting a running batch.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Items waiting and running.
    pub fn len(&self) -> usize {
        self.queued.len() + self.running.as_ref().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts the first `n` waiting items (or all, if fewer wait) as the
    /// running batch; answers it, to build the future's input from.
    pub fn start(&mut self, n: usize) -> &[T] {
        debug_assert!(self.running.is_none(), "one batch at a time");
        let rest = self.queued.split_off(n.min(self.queued.len()));
        let batch = std::mem::replace(&mut self.queued, rest);
        self.running.insert(batch)
    }

    /// The running batch, to drop what turned out not to need the work.
    pub fn running_mut(&mut self) -> Option<&mut Vec<T>> {
        self.running.as_mut()
    }

    /// Takes everything waiting out of the line, for the caller to sort
    /// before it starts a batch ([`Pending::run`]).
    pub fn take_queued(&mut self) -> Vec<T> {
        std::mem::take(&mut self.queued)
    }

    /// Starts `batch` running; answers it, to build the future's input from.
    pub fn run(&mut self, batch: Vec<T>) -> &[T] {
        debug_assert!(self.running.is_none(), "one batch at a time");
        self.running.insert(batch)
    }

    /// The running batch's future answered: the batch, for the caller.
    pub fn finish(&mut self) -> Vec<T> {
        self.running.take().unwrap_or_default()
    }

    /// The running batch's future was cancelled (a restart): its items go
    /// back to the head of the line, in their order.
    pub fn cancel(&mut self) {
        if let Some(mut batch) = self.running.take() {
            batch.append(&mut self.queued);
            self.queued = batch;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cancelled_batch_goes_back_to_the_head_of_the_line() {
        let mut p = Pending::default();
        assert!(!p.ready());
        p.extend([1, 2]);
        assert!(p.ready());
        let batch = p.take_queued();
        assert_eq!(p.run(batch), [1, 2]);
        assert!(p.is_running() && !p.ready());
        p.push(3);
        assert!(!p.ready(), "one batch at a time");
        p.cancel();
        assert!(!p.is_running());
        assert_eq!(p.take_queued(), [1, 2, 3], "the cancelled batch first, in order");
        p.push(4);
        let batch = p.take_queued();
        p.run(batch);
        assert_eq!(p.finish(), [4]);
        assert!(!p.is_running() && p.finish().is_empty());
    }

    #[test]
    fn a_partial_batch_takes_the_head_and_leaves_the_rest_waiting() {
        let mut p = Pending::default();
        p.extend([1, 2, 3, 4, 5]);
        assert_eq!(p.start(2), [1, 2]);
        assert_eq!((p.queued(), p.len()), (3, 5));
        p.push(6);
        p.running_mut().unwrap().retain(|x| *x != 1);
        p.cancel();
        assert_eq!(p.start(10), [2, 3, 4, 5, 6], "the cancelled rest first, then the line");
        assert_eq!(p.finish(), [2, 3, 4, 5, 6]);
        assert!(p.is_empty());
    }
}
