//! Fuzzes task parsing: any bytes a producer can push must either parse into
//! a task whose fields are normalised, or be refused with a short reason;
//! never panic, never allocate without bound.

#![no_main]

use device_lookup::task::{parse_fields, parse_json, Document, Mac, MAX_ID_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_json(data) {
        Ok(task) => {
            assert!(!task.id.is_empty() && task.id.len() <= MAX_ID_BYTES);
            assert!(task.mac.as_u64() <= Mac::MAX);
            // The canonical MAC parses back to itself; the document is JSON.
            assert_eq!(task.mac.to_string().parse::<Mac>(), Ok(task.mac));
            let doc: serde_json::Value = serde_json::from_str(&Document::new(&task, "user").to_json()).unwrap();
            assert_eq!(doc["id"], task.id.as_str());
            assert_eq!(doc["mac"], task.mac.to_string().as_str());
        }
        Err(e) => assert!(e.to_string().len() < 400, "reason too long: {e}"),
    }
    // The same bytes as stream-mode fields, split at the first two NULs.
    let mut parts = data.splitn(3, |&b| b == 0);
    let (id, ipv4, mac) = (parts.next().unwrap_or(b""), parts.next().unwrap_or(b""), parts.next().unwrap_or(b""));
    let fields: Vec<(&[u8], &[u8])> = vec![(b"id", id), (b"ipv4", ipv4), (b"mac", mac)];
    if let Ok(task) = parse_fields(fields) {
        assert_eq!(task.ipv4.to_string().as_bytes(), ipv4);
    }
});

