//! The daemon's SQL on a current ClickHouse. No current server installs on
//! this machine; the in-process engine of PyPI `chdb-core` (installed by
//! scripts/install-deps.sh) runs the statements exactly as the daemon builds
//! them, with an `IPv4` column (tests/support/current_clickhouse.py says what
//! it must change: the keys are a table, the answer TSV). The tests' 18.16
//! server runs the same statements with `UInt32` everywhere else.

mod support;

use device_lookup::db::{join_build_statements, lookup_query, table_statement, Access};
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn lookups_and_the_copy_work_on_a_current_server() {
    let spec = serde_json::json!({
        "table": table_statement("devices", "users", "IPv4"),
        "join_build": join_build_statements("devices", "users", "IPv4"),
        "queries": {
            "table": lookup_query("devices", "users", Access::MergeTree),
            "copy": lookup_query("devices", "users", Access::Join),
        },
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/current_clickhouse.py");
    let mut child = Command::new(support::third_party::tool("chdb/bin/python"))
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    let major: u32 = v["version"].as_str().unwrap().split('.').next().unwrap().parse().unwrap();
    assert!(major >= 24, "not a current server: {}", v["version"]);
    // While the copy is being built the copy's lookup is refused (throwIf),
    // never answered; the table's answers.
    let refused = v["building"]["copy"]["error"].as_str().unwrap_or_default();
    assert!(refused.contains("throwIf"), "{}", v["building"]["copy"]);
    assert_eq!(v["building"]["table"], serde_json::json!([[167772161u32, 1, "anna"]]));
    // Complete: both see the later bindings; neither the crossed pair nor the miss.
    let want = serde_json::json!([[167772161u32, 1, "anna-after"], [167772163u32, 3, "carl"]]);
    assert_eq!(v["complete"]["table"], want);
    assert_eq!(v["complete"]["copy"], want);
}
