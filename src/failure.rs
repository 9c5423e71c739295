//! What a failure of a dependency means, one pure function per boundary.
//!
//! Every dependency failure leads to the same safe action: keep the tasks,
//! pause, and try again. What differs is how long to wait, how loudly to log,
//! and how it is counted; [`Failure`] carries that. None of these ever
//! dead-letters a task: only a task's own fault does
//! ([`crate::task::TaskError`], or [`crate::sink::verdict::Verdict::Rejected`]).

use std::io;
use std::time::Duration;

/// How a dependency failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Down, unreachable, timed out, connection reset: retry soon.
    Unavailable,
    /// Up but overloaded or not ready (loading, out of memory, too many
    /// queries, disk full): retry, a little more patiently.
    Busy,
    /// An operator must act (wrong password, missing table, read-only
    /// filesystem, key of the wrong type): retry slowly and log as an error.
    Misconfigured,
}

impl Failure {
    /// The longest wait between two tries. Unavailable and busy stay at a few
    /// seconds, so the daemon resumes within 5 s of a dependency's return.
    pub fn max_backoff(self) -> Duration {
        match self {
            Failure::Unavailable | Failure::Busy => Duration::from_secs(4),
            Failure::Misconfigured => Duration::from_secs(30),
        }
    }

    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Failure::Unavailable => "unavailable",
            Failure::Busy => "busy",
            Failure::Misconfigured => "misconfigured",
        }
    }
}

/// Redis: by the error code of the reply, else by the kind of I/O failure.
pub fn classify_redis(code: Option<&str>, is_io: bool) -> Failure {
    match code {
        Some("LOADING" | "BUSY" | "TRYAGAIN" | "OOM" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY") => Failure::Busy,
        Some("NOAUTH" | "WRONGPASS" | "NOPERM" | "WRONGTYPE" | "ERR") => Failure::Misconfigured,
        Some(_) => Failure::Unavailable,
        None if is_io => Failure::Unavailable,
        None => Failure::Unavailable,
    }
}

pub fn classify_redis_error(e: &redis::RedisError) -> Failure {
    classify_redis(e.code(), e.is_io_error() || e.is_timeout() || e.is_connection_dropped())
}

/// ClickHouse: by the server's exception code (`Code: N` in the answer),
/// else the failure is one of transport.
pub fn classify_clickhouse(message: &str) -> Failure {
    match clickhouse_code(message) {
        // MEMORY_LIMIT_EXCEEDED, TIMEOUT_EXCEEDED, TOO_MANY_SIMULTANEOUS_QUERIES,
        // TOO_MANY_PARTS, QUOTA_EXPIRED, SOCKET_TIMEOUT, NETWORK_ERROR
        Some(241 | 159 | 202 | 252 | 201 | 209 | 210) => Failure::Busy,
        // UNKNOWN_TABLE, UNKNOWN_DATABASE, UNKNOWN_IDENTIFIER, NO_SUCH_COLUMN_IN_TABLE,
        // SYNTAX_ERROR, UNKNOWN_FUNCTION, UNKNOWN_USER, WRONG_PASSWORD,
        // REQUIRED_PASSWORD, AUTHENTICATION_FAILED, ACCESS_DENIED, READONLY
        Some(60 | 81 | 47 | 16 | 62 | 46 | 192 | 193 | 194 | 516 | 497 | 164) => Failure::Misconfigured,
        Some(_) => Failure::Unavailable,
        None => Failure::Unavailable,
    }
}

/// The number after `Code: ` in a ClickHouse exception text.
pub fn clickhouse_code(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The results file: a full disk is waited out; a read-only or forbidden
/// path needs an operator; anything else (EIO, ...) is retried.
pub fn classify_disk(e: &io::Error) -> Failure {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    const EROFS: i32 = 30;
    const EACCES: i32 = 13;
    const EPERM: i32 = 1;
    const ENOENT: i32 = 2;
    const EISDIR: i32 = 21;
    match e.raw_os_error() {
        Some(ENOSPC | EDQUOT) => Failure::Busy,
        Some(EROFS | EACCES | EPERM | ENOENT | EISDIR) => Failure::Misconfigured,
        _ => match e.kind() {
            io::ErrorKind::PermissionDenied | io::ErrorKind::NotFound => Failure::Misconfigured,
            _ => Failure::Unavailable,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Failure::*;

    #[test]
    fn redis_errors() {
        let table: &[(Option<&str>, bool, Failure)] = &[
            (None, true, Unavailable),
            (Some("LOADING"), false, Busy),
            (Some("OOM"), false, Busy),
            (Some("READONLY"), false, Busy),
            (Some("BUSY"), false, Busy),
            (Some("NOAUTH"), false, Misconfigured),
            (Some("WRONGPASS"), false, Misconfigured),
            (Some("NOPERM"), false, Misconfigured),
            (Some("WRONGTYPE"), false, Misconfigured),
            (Some("EXECABORT"), false, Unavailable),
        ];
        for (code, io, want) in table {
            assert_eq!(classify_redis(*code, *io), *want, "{code:?}");
        }
    }

    #[test]
    fn redis_error_values() {
        let refused = redis::RedisError::from(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify_redis_error(&refused), Unavailable);
    }

    #[test]
    fn clickhouse_errors() {
        // Texts as ClickHouse 18.16 and the clickhouse crate print them.
        let table: &[(&str, Failure)] = &[
            ("network error: error trying to connect: tcp connect error: Connection refused (os error 111)", Unavailable),
            ("timeout expired", Unavailable),
            ("no answer within 10s", Unavailable),
            ("bad response: Code: 60, e.displayText() = DB::Exception: Table devices.users doesn't exist., e.what() = DB::Exception", Misconfigured),
            ("bad response: Code: 81, e.displayText() = DB::Exception: Database devices doesn't exist", Misconfigured),
            ("bad response: Code: 516, e.displayText() = DB::Exception: default: Authentication failed", Misconfigured),
            ("bad response: Code: 192, e.displayText() = DB::Exception: Unknown user bob", Misconfigured),
            ("bad response: Code: 241, e.displayText() = DB::Exception: Memory limit (for query) exceeded", Busy),
            ("bad response: Code: 202, e.displayText() = DB::Exception: Too many simultaneous queries", Busy),
            ("bad response: Code: 210, e.displayText() = DB::NetException: Connection reset by peer", Busy),
            ("bad response: Code: 1000, e.displayText() = DB::Exception: something", Unavailable),
            ("table `devices`.`users` does not exist: run `device-lookup seed` first", Unavailable),
        ];
        for (text, want) in table {
            assert_eq!(classify_clickhouse(text), *want, "{text}");
        }
        assert_eq!(clickhouse_code("Code: 60, e.displayText()"), Some(60));
        assert_eq!(clickhouse_code("no code"), None);
    }

    #[test]
    fn disk_errors() {
        let table: &[(i32, Failure)] =
            &[(28, Busy), (122, Busy), (30, Misconfigured), (13, Misconfigured), (5, Unavailable)];
        for (errno, want) in table {
            assert_eq!(classify_disk(&io::Error::from_raw_os_error(*errno)), *want, "errno {errno}");
        }
    }

    #[test]
    fn backoff_caps_allow_resuming_within_5s() {
        assert!(Unavailable.max_backoff() < Duration::from_secs(5));
        assert!(Busy.max_backoff() < Duration::from_secs(5));
    }
}
