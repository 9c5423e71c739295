//! A dependency that accepts connections but fails every real request: the
//! backoff must still grow to its cap (it resets only when real work
//! succeeds, never on a connect alone), the warnings stay few, and work
//! resumes soon after the dependency heals.
//!
//! Each test sleeps for the length of the outage (20 s), not to synchronise.

mod support;

use std::time::{Duration, Instant};

use redis::Commands;
use support::fake_paste::{Answer, FakePaste};
use support::front::Front;
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const SEED: u64 = 51;
const ROWS: u64 = 1000;
const OUTAGE: Duration = Duration::from_secs(20);

/// Lines of the daemon's JSON log at `level` (slog's short name) that say `text`.
fn log_lines(d: &Daemon, level: &str, text: &str) -> usize {
    let level = format!("\"level\":\"{level}\"");
    d.log_text().lines().filter(|l| l.contains(text) && l.contains(&level)).count()
}

/// Waits until every task enqueued was published, and answers how long
/// that took.
fn drained(redis: &Redis, dir: &std::path::Path, hits: usize) -> Duration {
    let started = Instant::now();
    let mut conn = redis.conn();
    wait_until("every hit published", Duration::from_secs(60), || {
        let left: usize = conn.llen(QUEUE).unwrap();
        left == 0 && tasks_in_processing(&mut conn, QUEUE) == 0 && results(dir).len() >= hits
    });
    started.elapsed()
}

#[test]
fn clickhouse_that_answers_connects_but_drops_every_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let ch = ClickHouse::start(dir.path());
    let paste = PasteServer::start("test-key");
    // Lookups are the requests with the keys table's structure in the URL.
    let front = Front::start(ch.http_port, "keys_structure");
    let config = write_config(dir.path(), &redis, &ch, &paste.api_url(), "");
    assert!(run_cli(&config, &["seed", "--rows", &ROWS.to_string(), "--seed", &SEED.to_string()]).0.success());
    let (status, _, err) = run_cli(&config, &["enqueue", "--count", "100", "--hit-ratio", "1", "--seed", "3"]);
    assert!(status.success(), "{err}");
    let text = std::fs::read_to_string(&config).unwrap().replace(&ch.url(), &front.url());
    std::fs::write(&config, text).unwrap();

    let mut d = Daemon::start(&config, &dir.path().join("daemon.log"));
    wait_until("the first lookup dropped", Duration::from_secs(20), || front.dropped() >= 1);
    std::thread::sleep(OUTAGE);
    let (attempts, warnings, connects) =
        (front.dropped(), log_lines(&d, "WARN", "ClickHouse failed"), log_lines(&d, "INFO", "connected to ClickHouse"));
    front.heal();
    let resumed = drained(&redis, dir.path(), 100);
    d.sigterm();
    assert!(d.wait(Duration::from_secs(30)).success());
    eprintln!(
        "ClickHouse dropping lookups for {OUTAGE:?}: {attempts} lookups tried, {warnings} warnings, {connects} \
         connect lines at info; all published {resumed:?} after it healed"
    );
    assert!(attempts <= 14, "{attempts} lookups in {OUTAGE:?}: the backoff did not grow to its cap");
    assert!(warnings <= 4, "{warnings} warnings in {OUTAGE:?}");
    assert!(connects <= 2, "{connects} 'connected' lines at info");
    assert!(resumed < Duration::from_secs(10), "took {resumed:?} after healing (the backoff's cap is 4 s)");
}

#[test]
fn paste_service_that_resets_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let ch = ClickHouse::start(dir.path());
    let paste = FakePaste::start(|_, _| Answer::Reset);
    let config = write_config(dir.path(), &redis, &ch, &paste.api_url(), "concurrency = 4");
    // The shipped backoff (the harness's default is quicker, for other tests).
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("backoff_base = \"20ms\"", "backoff_base = \"200ms\"")
        .replace("backoff_max = \"500ms\"", "backoff_max = \"4s\"");
    std::fs::write(&config, text).unwrap();
    assert!(run_cli(&config, &["seed", "--rows", &ROWS.to_string(), "--seed", &SEED.to_string()]).0.success());
    let (status, _, err) = run_cli(&config, &["enqueue", "--count", "100", "--hit-ratio", "1", "--seed", "4"]);
    assert!(status.success(), "{err}");

    let mut d = Daemon::start(&config, &dir.path().join("daemon.log"));
    wait_until("the first request reset", Duration::from_secs(20), || !paste.requests().is_empty());
    std::thread::sleep(OUTAGE);
    let (attempts, warnings) = (paste.requests().len(), log_lines(&d, "WARN", "paste service failed"));
    paste.set(|_, _| Answer::Create);
    let resumed = drained(&redis, dir.path(), 100);
    d.sigterm();
    assert!(d.wait(Duration::from_secs(30)).success());
    eprintln!(
        "paste service resetting for {OUTAGE:?}: {attempts} requests, {warnings} warnings; all published \
         {resumed:?} after it healed"
    );
    // The first `concurrency` requests were on the wire together; after the
    // first failure one request at a time probes, as the backoff allows.
    assert!(attempts <= 4 + 12, "{attempts} requests in {OUTAGE:?}: the backoff did not grow to its cap");
    assert!(warnings <= 4, "{warnings} warnings in {OUTAGE:?}");
    assert!(resumed < Duration::from_secs(10), "took {resumed:?} after healing (the backoff's cap is 4 s)");
}
