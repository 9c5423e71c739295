//! Every Redis key of queue `Q`, and the values of an id's record: the one
//! place their layout is written (the Lua scripts in `lua/` read the record
//! values' prefixes, `claim:`, `write:` and `done:`, as documented there).

use std::fmt;
use std::io::Write;

use redis::{Cmd, RedisWrite};

/// `Q:dead`: the dead letters, newest first.
pub fn dead(queue: &str) -> String {
    format!("{queue}:dead")
}

/// `Q:consumers`: the names of consumers that ever beat.
pub fn consumers(queue: &str) -> String {
    format!("{queue}:consumers")
}

/// `Q:consumer:<name>`: a consumer's heartbeat, expiring after the lease.
pub fn heartbeat_key(queue: &str, consumer: &str) -> String {
    format!("{queue}:consumer:{consumer}")
}

/// `Q:processing:<name>`: list mode, the fetches a consumer holds.
pub fn processing(queue: &str, consumer: &str) -> String {
    format!("{queue}:processing:{consumer}")
}

/// `Q:seq`: list mode, the last number given to a fetch.
pub fn seq(queue: &str) -> String {
    format!("{queue}:seq")
}

/// The record value of an id a consumer works on.
pub fn claim_value(consumer: &str) -> String {
    format!("claim:{consumer}")
}

/// The record value of an id whose line the results file with this id is
/// writing.
pub fn write_value(file: &str) -> String {
    format!("write:{file}")
}

#[derive(Debug)]
pub struct Keys {
    pub queue: String,
    pub dead: String,
    pub consumers: String,
    pub processing: String,
    pub heartbeat: String,
}

impl Keys {
    pub fn new(queue: &str, consumer: &str) -> Keys {
        Keys {
            queue: queue.to_owned(),
            dead: dead(queue),
            consumers: consumers(queue),
            processing: processing(queue, consumer),
            heartbeat: heartbeat_key(queue, consumer),
        }
    }

    /// The id's record: its claim while worked on, its URL once published.
    pub fn record(&self, id: &str) -> String {
        self.record_key(id).to_string()
    }

    /// The name of the id's record, to format where it is needed: the one
    /// place its layout is written.
    fn record_key<'a>(&'a self, id: &'a str) -> impl fmt::Display + 'a {
        struct RecordKey<'a>(&'a str, &'a str);
        impl fmt::Display for RecordKey<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}:id:{}", self.0, self.1)
            }
        }
        RecordKey(&self.queue, id)
    }

    /// `SET <record of id> <value> <options...>`, the value being the parts
    /// joined, with the command's buffers sized once: a command grown one
    /// argument at a time reallocated them five or six times, and one of
    /// these is built for every claim and every publish.
    pub(super) fn set_record(&self, id: &str, value: &[&str], options: &[&dyn fmt::Display]) -> Cmd {
        let value_len: usize = value.iter().map(|part| part.len()).sum();
        let mut cmd = Cmd::with_capacity(3 + options.len(), 3 + self.queue.len() + 4 + id.len() + value_len + 32);
        cmd.arg("SET");
        cmd.write_arg_fmt(self.record_key(id));
        {
            let mut arg = cmd.writer_for_next_arg();
            for part in value {
                arg.write_all(part.as_bytes()).expect("a command is written to memory");
            }
        }
        for option in options {
            cmd.write_arg_fmt(option);
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_command_is_the_plain_set() {
        let keys = Keys::new("q", "c1");
        let done = keys.set_record("id-7", &["done:", "https://p/x"], &[&"EX", &86400u64]);
        let plain = redis::cmd("SET").arg("q:id:id-7").arg("done:https://p/x").arg("EX").arg(86400u64).clone();
        assert_eq!(done.get_packed_command(), plain.get_packed_command());
        let claim = keys.set_record("é", &["claim:c1"], &[&"NX", &"PX", &30000u64]);
        let plain = redis::cmd("SET").arg("q:id:é").arg("claim:c1").arg("NX").arg("PX").arg(30000u64).clone();
        assert_eq!(claim.get_packed_command(), plain.get_packed_command());
    }

    #[test]
    fn the_layout() {
        assert_eq!(dead("q"), "q:dead");
        assert_eq!(consumers("q"), "q:consumers");
        assert_eq!(heartbeat_key("q", "c"), "q:consumer:c");
        assert_eq!(processing("q", "c"), "q:processing:c");
        assert_eq!(seq("q"), "q:seq");
        assert_eq!(Keys::new("q", "c").record("7"), "q:id:7");
        assert_eq!((claim_value("c"), write_value("f")), ("claim:c".to_owned(), "write:f".to_owned()));
    }
}
