//! Fencing: a replica that stalls beyond its lease (SIGSTOP, as `docker
//! pause` or a frozen VM would stop it) while it holds tasks, then resumes,
//! acts only on what it can prove it still owns. Both queue modes.
//!
//! The stall lasts until the other replica has visibly taken the stalled
//! one's tasks over (a condition with a deadline, not a length of time).

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use redis::Commands;
use support::fake_paste::{Answer, FakePaste};
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const SEED: u64 = 41;
const ROWS: u64 = 2000;
/// Requests in flight per replica: the bound on pastes made twice.
const CONCURRENCY: usize = 8;

/// Tasks the consumer `name` holds in Redis now.
fn held_by(conn: &mut redis::Connection, mode: &str, name: &str) -> usize {
    if mode == "list" {
        tasks_held_by(conn, QUEUE, name)
    } else {
        let reply: redis::Value = redis::cmd("XPENDING")
            .arg(QUEUE)
            .arg("device-lookup")
            .arg("-")
            .arg("+")
            .arg(100_000)
            .arg(name)
            .query(conn)
            .unwrap();
        match reply {
            redis::Value::Array(rows) => rows.len(),
            _ => 0,
        }
    }
}

fn queue_len(conn: &mut redis::Connection, mode: &str) -> usize {
    if mode == "list" {
        conn.llen(QUEUE).unwrap()
    } else {
        conn.xlen(QUEUE).unwrap()
    }
}

fn ids_of(files: &[std::path::PathBuf]) -> Vec<String> {
    files.iter().flat_map(|f| lines_of(f)).map(|l| l["id"].as_str().unwrap().to_owned()).collect()
}

fn a_replica_stalls_beyond_its_lease(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let ch = ClickHouse::start(dir.path());
    // A sink 50 ms away, so that several requests are on the wire at once.
    let paste = FakePaste::start(|_, _| Answer::Slow(Duration::from_millis(50)));
    let extra = format!("concurrency = {CONCURRENCY}\n[publisher.rate_limit]\nrequests = 100\nper = \"1s\"");
    let config = write_config(dir.path(), &redis, &ch, &paste.api_url(), &extra);
    set_key(&config, "redis", &format!("mode = \"{mode}\""));
    assert!(run_cli(&config, &["seed", "--rows", &ROWS.to_string(), "--seed", &SEED.to_string()]).0.success());
    let (status, _, err) = run_cli(&config, &["enqueue", "--count", "1500", "--hit-ratio", "1", "--seed", "6"]);
    assert!(status.success(), "{err}");

    let mut replicas = Vec::new();
    let mut files = Vec::new();
    for n in 0..2 {
        let (cfg, results) = replica_config(dir.path(), &config, n);
        set_key(&cfg, "redis", &format!("consumer = \"replica-{n}\""));
        replicas.push((Daemon::start(&cfg, &dir.path().join(format!("daemon-{n}.log"))), cfg));
        files.push(results);
    }
    let mut conn = redis.conn();
    wait_until("replica 0 at work, holding tasks", Duration::from_secs(30), || {
        lines_of(&files[0]).len() >= 30 && held_by(&mut conn, mode, "replica-0") >= 200
    });
    replicas[0].0.pause();
    let held = held_by(&mut conn, mode, "replica-0");
    let stalled_at = lines_of(&files[0]).len();
    // Stalled until the other replica has taken over everything it held.
    wait_until("replica 1 to take the stalled replica's tasks over", Duration::from_secs(30), || {
        held_by(&mut conn, mode, "replica-0") == 0 && lines_of(&files[1]).len() > 100
    });
    replicas[0].0.resume();

    wait_until("every task published once", Duration::from_secs(90), || {
        queue_len(&mut conn, mode) == 0
            && held_by(&mut conn, mode, "replica-0") == 0
            && held_by(&mut conn, mode, "replica-1") == 0
            && ids_of(&files).iter().collect::<HashSet<_>>().len() >= 1500
    });
    // What the other replica took over, the resumed one drops: as lost while
    // the other still has it in flight, as a duplicate once the other has
    // written it. The other may finish everything before the resumed one
    // has even looked, so this waits for it to look.
    let (mut lost_lease, mut duplicate) = (0.0, 0.0);
    wait_until("the resumed replica to drop what it lost", Duration::from_secs(30), || {
        let metrics = scrape(&replicas[0].1);
        lost_lease = metrics["device_lookup_tasks_total{outcome=lost_lease}"];
        duplicate = metrics["device_lookup_tasks_total{outcome=duplicate}"];
        lost_lease + duplicate > 0.0
    });
    for (d, _) in replicas.iter_mut() {
        d.sigterm();
        assert!(d.wait(Duration::from_secs(30)).success(), "{}", d.log_text());
    }

    let ids = ids_of(&files);
    let mut lines: HashMap<&String, usize> = HashMap::new();
    for id in &ids {
        *lines.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = lines.iter().filter(|(_, n)| **n > 1).map(|(id, _)| id).collect();
    assert!(
        twice.is_empty(),
        "{} ids with more than one line, among them {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
    assert_eq!(lines.len(), 1500, "every task has its line");
    let pastes = paste.created_ids();
    let pasted_twice = pastes.len() - pastes.iter().collect::<HashSet<_>>().len();
    assert!(pasted_twice <= CONCURRENCY, "{pasted_twice} pastes made twice, more than were on the wire");
    eprintln!(
        "{mode}: replica 0 held {held} tasks and had written {stalled_at} lines when stopped; it dropped \
         {lost_lease} taken over and {duplicate} already written by the other; {pasted_twice} pastes made twice"
    );
}

#[test]
fn a_replica_stalled_beyond_its_lease_on_a_list() {
    a_replica_stalls_beyond_its_lease("list");
}

#[test]
fn a_replica_stalled_beyond_its_lease_on_a_stream() {
    a_replica_stalls_beyond_its_lease("stream");
}
