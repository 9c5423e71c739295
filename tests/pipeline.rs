//! The pipeline end to end on real servers: seed, enqueue hits, misses and
//! every kind of malformed task, run the daemon against the bundled
//! pastebin-protocol server, and check every outcome the contract promises.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use device_lookup::gen::device;
use device_lookup::task::{parse_json, Mac};
use redis::Commands;
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const ROWS: u64 = 3000;
const SEED: u64 = 11;

/// Malformed payloads a producer can send, beyond the ones `enqueue` makes.
fn handmade_malformed() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        "",
        "null",
        "42",
        "{}",
        r#"{"id":"m1","ipv4":"10.0.0.1"}"#,
        r#"{"id":"m2","mac":"aa:bb:cc:dd:ee:ff"}"#,
        r#"{"id":true,"ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff"}"#,
        r#"{"id":["x"],"ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff"}"#,
        r#"{"id":"m3","ipv4":"10.0.0.256","mac":"aa:bb:cc:dd:ee:ff"}"#,
        r#"{"id":"m4","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff:00"}"#,
        r#"{"id":"m5","ipv4":"10.0.0.1","mac":"aa:bb-cc:dd:ee:ff"}"#,
        r#"{"id":"m6","ipv4":null,"mac":"aa:bb:cc:dd:ee:ff"}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    v.push(b"{\"id\":\"m7\xff\",\"ipv4\":\"10.0.0.1\",\"mac\":\"aa:bb:cc:dd:ee:ff\"}".to_vec());
    v.push(format!(r#"{{"id":"{}","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff"}}"#, "x".repeat(300)).into_bytes());
    let mut big = br#"{"id":"m8","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff","pad":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1 << 20));
    big.extend(b"\"}");
    v.push(big);
    v
}

#[test]
fn end_to_end_list_mode() {
    let s = Stack::start("");

    let (status, _, err) =
        run_cli(&s.config, &["seed", "--rows", &ROWS.to_string(), "--seed", &SEED.to_string(), "--batch", "1000"]);
    assert!(status.success(), "seed failed: {err}");
    assert_eq!(s.ch.query("SELECT count() FROM devices.users").trim(), ROWS.to_string());

    // A device bound twice: the later updated_at must win, whatever the insert order.
    // A neighbour on the same address with another MAC, bound later still: rows are
    // selected by address, so the exact device must be matched after that.
    let d = device(SEED, 5);
    s.ch.query(&format!(
        "INSERT INTO devices.users VALUES ('newer-owner', {ip}, {mac}, '2030-01-01 00:00:00'), ('older-owner', {ip}, {mac}, '2020-01-01 00:00:00'), ('neighbour', {ip}, {other}, '2031-01-01 00:00:00')",
        ip = d.ipv4,
        mac = d.mac,
        other = d.mac ^ 1
    ));
    // An address and a MAC that both exist, but not together: not found.
    let crossed_mac = device(SEED, 6).mac;

    let (status, _, err) = run_cli(
        &s.config,
        &["enqueue", "--count", "600", "--hit-ratio", "0.8", "--invalid-ratio", "0.1", "--seed", "3"],
    );
    assert!(status.success(), "enqueue failed: {err}");
    let mut conn = s.redis.conn();
    let _: () = conn.lpush(QUEUE, task_payload(SEED, "rebound", 5)).unwrap();
    let crossed = format!(
        r#"{{"id":"crossed","ipv4":"{}","mac":"{}"}}"#,
        std::net::Ipv4Addr::from(d.ipv4),
        Mac::from_u64(crossed_mac).unwrap()
    );
    let _: () = conn.lpush(QUEUE, &crossed).unwrap();
    for p in handmade_malformed() {
        let _: () = conn.lpush(QUEUE, p).unwrap();
    }

    // What should happen, worked out from the queue and the generator alone.
    let owners: HashMap<(u32, u64), String> =
        (0..ROWS).map(device_key_and_name).chain([((d.ipv4, d.mac), "newer-owner".to_owned())]).collect();
    assert!(!owners.contains_key(&(d.ipv4, crossed_mac)) && !owners.contains_key(&(d.ipv4, d.mac ^ 1)));
    let queued: Vec<Vec<u8>> = conn.lrange(QUEUE, 0, -1).unwrap();
    let (mut hits, mut misses, mut malformed) = (HashMap::new(), 0, 0);
    for payload in &queued {
        match parse_json(payload) {
            Err(_) => malformed += 1,
            Ok(t) => match owners.get(&t.device_key()) {
                Some(name) => {
                    hits.insert(t.id.clone(), (t, name.clone()));
                }
                None => misses += 1,
            },
        }
    }
    assert!(hits.len() > 400 && misses > 50 && malformed > 60, "a poor mix: {} {misses} {malformed}", hits.len());

    let mut daemon = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("every task to be settled", Duration::from_secs(60), || {
        let queued: usize = conn.llen(QUEUE).unwrap();
        let dead: usize = conn.llen(format!("{QUEUE}:dead")).unwrap();
        queued == 0
            && dead == malformed
            && results(s.dir.path()).len() == hits.len()
            && tasks_in_processing(&mut conn, QUEUE) == 0
    });
    // The metrics tell the same story, in valid Prometheus text.
    let m = scrape(&s.config);
    assert_eq!(m["device_lookup_tasks_total{outcome=published}"], hits.len() as f64);
    assert_eq!(m["device_lookup_tasks_total{outcome=not_found}"], misses as f64);
    assert_eq!(m["device_lookup_tasks_total{outcome=dead}"], malformed as f64);
    assert_eq!(m["device_lookup_tasks_total{outcome=duplicate}"], 0.0);
    assert_eq!(m["device_lookup_in_flight{}"], 0.0);
    assert_eq!(m["device_lookup_publish_attempts_total{}"], hits.len() as f64);
    assert_eq!(m["device_lookup_dependency_failing{dependency=clickhouse}"], 0.0);
    let (status, body) = readyz(&s.config);
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_get(&format!("{}/healthz", http_base(&s.config))).unwrap();
    assert_eq!(status, 200);
    assert!(run_cli(&s.config, &["healthcheck"]).0.success(), "the container health check passes");

    daemon.sigterm();
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "exit {status:?}\n{}", daemon.log_text());
    assert_eq!(run_cli(&s.config, &["healthcheck"]).0.code(), Some(1), "no daemon, no health");

    // Logs: one JSON object per line, with a message and a level, and no secret.
    let log = daemon.log_text();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["msg"].is_string() && v["level"].is_string() && v["ts"].is_string(), "{line}");
    }
    assert!(log.lines().any(|l| l.contains("\"task_id\"")), "per-task records carry the task id");

    // Every hit published once, with the right content.
    let pastes = s.paste.pastes();
    assert_eq!(pastes.len(), hits.len(), "one paste per hit");
    let mut paste_urls = HashMap::new();
    for p in &pastes {
        let doc: serde_json::Value = serde_json::from_str(p["content"].as_str().unwrap()).unwrap();
        let id = doc["id"].as_str().unwrap();
        let (task, owner) = hits.get(id).unwrap_or_else(|| panic!("published a non-hit: {doc}"));
        assert_eq!(doc["username"], owner.as_str(), "{doc}");
        assert_eq!(doc["ipv4"], task.ipv4.to_string());
        assert_eq!(doc["mac"], task.mac.to_string(), "canonical mac");
        assert_eq!(p["name"], id, "api_paste_name is the task id");
        assert_eq!(p["format"], "json");
        assert_eq!(p["private"], "1");
        assert_eq!(p["expire"], "1M");
        paste_urls.insert(id.to_owned(), format!("{}/{}", s.paste.base, p["key"].as_str().unwrap()));
    }
    assert_eq!(hits.get("rebound").map(|(_, o)| o.as_str()), Some("newer-owner"));
    assert!(!hits.contains_key("crossed"), "crossed is a miss by the generator's own rows");

    // One results line per hit, carrying the URL the server issued.
    let lines = results(s.dir.path());
    let ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), lines.len(), "an id written twice");
    for l in &lines {
        let id = l["id"].as_str().unwrap();
        assert_eq!(l["url"].as_str(), paste_urls.get(id).map(String::as_str), "{l}");
        assert_eq!(l["username"], hits[id].1.as_str());
    }

    // Every malformed task dead-lettered with a reason.
    let dead: Vec<String> = conn.lrange(format!("{QUEUE}:dead"), 0, -1).unwrap();
    assert_eq!(dead.len(), malformed);
    for entry in &dead {
        let v: serde_json::Value = serde_json::from_str(entry).unwrap();
        assert!(v["payload"].is_string(), "{entry:.200}");
        assert!(!v["error"].as_str().unwrap().is_empty(), "{entry:.200}");
    }
    assert!(dead.iter().any(|e| e.contains("not valid UTF-8")));
    assert!(dead.iter().any(|e| e.contains("bytes, more than")));

    // Queue and processing hashes are empty; the consumer left cleanly.
    let queued: usize = conn.llen(QUEUE).unwrap();
    assert_eq!(queued, 0);
    assert_eq!(tasks_in_processing(&mut conn, QUEUE), 0);
    let consumers: usize = conn.scard(format!("{QUEUE}:consumers")).unwrap();
    assert_eq!(consumers, 0, "the consumer deregisters at shutdown");
    let log = daemon.log_text();
    assert!(log.contains(&format!("published={}", hits.len())), "{log}");
    assert!(!log.contains("test-key"), "the api_dev_key leaked into the log");
}

fn device_key_and_name(i: u64) -> ((u32, u64), String) {
    let d = device(SEED, i);
    ((d.ipv4, d.mac), d.username)
}

/// Tasks left in the processing hash of a consumer that died (no heartbeat)
/// are returned to the queue at start and processed, except those it had
/// settled (their bits set in the fetch's mask).
#[test]
fn dead_consumers_tasks_are_taken_again() {
    let s = Stack::start("");
    let (status, _, err) = run_cli(&s.config, &["seed", "--rows", "100", "--seed", "2"]);
    assert!(status.success(), "{err}");

    let mut conn = s.redis.conn();
    let ghost = format!("{QUEUE}:processing:ghost");
    let mut ids = HashSet::new();
    let mut payloads = Vec::new();
    for i in 0..40 {
        payloads.push(task_payload(2, &format!("g{i}"), i));
        // Tasks 0 and 9 of the first fetch were settled before it died.
        if i != 0 && i != 9 {
            ids.insert(format!("g{i}"));
        }
    }
    // Two fetches as the daemon writes them, packed by Redis's own MessagePack;
    // the first with a mask of settled tasks (bits 0 and 9).
    let pack = "redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({unpack(ARGV, 2)}))";
    let _: () =
        redis::cmd("EVAL").arg(pack).arg(1).arg(&ghost).arg("b7").arg(&payloads[..20]).query(&mut conn).unwrap();
    let _: () =
        redis::cmd("EVAL").arg(pack).arg(1).arg(&ghost).arg("b8").arg(&payloads[20..]).query(&mut conn).unwrap();
    let _: () = conn.hset(&ghost, "s7", &[0b0000_0001u8, 0b0000_0010][..]).unwrap();
    let _: () = conn.sadd(format!("{QUEUE}:consumers"), "ghost").unwrap();

    let mut daemon = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("the ghost's tasks to be published", Duration::from_secs(30), || {
        results(s.dir.path()).len() == ids.len()
    });
    let written: HashSet<String> = results(s.dir.path()).iter().map(|l| l["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(written, ids, "the unsettled tasks, and only those");
    assert!(!conn.exists::<_, bool>(&ghost).unwrap(), "the ghost's hash is gone, masks and all");
    let registered: bool = conn.sismember(format!("{QUEUE}:consumers"), "ghost").unwrap();
    assert!(!registered, "the ghost is forgotten");
    daemon.sigterm();
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

/// `[publisher.rate_limit]` spaces requests: over any stretch of time no more
/// than `burst + elapsed / interval` pastes arrive.
#[test]
fn rate_limit_spaces_publishing() {
    let s = Stack::start("[publisher.rate_limit]\nrequests = 25\nper = \"1s\"\nburst = 2\n");
    let interval_ms = 40.0;
    let (status, _, err) = run_cli(&s.config, &["seed", "--rows", "200", "--seed", "4"]);
    assert!(status.success(), "{err}");
    let (status, _, err) = run_cli(&s.config, &["enqueue", "--count", "30", "--hit-ratio", "1", "--seed", "4"]);
    assert!(status.success(), "{err}");

    let mut daemon = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("30 results", Duration::from_secs(30), || results(s.dir.path()).len() == 30);
    daemon.sigterm();
    assert!(daemon.wait(Duration::from_secs(30)).success());

    let mut times: Vec<f64> = s.paste.pastes().iter().map(|p| p["received_ms"].as_f64().unwrap()).collect();
    assert_eq!(times.len(), 30);
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    for i in 0..times.len() {
        for j in i + 1..times.len() {
            let allowed = 2.0 + (times[j] - times[i]) / interval_ms + 1.0; // +1: arrival jitter
            assert!(((j - i + 1) as f64) <= allowed, "{} pastes within {} ms", j - i + 1, times[j] - times[i]);
        }
    }
}

/// A ClickHouse user whose profile is `readonly = 1` may not change settings
/// in a query; the daemon sees that and does not ask for the block cache, so
/// its lookups still succeed. `check` names what it will ask for.
#[test]
fn a_readonly_clickhouse_user_still_finds_devices() {
    let s = Stack::start("");
    // Forty inserts, merged into one part at the end (lookups read a granule per
    // part), although the server's own merges of them are running by then.
    let (status, _, err) = run_cli(&s.config, &["seed", "--rows", "200", "--seed", "6", "--batch", "5"]);
    assert!(status.success() && err.contains("merged into 1 part(s)"), "{err}");
    let (status, out, err) = run_cli(&s.config, &["check"]);
    assert!(status.success() && out.contains("block cache asked for"), "{out}{err}");
    assert!(out.contains("200 rows in 1 active parts"), "{out}");

    set_key(&s.config, "clickhouse", "user = \"reader\"");
    let (status, out, err) = run_cli(&s.config, &["check"]);
    assert!(status.success() && out.contains("block cache not allowed"), "{out}{err}");
    let (status, _, err) = run_cli(&s.config, &["enqueue", "--count", "20", "--hit-ratio", "1", "--seed", "6"]);
    assert!(status.success(), "{err}");
    let mut daemon = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("20 results", Duration::from_secs(30), || results(s.dir.path()).len() == 20);
    daemon.sigterm();
    assert!(daemon.wait(Duration::from_secs(30)).success());
    assert!(daemon.log_text().contains("\"block_cache\":false"), "the plan is logged");
}

/// `clickhouse.lookup = "join"`: `seed` builds the in-memory copy and the view
/// that feeds it. A device inserted afterwards and a device bound again later
/// are found as the table has them, after a ClickHouse restart too (the server
/// reloads a `Join` table from its own files). A rebuild under a running
/// daemon settles nothing from the half-built copy.
#[test]
fn the_in_memory_copy_stays_current() {
    let mut s = Stack::start("");
    set_key(&s.config, "clickhouse", "lookup = \"join\"");
    let (status, _, err) = run_cli(&s.config, &["seed", "--rows", "300", "--seed", "8", "--batch", "100"]);
    assert!(status.success() && err.contains("built the in-memory copy `devices`.`users_join` from 300 rows"), "{err}");

    let d = device(8, 7);
    s.ch.query(&format!(
        "INSERT INTO devices.users VALUES ('late-owner', {}, {}, '2030-01-01 00:00:00'), ('newcomer', 167772161, 42, '2020-01-01 00:00:00')",
        d.ipv4, d.mac
    ));
    s.ch.restart();
    let (status, out, err) = run_cli(&s.config, &["check"]);
    assert!(status.success() && out.contains("lookups in memory, through `devices`.`users_join`"), "{out}{err}");

    let (status, _, err) = run_cli(&s.config, &["enqueue", "--count", "20", "--hit-ratio", "1", "--seed", "8"]);
    assert!(status.success(), "{err}");
    let mut conn = s.redis.conn();
    for task in [
        task_payload(8, "rebound", 7).as_str(),
        r#"{"id":"newcomer","ipv4":"10.0.0.1","mac":"00:00:00:00:00:2a"}"#,
        r#"{"id":"stranger","ipv4":"10.0.0.2","mac":"00:00:00:00:00:2a"}"#,
    ] {
        let _: () = conn.lpush(QUEUE, task).unwrap();
    }
    let mut daemon = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("22 results and the miss settled", Duration::from_secs(30), || {
        let queued: usize = conn.llen(QUEUE).unwrap();
        queued == 0 && results(s.dir.path()).len() == 22 && tasks_in_processing(&mut conn, QUEUE) == 0
    });

    // A rebuild while the daemon runs. From the feed's drop to the end of the
    // build the lookups fail: nothing is settled from a copy half filled.
    let m = scrape(&s.config);
    let not_found = m["device_lookup_tasks_total{outcome=not_found}"];
    s.ch.query("DROP TABLE devices.users_join_feed");
    let _: () = conn.lpush(QUEUE, task_payload(8, "during-rebuild", 9)).unwrap();
    wait_until("the daemon to see ClickHouse failing", Duration::from_secs(30), || {
        scrape(&s.config)["device_lookup_dependency_failing{dependency=clickhouse}"] == 1.0
    });
    let (status, _, err) = run_cli(&s.config, &["seed", "--rows", "0", "--no-optimize"]);
    assert!(status.success() && err.contains("from 302 rows"), "{err}");
    wait_until("the task looked up in the rebuilt copy", Duration::from_secs(60), || {
        results(s.dir.path()).iter().any(|l| l["id"] == "during-rebuild")
    });
    assert_eq!(scrape(&s.config)["device_lookup_tasks_total{outcome=not_found}"], not_found);

    daemon.sigterm();
    assert!(daemon.wait(Duration::from_secs(30)).success());
    let owners: HashMap<String, String> = results(s.dir.path())
        .iter()
        .map(|l| (l["id"].as_str().unwrap().to_owned(), l["username"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(owners.get("rebound").map(String::as_str), Some("late-owner"));
    assert_eq!(owners.get("newcomer").map(String::as_str), Some("newcomer"));
    assert!(!owners.contains_key("stranger"));
    assert!(daemon.log_text().contains("\"access\":\"Join\""), "the plan is logged");
}
