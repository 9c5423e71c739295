//! `publisher.concurrency = "adaptive"` against the bundled paste server
//! playing a far, fragile service (`--delay`, `--knee`: slower beyond 8
//! requests in flight, 503 from 16 on), with a maximum of 24. Correctness
//! only (rates are measured by benches/far_sink.sh): every task published
//! once, never more than the maximum in flight, and the window the daemon
//! reports stays within its bounds.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn adaptive_concurrency_publishes_everything_within_its_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let ch = ClickHouse::start(dir.path());
    let paste = PasteServer::start_with("test-key", &["--delay", "20ms", "--knee", "8"]);
    let config = write_config(
        dir.path(),
        &redis,
        &ch,
        &paste.api_url(),
        "concurrency = \"adaptive\"\nmax_concurrency = 24\nmax_attempts = 1000",
    );
    let (status, _, err) = run_cli(&config, &["seed", "--rows", "2000", "--seed", "12"]);
    assert!(status.success(), "{err}");
    let (status, _, err) = run_cli(&config, &["enqueue", "--count", "600", "--hit-ratio", "1", "--seed", "12"]);
    assert!(status.success(), "{err}");

    let mut daemon = Daemon::start(&config, &dir.path().join("daemon.log"));
    let mut windows = Vec::new();
    wait_until("600 results", Duration::from_secs(120), || {
        // Until the daemon listens, there is nothing to read.
        if let Ok((200, body)) = http_get(&format!("{}/metrics", http_base(&config))) {
            let line = body.lines().find_map(|l| l.strip_prefix("device_lookup_publish_concurrency "));
            windows.extend(line.and_then(|v| v.trim().parse::<f64>().ok()));
        }
        results(dir.path()).len() >= 600
    });
    daemon.sigterm();
    assert!(daemon.wait(Duration::from_secs(30)).success());

    let lines = results(dir.path());
    let mut ids: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((lines.len(), ids.len()), (600, 600), "every task once");
    let stats = paste.stats();
    assert!(stats["max_in_flight"].as_u64().unwrap() <= 24, "{stats}");
    assert_eq!(stats["served"].as_u64().unwrap(), 600, "{stats}");
    assert!(!windows.is_empty() && windows.iter().all(|w| (1.0..=24.0).contains(w)), "{windows:?}");
}
