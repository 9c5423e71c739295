//! `dead`: reads and manages the dead letters (`<queue>:dead`, newest first:
//! index 0 is the newest).
//!
//! `list` and `show` read; `retry` puts payloads back on the queue as a
//! producer would (list mode `LPUSH`, stream mode `XADD` of the fields) and
//! `purge` removes entries. Both change one entry at a time in a Lua script,
//! so a crash leaves every entry in exactly one place; both ask first on a
//! terminal and refuse without `--yes` when stdin is not one.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, SystemTime};

use redis::aio::MultiplexedConnection;
use serde_json::Value;

use crate::cli::CommandError;
use crate::config::{QueueMode, Settings};

/// Moves one dead letter (ARGV[1], exactly) back to the queue: removed from
/// the list KEYS[1], then its payload pushed on the list KEYS[2] (ARGV[2] =
/// 'list', ARGV[3] the payload) or added to the stream KEYS[2] (ARGV[3..],
/// field and value pairs). Answers 0 when the entry was gone already.
const RETRY: &str = include_str!("lua/retry.lua");

/// Which dead letters a command acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Indexes(Vec<usize>),
    Matching(String),
    OlderThan(Duration),
}

/// One dead letter as stored, with its place in the list.
#[derive(Debug, Clone)]
pub struct Entry {
    pub index: usize,
    /// Exactly as stored: what `LREM` must be given.
    pub raw: String,
    pub value: Value,
}

impl Entry {
    fn field(&self, key: &str) -> &str {
        self.value.get(key).and_then(Value::as_str).unwrap_or("-")
    }

    /// The payload as text: the string itself, or the stream entry's fields
    /// as a JSON object.
    pub fn payload_text(&self) -> String {
        match self.value.get("payload") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => self.raw.clone(),
        }
    }

    /// When it was dead-lettered, if the entry says.
    fn at(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(self.value.get("at")?.as_str()?).ok()
    }

    /// What a producer would send in `mode`: (list) the payload text; (stream)
    /// field and value pairs: the entry's fields, or the text as `payload`.
    pub fn requeue_args(&self, mode: QueueMode) -> Vec<String> {
        match (mode, self.value.get("payload")) {
            (QueueMode::List, _) => vec![self.payload_text()],
            (QueueMode::Stream, Some(Value::Object(fields))) => fields
                .iter()
                .flat_map(|(k, v)| [k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)])
                .collect(),
            (QueueMode::Stream, _) => vec!["payload".into(), self.payload_text()],
        }
    }

    fn matches(&self, text: &str) -> bool {
        self.raw.contains(text)
    }
}

/// The entries `selection` names, from a snapshot of the list.
pub fn select(entries: &[Entry], selection: &Selection, now: SystemTime) -> Result<Vec<Entry>, CommandError> {
    Ok(match selection {
        Selection::All => entries.to_vec(),
        Selection::Indexes(indexes) => {
            let mut out = Vec::new();
            for &i in indexes {
                let e = entries.get(i).ok_or_else(|| {
                    CommandError::Usage(format!("no dead letter at index {i} (there are {})", entries.len()))
                })?;
                out.push(e.clone());
            }
            out
        }
        Selection::Matching(text) => entries.iter().filter(|e| e.matches(text)).cloned().collect(),
        Selection::OlderThan(age) => {
            let cutoff = now.checked_sub(*age).unwrap_or(SystemTime::UNIX_EPOCH);
            entries.iter().filter(|e| e.at().is_some_and(|at| at < cutoff)).cloned().collect()
        }
    })
}

fn dead_key(s: &Settings) -> String {
    crate::queue::keys::dead(&s.redis.queue)
}

async fn connect(s: &Settings) -> Result<MultiplexedConnection, CommandError> {
    Ok(crate::queue::connection(s.redis.url.expose(), s.redis.response_timeout).await?)
}

/// Every dead letter, newest first.
async fn snapshot(conn: &mut MultiplexedConnection, s: &Settings) -> Result<Vec<Entry>, CommandError> {
    let raw: Vec<String> = redis::cmd("LRANGE").arg(dead_key(s)).arg(0).arg(-1).query_async(conn).await?;
    Ok(raw
        .into_iter()
        .enumerate()
        .map(|(index, raw)| {
            let value = serde_json::from_str(&raw).unwrap_or(Value::Null);
            Entry { index, raw, value }
        })
        .collect())
}

fn shorten(s: &str, max: usize) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut out: String = flat.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub async fn list(s: &Settings, limit: usize, matching: Option<&str>, json: bool) -> Result<(), CommandError> {
    let mut conn = connect(s).await?;
    let entries = snapshot(&mut conn, s).await?;
    let total = entries.len();
    let shown: Vec<&Entry> = entries.iter().filter(|e| matching.is_none_or(|m| e.matches(m))).take(limit).collect();
    let mut out = std::io::stdout().lock();
    for e in &shown {
        if json {
            let mut v = e.value.clone();
            if let Value::Object(map) = &mut v {
                map.insert("index".into(), e.index.into());
            } else {
                v = serde_json::json!({"index": e.index, "raw": e.raw});
            }
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{:>5}  {}  {}  {}  {}",
                e.index,
                e.field("at"),
                e.field("consumer"),
                shorten(e.field("error"), 60),
                shorten(&e.payload_text(), 80)
            )?;
        }
    }
    if !json {
        writeln!(out, "{} of {total} dead letters shown (newest first)", shown.len())?;
    }
    Ok(())
}

pub async fn show(s: &Settings, index: usize) -> Result<(), CommandError> {
    let mut conn = connect(s).await?;
    let entries = snapshot(&mut conn, s).await?;
    let e = select(&entries, &Selection::Indexes(vec![index]), SystemTime::now())?.remove(0);
    println!("{}", serde_json::to_string_pretty(&e.value).unwrap_or(e.raw));
    Ok(())
}

/// Asks on a terminal; without one, refuses unless `--yes` was given.
fn confirm(what: &str, yes: bool) -> Result<bool, CommandError> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::Usage(format!("refusing to {what} without --yes: stdin is not a terminal")));
    }
    eprint!("{what}? [y/N] ");
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The entries a destructive command is to act on, once confirmed: `None`
/// when there are none or the operator declined (both said on stdout).
async fn chosen(
    s: &Settings,
    selection: &Selection,
    yes: bool,
    verb: &str,
) -> Result<Option<(MultiplexedConnection, Vec<Entry>)>, CommandError> {
    let mut conn = connect(s).await?;
    let chosen = select(&snapshot(&mut conn, s).await?, selection, SystemTime::now())?;
    if chosen.is_empty() {
        println!("no dead letter matches; nothing done");
        return Ok(None);
    }
    if !confirm(&format!("{verb} {} dead letters", chosen.len()), yes)? {
        println!("nothing done");
        return Ok(None);
    }
    Ok(Some((conn, chosen)))
}

pub async fn retry(s: &Settings, selection: Selection, yes: bool) -> Result<(), CommandError> {
    let Some((mut conn, chosen)) = chosen(s, &selection, yes, "retry").await? else { return Ok(()) };
    let script = redis::Script::new(RETRY);
    let mode = match s.redis.mode {
        QueueMode::List => "list",
        QueueMode::Stream => "stream",
    };
    let (mut moved, mut gone) = (0, 0);
    for e in &chosen {
        let mut inv = script.key(dead_key(s));
        inv.key(&s.redis.queue).arg(&e.raw).arg(mode).arg(e.requeue_args(s.redis.mode));
        let done: i64 = inv.invoke_async(&mut conn).await?;
        if done == 1 {
            moved += 1;
        } else {
            gone += 1;
        }
    }
    println!(
        "retried {moved} dead letters onto {}{}",
        s.redis.queue,
        if gone > 0 { format!("; {gone} were gone already") } else { String::new() }
    );
    Ok(())
}

pub async fn purge(s: &Settings, selection: Selection, yes: bool) -> Result<(), CommandError> {
    let Some((mut conn, chosen)) = chosen(s, &selection, yes, "purge").await? else { return Ok(()) };
    let mut removed = 0;
    for chunk in chosen.chunks(500) {
        let mut pipe = redis::pipe();
        for e in chunk {
            pipe.cmd("LREM").arg(dead_key(s)).arg(1).arg(&e.raw);
        }
        let counts: Vec<i64> = pipe.query_async(&mut conn).await?;
        removed += counts.iter().sum::<i64>();
    }
    println!("purged {removed} dead letters");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: usize, value: Value) -> Entry {
        Entry { index, raw: value.to_string(), value }
    }

    #[test]
    fn selections() {
        let now = humantime::parse_rfc3339("2026-12-04T12:00:00Z").unwrap();
        let entries = vec![
            entry(0, serde_json::json!({"payload": "{\"id\":\"a\"}", "error": "e", "at": "2026-12-04T11:59:00Z"})),
            entry(1, serde_json::json!({"payload": "not json", "error": "e", "at": "2026-12-01T00:00:00Z"})),
            entry(2, serde_json::json!({"payload": {"id": "c"}, "error": "e"})),
        ];
        let idx =
            |sel: Selection| -> Vec<usize> { select(&entries, &sel, now).unwrap().iter().map(|e| e.index).collect() };
        assert_eq!(idx(Selection::All), [0, 1, 2]);
        assert_eq!(idx(Selection::Indexes(vec![2, 0])), [2, 0]);
        assert_eq!(idx(Selection::Matching("not json".into())), [1]);
        assert_eq!(idx(Selection::OlderThan(Duration::from_secs(3600))), [1], "no `at`: never old");
        let err = select(&entries, &Selection::Indexes(vec![3]), now).unwrap_err();
        assert!(err.to_string().contains("index 3 (there are 3)"), "{err}");
    }

    #[test]
    fn payloads_go_back_as_producers_send_them() {
        let list = entry(0, serde_json::json!({"payload": "{\"id\":\"a\"}"}));
        let stream = entry(1, serde_json::json!({"payload": {"id": "b", "ipv4": "10.0.0.1"}}));
        assert_eq!(list.requeue_args(QueueMode::List), ["{\"id\":\"a\"}"]);
        assert_eq!(list.requeue_args(QueueMode::Stream), ["payload", "{\"id\":\"a\"}"]);
        assert_eq!(stream.requeue_args(QueueMode::Stream), ["id", "b", "ipv4", "10.0.0.1"]);
        // A stream entry retried onto a list: its fields as a JSON task.
        let v: Value = serde_json::from_str(&stream.requeue_args(QueueMode::List)[0]).unwrap();
        assert_eq!(v["id"], "b");
    }
}
