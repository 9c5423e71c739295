//! The operator's commands against a real Redis, and a real daemon where a
//! retried task must then be processed: `dead list|show|retry|purge` in both
//! modes, a kill -9 in the middle of a large retry, and `status` against a
//! known state.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use device_lookup::config::Settings;
use device_lookup::queue::Queue;
use redis::Commands;
use serde_json::{json, Value};
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const DEAD: &str = "device-lookup:tasks:dead";
const SEED: u64 = 71;

fn entry(payload: Value, error: &str, at: &str) -> String {
    json!({"payload": payload, "error": error, "consumer": "c1", "at": at}).to_string()
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn cli(config: &Path, args: &[&str]) -> String {
    let (status, out, err) = run_cli(config, args);
    assert!(status.success(), "{args:?}: {err}");
    out
}

#[test]
fn dead_letters_listed_shown_retried_and_purged() {
    let s = Stack::start("max_attempts = 1");
    assert!(run_cli(&s.config, &["seed", "--rows", "100", "--seed", &SEED.to_string()]).0.success());
    let mut conn = s.redis.conn();
    let good = task_payload(SEED, "good-1", 1);
    let entries = [
        entry(json!("old and bad"), "not JSON", "2020-01-01T00:00:00Z"),
        entry(json!(good), "paste service rejected the document", &now()),
        entry(json!("{\"id\": 1.5}"), "id: expected a string or an integer", &now()),
    ];
    for e in &entries {
        let _: () = conn.lpush(DEAD, e).unwrap();
    }

    // Newest first: index 0 is the last pushed.
    let text = cli(&s.config, &["dead", "list"]);
    assert!(text.contains("3 of 3 dead letters shown"), "{text}");
    let first = text.lines().next().unwrap();
    assert!(first.trim_start().starts_with('0') && first.contains("1.5"), "{first}");
    let json_lines: Vec<Value> =
        cli(&s.config, &["dead", "list", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(json_lines.len(), 3);
    assert_eq!(json_lines[1]["index"], 1);
    assert_eq!(json_lines[1]["payload"], good, "whole in JSON");
    assert_eq!(cli(&s.config, &["dead", "list", "--match", "good-1", "--json"]).lines().count(), 1);
    assert_eq!(cli(&s.config, &["dead", "list", "--limit", "1"]).lines().count(), 2);
    let shown: Value = serde_json::from_str(&cli(&s.config, &["dead", "show", "2"])).unwrap();
    assert_eq!(shown["payload"], "old and bad");
    let (status, _, err) = run_cli(&s.config, &["dead", "show", "3"]);
    assert_eq!(status.code(), Some(2), "{err}");

    // Destructive commands refuse without --yes when stdin is not a terminal.
    let (status, _, err) = run_cli(&s.config, &["dead", "retry", "--all"]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--yes"), "{err}");
    let (status, _, _) = run_cli(&s.config, &["dead", "purge", "--all"]);
    assert_eq!(status.code(), Some(2));
    assert_eq!(conn.llen::<_, usize>(DEAD).unwrap(), 3, "nothing changed");

    cli(&s.config, &["dead", "retry", "--match", "good-1", "--yes"]);
    cli(&s.config, &["dead", "retry", "--index", "0", "--yes"]);
    assert_eq!((conn.llen::<_, usize>(QUEUE).unwrap(), conn.llen::<_, usize>(DEAD).unwrap()), (2, 1));
    let queued: Vec<String> = conn.lrange(QUEUE, 0, -1).unwrap();
    assert!(queued.contains(&good), "the payload goes back as the producer sent it");

    // The good one is published, the bad one is dead again.
    let mut d = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("the retried tasks settled", Duration::from_secs(30), || {
        results(s.dir.path()).len() == 1 && conn.llen::<_, usize>(DEAD).unwrap() == 2
    });
    d.sigterm();
    assert!(d.wait(Duration::from_secs(30)).success());
    assert_eq!(results(s.dir.path())[0]["id"], "good-1");

    cli(&s.config, &["dead", "purge", "--older-than", "1d", "--yes"]);
    let left: Vec<String> = conn.lrange(DEAD, 0, -1).unwrap();
    assert_eq!(left.len(), 1, "only the one from 2020 was old");
    assert!(left[0].contains("1.5"));
    cli(&s.config, &["dead", "purge", "--all", "--yes"]);
    assert_eq!(conn.llen::<_, usize>(DEAD).unwrap(), 0);
}

#[test]
fn stream_mode_retries_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[redis]\nurl = \"{}\"\nmode = \"stream\"\n", redis.url())).unwrap();
    let mut conn = redis.conn();
    let fields = json!({"id": "s-1", "ipv4": "10.0.0.1", "mac": "aa:bb:cc:dd:ee:ff"});
    let _: () = conn.lpush(DEAD, entry(fields.clone(), "rejected", &now())).unwrap();
    let _: () = conn.lpush(DEAD, entry(json!({"payload": "garbage"}), "no id", &now())).unwrap();
    cli(&config, &["dead", "retry", "--all", "--yes"]);
    let reply: redis::streams::StreamRangeReply = conn.xrange_all(QUEUE).unwrap();
    let got: Vec<HashMap<String, String>> = reply
        .ids
        .iter()
        .map(|e| e.map.iter().map(|(k, v)| (k.clone(), redis::from_redis_value(v.clone()).unwrap())).collect())
        .collect();
    assert_eq!(got.len(), 2);
    assert!(got.iter().any(|f| f.get("id").map(String::as_str) == Some("s-1") && f["mac"] == "aa:bb:cc:dd:ee:ff"));
    assert!(got.iter().any(|f| f.get("payload").map(String::as_str) == Some("garbage")));
    assert_eq!(conn.llen::<_, usize>(DEAD).unwrap(), 0);
}

/// Killed with kill -9 in the middle of retrying 50,000 entries: each entry
/// is in exactly one place, dead or queued, never both, never neither.
#[test]
fn kill_9_during_a_large_retry_leaves_each_entry_in_one_place() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[redis]\nurl = \"{}\"\n", redis.url())).unwrap();
    let mut conn = redis.conn();
    const N: usize = 50_000;
    for chunk in (0..N).collect::<Vec<_>>().chunks(5000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.lpush(DEAD, entry(json!(format!("p{i}")), "e", "2026-01-01T00:00:00Z")).ignore();
        }
        let _: () = pipe.query(&mut conn).unwrap();
    }
    let mut child = std::process::Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "dead", "retry", "--all", "--yes"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the retry under way", Duration::from_secs(30), || conn.llen::<_, usize>(QUEUE).unwrap() >= 1000);
    child.kill().unwrap();
    child.wait().unwrap();
    let dead: Vec<String> = conn.lrange(DEAD, 0, -1).unwrap();
    let queued: Vec<String> = conn.lrange(QUEUE, 0, -1).unwrap();
    assert!(!dead.is_empty(), "the retry had finished before the kill: nothing was tested");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in &dead {
        let v: Value = serde_json::from_str(e).unwrap();
        *seen.entry(v["payload"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    for p in &queued {
        *seen.entry(p.clone()).or_default() += 1;
    }
    assert_eq!(seen.len(), N, "entries lost");
    assert!(seen.values().all(|n| *n == 1), "an entry in two places");
    eprintln!("killed with {} queued and {} still dead", queued.len(), dead.len());
}

fn status_json(config: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    serde_json::from_str(&cli(config, &args)).unwrap()
}

fn consumer<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["consumers"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap()
}

/// A known state: tasks queued, one live consumer holding tasks, one dead
/// consumer still holding some, dead letters; in list mode.
#[actix_rt::test]
async fn status_of_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let config = dir.path().join("config.toml");
    let text = format!("[redis]\nurl = \"{}\"\nlease = \"30s\"\n", redis.url());
    std::fs::write(&config, &text).unwrap();
    let settings = Settings::from_toml(&text, Path::new("t.toml"), Vec::new()).unwrap();
    let mut conn = redis.conn();
    for i in 0..10 {
        let _: () = conn.lpush(QUEUE, format!("{{\"id\":\"t{i}\"}}")).unwrap();
    }
    for i in 0..4 {
        let _: () = conn.lpush(DEAD, entry(json!(format!("d{i}")), "e", &now())).unwrap();
    }
    let alive = Queue::connect(&settings.redis, "alive").await.unwrap();
    alive.heartbeat(Vec::new(), Vec::new(), 0).await.unwrap();
    assert_eq!(alive.fetch(3).await.unwrap().len(), 3);
    let gone = Queue::connect(&settings.redis, "gone").await.unwrap();
    gone.heartbeat(Vec::new(), Vec::new(), 0).await.unwrap();
    assert_eq!(gone.fetch(2).await.unwrap().len(), 2);
    let _: () = conn.del("device-lookup:tasks:consumer:gone").unwrap();

    let st = status_json(&config, &["--http", "http://127.0.0.1:1"]);
    assert_eq!(
        (st["mode"].as_str(), st["queued"].as_u64(), st["dead_letters"].as_u64()),
        (Some("list"), Some(5), Some(4))
    );
    let a = consumer(&st, "alive");
    assert_eq!((a["alive"].as_bool(), a["holds"].as_u64()), (Some(true), Some(3)));
    assert!(a["heartbeat_age_s"].as_f64().unwrap() < 30.0);
    let g = consumer(&st, "gone");
    assert_eq!((g["alive"].as_bool(), g["holds"].as_u64()), (Some(false), Some(2)));
    assert!(st["group"].is_null());
    assert_eq!(st["daemons"][0]["ready"], false, "nothing listens there");

    let text = cli(&config, &["status"]);
    for want in [
        "queued        5",
        "dead letters  4",
        "1 alive, 1 not",
        "alive  alive, heartbeat",
        "holds 3 tasks",
        "holds 2 tasks",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
}

/// Stream mode: the group's lag and pending entries, by consumer.
#[actix_rt::test]
async fn status_of_a_stream() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let config = dir.path().join("config.toml");
    let text = format!("[redis]\nurl = \"{}\"\nmode = \"stream\"\n", redis.url());
    std::fs::write(&config, &text).unwrap();
    let settings = Settings::from_toml(&text, Path::new("t.toml"), Vec::new()).unwrap();
    let mut conn = redis.conn();
    let q = Queue::connect(&settings.redis, "reader").await.unwrap();
    q.heartbeat(Vec::new(), Vec::new(), 0).await.unwrap();
    for i in 0..10 {
        let _: String = conn.xadd(QUEUE, "*", &[("id", format!("s{i}"))]).unwrap();
    }
    assert_eq!(q.fetch(4).await.unwrap().len(), 4);

    let st = status_json(&config, &[]);
    assert_eq!(st["group"]["lag"], 6);
    assert_eq!(st["group"]["pending"], 4);
    assert_eq!(st["group"]["stream_length"], 10);
    assert_eq!(st["queued"], 6);
    assert_eq!(consumer(&st, "reader")["holds"], 4);
    let text = cli(&config, &["status"]);
    assert!(text.contains("lag 6, pending 4"), "{text}");
}
