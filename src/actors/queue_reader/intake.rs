//! Whether the QueueReader takes tasks: not before the results file's lines
//! after its checkpoint are recorded as published (a task whose line was
//! written just before a crash must not get a second one), and not after
//! shutdown began. A stop does not cancel that recording: until it is done,
//! another replica could take those tasks and write them again. A plain
//! state machine.

use std::sync::Arc;

/// (id, url) of a line in the results file.
pub type Line = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Until the ResultWriter reports what the results file holds; `stop`:
    /// shutdown began meanwhile.
    AwaitingRecovery {
        stop: bool,
    },
    /// Recording those lines as published; `running` while that is under way.
    Recording {
        lines: Arc<Vec<Line>>,
        running: bool,
        stop: bool,
    },
    Open,
    /// Shutdown: no more tasks.
    Stopped,
}

impl Default for Intake {
    fn default() -> Self {
        Intake::AwaitingRecovery { stop: false }
    }
}

impl Intake {
    /// The ResultWriter reported the lines to record.
    pub fn recovered(&mut self, lines: Vec<Line>) {
        if let Intake::AwaitingRecovery { stop } = *self {
            *self = Intake::Recording { lines: Arc::new(lines), running: false, stop };
        }
    }

    /// The lines to record now, unless that is under way or done.
    pub fn start_recording(&mut self) -> Option<Arc<Vec<Line>>> {
        match self {
            Intake::Recording { lines, running: running @ false, .. } => {
                *running = true;
                Some(lines.clone())
            }
            _ => None,
        }
    }

    /// The lines are recorded: intake opens, or stops if shutdown began.
    pub fn recorded(&mut self) {
        if let Intake::Recording { stop, .. } = *self {
            *self = if stop { Intake::Stopped } else { Intake::Open };
        }
    }

    /// The recording was cut short (Redis failed): it runs again.
    pub fn interrupted(&mut self) {
        if let Intake::Recording { running, .. } = self {
            *running = false;
        }
    }

    /// Shutdown: take no more tasks (a recording still runs to its end).
    pub fn stop(&mut self) {
        match self {
            Intake::AwaitingRecovery { stop } | Intake::Recording { stop, .. } => *stop = true,
            Intake::Open | Intake::Stopped => *self = Intake::Stopped,
        }
    }

    pub fn is_open(&self) -> bool {
        *self == Intake::Open
    }

    /// Whether intake still waits for the results file to be checked.
    pub fn awaiting_results_file(&self) -> bool {
        matches!(self, Intake::AwaitingRecovery { .. } | Intake::Recording { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_once_the_lines_are_recorded() {
        let mut i = Intake::default();
        assert_eq!(i.start_recording(), None, "nothing reported yet");
        i.recovered(vec![("a".into(), "u".into())]);
        assert!(i.awaiting_results_file() && !i.is_open());
        assert_eq!(i.start_recording().unwrap().len(), 1);
        assert_eq!(i.start_recording(), None, "under way");
        i.interrupted();
        assert!(i.start_recording().is_some(), "runs again after a failure");
        i.recorded();
        assert!(i.is_open() && !i.awaiting_results_file());
        i.recovered(Vec::new());
        assert!(i.is_open(), "reported once");
        i.stop();
        assert_eq!(i, Intake::Stopped);
    }

    #[test]
    fn a_stop_lets_the_recording_finish_then_stays_stopped() {
        // Stopped before the report, and while recording.
        for stop_before_report in [true, false] {
            let mut i = Intake::default();
            if stop_before_report {
                i.stop();
            }
            i.recovered(vec![("a".into(), "u".into())]);
            if !stop_before_report {
                i.stop();
            }
            assert!(i.start_recording().is_some(), "the lines are still recorded");
            assert!(!i.is_open());
            i.recorded();
            assert_eq!(i, Intake::Stopped);
        }
    }
}
