//! The command line as operators meet it: exit statuses and the messages of a
//! bad configuration. No servers needed.

mod support;

use std::process::Command;

use support::BIN;

fn check_with(config: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["--config", path.to_str().unwrap(), "check"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn invalid_configuration_exits_2_naming_the_key() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        ("[redis]\nmode = \"queue\"\n", &[], "redis.mode"),
        ("[publisher]\nmax_attempts = 0\n", &[], "publisher.max_attempts"),
        ("[publisher.rate_limit]\nrequests = 20\nper = \"a day\"\n", &[], "publisher.rate_limit.per"),
        ("[clickhouse]\ntable = \"x; DROP TABLE y\"\n", &[], "clickhouse.table"),
        ("[redis]\nqueu = \"typo\"\n", &[], "queu"),
        ("[redis]\nurl = \n", &[], "line 2, column"),
        ("", &[("DEVICE_LOOKUP__REDIS__FETCH_BATCH", "many")], "DEVICE_LOOKUP__REDIS__FETCH_BATCH"),
        ("", &[("DEVICE_LOOKUP__HTTP__LISTEN", "nowhere")], "http.listen"),
    ];
    for (config, env, needle) in cases {
        let (code, stderr) = check_with(config, env);
        assert_eq!(code, 2, "{config:?} {env:?}: {stderr}");
        assert!(stderr.contains(needle), "{config:?}: {stderr:?} does not name {needle}");
    }
}

#[test]
fn missing_config_file_exits_2() {
    let out = Command::new(BIN).args(["--config", "/nonexistent/config.toml", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/config.toml"));
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BIN).args(["seed"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "seed without --rows");
    let out = Command::new(BIN).args(["frobnicate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "").unwrap();
    let out = Command::new(BIN)
        .args(["--config", path.to_str().unwrap(), "enqueue", "--count", "1", "--hit-ratio", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--hit-ratio"));
}

#[test]
fn unreachable_dependencies_exit_1_with_a_report() {
    let port = support::free_port();
    let config = format!(
        "[redis]\nurl = \"redis://127.0.0.1:{port}/0\"\nresponse_timeout = \"200ms\"\n[clickhouse]\nurl = \"http://127.0.0.1:{port}\"\ntimeout = \"200ms\"\n[publisher]\napi_dev_key = \"s3cret-key\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN).args(["--config", path.to_str().unwrap(), "check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("redis: FAILED") && stdout.contains("clickhouse: FAILED"), "{stdout}");
    assert!(!stdout.contains("s3cret-key"), "check printed the api_dev_key");
}

#[test]
fn config_path_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("elsewhere.toml");
    std::fs::write(&path, "[redis]\nmode = \"bogus\"\n").unwrap();
    let out = Command::new(BIN).arg("check").env("DEVICE_LOOKUP_CONFIG", &path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis.mode"));
}
