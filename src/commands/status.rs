//! `status`: what the queue holds and who works on it, read from Redis (and
//! from the daemons' `/readyz` when `--http` names them). Reads only.

use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::Value;
use serde::Serialize;

use crate::cli::CommandError;
use crate::config::{redact_url, QueueMode, Settings};
use crate::queue::{heartbeat_key, list};

#[derive(Debug, Serialize)]
pub struct Status {
    pub queue: String,
    pub mode: &'static str,
    /// Tasks waiting: list length, or stream entries not yet delivered
    /// (the group's lag; the stream's length when Redis cannot tell).
    pub queued: u64,
    pub dead_letters: u64,
    pub consumers: Vec<Consumer>,
    /// Stream mode: the consumer group.
    pub group: Option<Group>,
    pub daemons: Vec<Daemon>,
}

#[derive(Debug, Serialize)]
pub struct Consumer {
    pub name: String,
    /// Its heartbeat key exists: it renewed it within the lease.
    pub alive: bool,
    /// Seconds since its last heartbeat (assuming this configuration's lease).
    pub heartbeat_age_s: Option<f64>,
    /// Tasks it holds: unsettled tasks of its processing hash, or its
    /// pending entries.
    pub holds: u64,
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    pub stream_length: u64,
    pub lag: Option<u64>,
    pub pending: u64,
}

#[derive(Debug, Serialize)]
pub struct Daemon {
    pub url: String,
    pub ready: bool,
    pub answer: String,
}

pub async fn status(s: &Settings, json: bool, http: &[String]) -> Result<(), CommandError> {
    let mut conn = crate::queue::connection(s.redis.url.expose(), s.redis.response_timeout).await?;
    let st = read(&mut conn, s, http).await?;
    if json {
        println!("{}", serde_json::to_string(&st).expect("a status serialises"));
    } else {
        print!("{}", render(&st, &redact_url(s.redis.url.expose())));
    }
    Ok(())
}

async fn read(conn: &mut MultiplexedConnection, s: &Settings, http: &[String]) -> Result<Status, CommandError> {
    let q = &s.redis.queue;
    let dead_letters: u64 = redis::cmd("LLEN").arg(crate::queue::keys::dead(q)).query_async(conn).await?;
    let names: Vec<String> = redis::cmd("SMEMBERS").arg(crate::queue::keys::consumers(q)).query_async(conn).await?;
    let mut holds: BTreeMap<String, u64> = names.into_iter().map(|n| (n, 0)).collect();
    let (queued, group) = match s.redis.mode {
        QueueMode::List => {
            let keys: Vec<String> = holds.keys().map(|n| crate::queue::keys::processing(q, n)).collect();
            // Consumers that left the set (recovered) hold nothing any more.
            let counts: Vec<u64> = if keys.is_empty() {
                Vec::new()
            } else {
                redis::Script::new(list::COUNT_HELD).key(&keys).invoke_async(conn).await?
            };
            for (n, c) in holds.values_mut().zip(counts) {
                *n = c;
            }
            (redis::cmd("LLEN").arg(q).query_async(conn).await?, None)
        }
        QueueMode::Stream => {
            let group = read_group(conn, s).await?;
            let summary: Value = redis::cmd("XPENDING").arg(q).arg(&s.redis.group).query_async(conn).await?;
            for (name, n) in pending_by_consumer(summary) {
                *holds.entry(name).or_default() = n;
            }
            let queued = group.as_ref().map_or(0, |g| g.lag.unwrap_or(g.stream_length));
            (queued, group)
        }
    };
    let mut consumers = Vec::new();
    for (name, held) in holds {
        let ttl: i64 = redis::cmd("PTTL").arg(heartbeat_key(q, &name)).query_async(conn).await?;
        let alive = ttl > 0;
        let lease = s.redis.lease.as_millis() as i64;
        let age = alive.then(|| (lease - ttl).max(0) as f64 / 1000.0);
        consumers.push(Consumer { name, alive, heartbeat_age_s: age, holds: held });
    }
    let mut daemons = Vec::new();
    for base in http {
        let url = format!("{}/readyz", base.trim_end_matches('/'));
        let (ready, answer) = match crate::commands::healthcheck::get(&url, Duration::from_secs(2)) {
            Ok((code, body)) => (code == 200, format!("{code} {}", body.trim())),
            Err(e) => (false, e.to_string()),
        };
        daemons.push(Daemon { url, ready, answer });
    }
    Ok(Status {
        queue: q.clone(),
        mode: match s.redis.mode {
            QueueMode::List => "list",
            QueueMode::Stream => "stream",
        },
        queued,
        dead_letters,
        consumers,
        group,
        daemons,
    })
}

async fn read_group(conn: &mut MultiplexedConnection, s: &Settings) -> Result<Option<Group>, CommandError> {
    let q = &s.redis.queue;
    let exists: bool = redis::cmd("EXISTS").arg(q).query_async(conn).await?;
    if !exists {
        return Ok(None);
    }
    let stream_length: u64 = redis::cmd("XLEN").arg(q).query_async(conn).await?;
    let groups: Vec<Value> = redis::cmd("XINFO").arg("GROUPS").arg(q).query_async(conn).await?;
    for g in groups {
        let fields = flat_map(g);
        if fields.get("name").and_then(as_string).as_deref() == Some(s.redis.group.as_str()) {
            return Ok(Some(Group {
                name: s.redis.group.clone(),
                stream_length,
                lag: fields.get("lag").and_then(as_u64),
                pending: fields.get("pending").and_then(as_u64).unwrap_or(0),
            }));
        }
    }
    Ok(None)
}

/// `XPENDING key group`: `[count, min, max, [[consumer, count], ...]]`.
fn pending_by_consumer(summary: Value) -> Vec<(String, u64)> {
    let Value::Array(mut parts) = summary else { return Vec::new() };
    if parts.len() < 4 {
        return Vec::new();
    }
    let Value::Array(rows) = parts.swap_remove(3) else { return Vec::new() };
    rows.into_iter()
        .filter_map(|row| {
            let Value::Array(pair) = row else { return None };
            Some((as_string(pair.first()?)?, as_u64(pair.get(1)?)?))
        })
        .collect()
}

/// A RESP2 flat array or a RESP3 map, as a map by field name.
fn flat_map(v: Value) -> BTreeMap<String, Value> {
    match v {
        Value::Map(pairs) => pairs.into_iter().filter_map(|(k, v)| Some((as_string(&k)?, v))).collect(),
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((as_string(k)?, v.clone())),
                _ => None,
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// The redis crate's own conversions, as options: a value of another
/// shape (nil, an error) is no value.
fn as_string(v: &Value) -> Option<String> {
    redis::from_redis_value(v.clone()).ok()
}

fn as_u64(v: &Value) -> Option<u64> {
    redis::from_redis_value(v.clone()).ok()
}

fn render(st: &Status, url: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let alive = st.consumers.iter().filter(|c| c.alive).count();
    let _ = writeln!(out, "queue {} ({} mode) on {url}", st.queue, st.mode);
    let _ = writeln!(out, "  queued        {}", st.queued);
    let _ = writeln!(out, "  dead letters  {}", st.dead_letters);
    if let Some(g) = &st.group {
        let lag = g.lag.map_or("unknown".to_owned(), |l| l.to_string());
        let _ = writeln!(out, "  group {}: {} entries, lag {lag}, pending {}", g.name, g.stream_length, g.pending);
    }
    let _ = writeln!(out, "  consumers     {alive} alive, {} not", st.consumers.len() - alive);
    for c in &st.consumers {
        let beat = match c.heartbeat_age_s {
            Some(age) => format!("alive, heartbeat {age:.1} s ago"),
            None => "no heartbeat (dead: others take its tasks)".to_owned(),
        };
        let _ = writeln!(out, "    {}  {beat}, holds {} tasks", c.name, c.holds);
    }
    for d in &st.daemons {
        let _ = writeln!(out, "  {}  {}: {}", d.url, if d.ready { "ready" } else { "NOT READY" }, d.answer);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn xpending_summary_and_group_fields() {
        let summary = Value::Array(vec![
            Value::Int(5),
            bulk("1-0"),
            bulk("9-0"),
            Value::Array(vec![Value::Array(vec![bulk("a"), bulk("3")]), Value::Array(vec![bulk("b"), bulk("2")])]),
        ]);
        assert_eq!(pending_by_consumer(summary), vec![("a".into(), 3), ("b".into(), 2)]);
        assert!(pending_by_consumer(Value::Array(vec![Value::Int(0), Value::Nil, Value::Nil, Value::Nil])).is_empty());
        let group = flat_map(Value::Array(vec![bulk("name"), bulk("g"), bulk("lag"), Value::Int(7)]));
        assert_eq!(group.get("lag").and_then(as_u64), Some(7));
        assert_eq!(group.get("name").and_then(as_string).as_deref(), Some("g"));
    }
}
