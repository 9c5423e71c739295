//! A real Prometheus (Debian's) scrapes a running daemon: a PromQL query sees
//! what the daemon published, and every expression of the alert rules
//! (deploy/prometheus/rules.yml) and of the dashboard
//! (deploy/grafana/device-lookup.json) is accepted and evaluated by that
//! engine against the daemon's real metrics.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

const SEED: u64 = 81;

struct Prometheus {
    base: String,
    child: Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes `target` (host:port) every 500 ms as job "device-lookup".
    fn start(dir: &Path, target: &str) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 500ms, evaluation_interval: 500ms}}\n\
                 scrape_configs:\n  - job_name: device-lookup\n    static_configs: [{{targets: ['{target}']}}]\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus: run `bash scripts/install-deps.sh`, which installs it");
        let p = Prometheus { base: format!("http://127.0.0.1:{port}"), child };
        wait_until("Prometheus to be ready", Duration::from_secs(30), || {
            http_get(&format!("{}/-/ready", p.base)).map(|(s, _)| s == 200).unwrap_or(false)
        });
        p
    }

    /// An instant query: (status, the result as JSON).
    fn query(&self, expr: &str) -> (String, serde_json::Value) {
        let q: String = form_urlencoded::Serializer::new(String::new()).append_pair("query", expr).finish();
        let (_, body) = http_get(&format!("{}/api/v1/query?{q}", self.base)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{expr}: {e}: {body}"));
        (v["status"].as_str().unwrap_or("").to_owned(), v)
    }
}

/// The PromQL expressions of the rules file and of the dashboard.
fn expressions() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let rules = std::fs::read_to_string(root.join("prometheus/rules.yml")).unwrap();
    // `expr: ...` on one line, or folded (`expr: >`) over the lines below.
    let mut out = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else { continue };
        let rest = rest.trim();
        if rest == ">" {
            let mut folded = Vec::new();
            while let Some(next) = lines.peek() {
                if next.trim_start().contains(": ") || next.trim().is_empty() {
                    break;
                }
                folded.push(next.trim().to_owned());
                lines.next();
            }
            out.push(folded.join(" "));
        } else {
            out.push(rest.to_owned());
        }
    }
    assert_eq!(out.len(), 6, "every rule's expression read: {out:?}");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("grafana/device-lookup.json")).unwrap()).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            out.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    out
}

#[test]
fn prometheus_scrapes_the_daemon_and_evaluates_every_rule_and_panel() {
    let s = Stack::start("");
    assert!(run_cli(&s.config, &["seed", "--rows", "300", "--seed", &SEED.to_string()]).0.success());
    let (status, _, err) = run_cli(&s.config, &["enqueue", "--count", "120", "--hit-ratio", "1", "--seed", "2"]);
    assert!(status.success(), "{err}");
    let target = http_base(&s.config).trim_start_matches("http://").to_owned();
    let prom = Prometheus::start(s.dir.path(), &target);
    let mut d = Daemon::start(&s.config, &s.dir.path().join("daemon.log"));
    wait_until("the tasks published", Duration::from_secs(30), || results(s.dir.path()).len() == 120);

    let published = r#"sum(device_lookup_tasks_total{job="device-lookup", outcome="published"})"#;
    wait_until("Prometheus to see 120 published", Duration::from_secs(30), || {
        let (status, v) = prom.query(published);
        status == "success" && v["data"]["result"][0]["value"][1] == "120"
    });
    let (_, up) = prom.query(r#"up{job="device-lookup"}"#);
    assert_eq!(up["data"]["result"][0]["value"][1], "1");

    for expr in expressions() {
        let (status, v) = prom.query(&expr);
        assert_eq!(status, "success", "{expr}: {v}");
    }
    d.sigterm();
    assert!(d.wait(Duration::from_secs(30)).success());
}
