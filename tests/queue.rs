//! The list-mode queue against a real Redis, below the actors: what a fetch
//! moves into the processing hash, what settling records and removes, what a
//! reconcile and a release put back, and that the idle wait leaves the queue
//! as it was.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use device_lookup::config::QueueMode;
use device_lookup::config::Settings;
use device_lookup::lease::Fenced;
use device_lookup::messages::{Delivery, FencePurpose, Outcome, Settled};
use device_lookup::queue::Holdings;
use device_lookup::queue::{Check, Queue};
use redis::Commands;
use support::*;

const QUEUE: &str = "device-lookup:tasks";
const CONSUMER: &str = "unit";

fn settings(redis: &Redis) -> Settings {
    let text = format!("[redis]\nurl = \"{}\"\nconsumer = \"{CONSUMER}\"\n", redis.url());
    Settings::from_toml(&text, Path::new("test.toml"), Vec::new()).unwrap()
}

fn payload(i: usize) -> String {
    format!(r#"{{"id":"t{i}","ipv4":"10.0.0.1","mac":"aa:bb:cc:dd:ee:ff"}}"#)
}

fn payloads(items: &[Delivery]) -> Vec<String> {
    items
        .iter()
        .map(|d| match &d.payload {
            device_lookup::messages::Payload::Json(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("list mode gives JSON, got {other:?}"),
        })
        .collect()
}

fn not_found(d: &Delivery) -> Settled {
    Settled { delivery: d.clone(), task_id: Some("t".into()), outcome: Outcome::NotFound }
}

/// The payloads of fetch entry `field` in the processing hash, decoded by
/// Redis's own MessagePack, as the scripts that put tasks back decode them.
fn fetch_entry(conn: &mut redis::Connection, field: &str) -> Vec<String> {
    let script = "return cmsgpack.unpack(redis.call('HGET', KEYS[1], ARGV[1]))";
    redis::cmd("EVAL").arg(script).arg(1).arg(format!("{QUEUE}:processing:{CONSUMER}")).arg(field).query(conn).unwrap()
}

fn field(d: &Delivery) -> String {
    String::from_utf8(d.receipt.key().to_vec()).unwrap()
}

#[actix_rt::test]
async fn fetch_settle_reconcile_and_the_idle_wait() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&redis);
    let processing = format!("{QUEUE}:processing:{CONSUMER}");
    let mut conn = redis.conn();
    for i in 0..10 {
        let _: () = conn.lpush(QUEUE, payload(i)).unwrap();
    }
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();
    let mut holdings = Holdings::new(QueueMode::List);

    // First in, first out; the fetch is one entry of the processing hash.
    let first = q.fetch(4).await.unwrap();
    holdings.took(&first);
    assert_eq!(payloads(&first), (0..4).map(payload).collect::<Vec<_>>());
    assert_eq!(conn.hkeys::<_, Vec<String>>(&processing).unwrap(), vec![field(&first[0])]);
    assert_eq!(fetch_entry(&mut conn, &field(&first[0])), payloads(&first));
    assert_eq!(conn.llen::<_, usize>(QUEUE).unwrap(), 6);

    // Settling part of a fetch records which tasks are settled next to it.
    let some = [not_found(&first[0]), not_found(&first[1])];
    q.run(q.settle_pipeline(&some, &holdings)).await.unwrap();
    holdings.settled(&some);
    assert_eq!(conn.hlen::<_, usize>(&processing).unwrap(), 2, "the fetch and its mask");

    // A fetch whose reply was lost: a reconcile puts back the fetches we do
    // not hold, first in line, oldest first; not the one we hold.
    let lost = q.fetch(2).await.unwrap();
    let ours: HashMap<Bytes, usize> = [(first[2].receipt.key(), 2)].into_iter().collect();
    let (returned, _) = q.reconcile(&ours).await.unwrap();
    assert_eq!(returned, 2);
    let next = q.fetch(2).await.unwrap();
    holdings.took(&next);
    assert_eq!(payloads(&next), payloads(&lost));
    assert_ne!(field(&next[0]), field(&lost[0]), "numbers are never given twice, even to tasks that came back");

    // The last task of a fetch settled removes it, with its mask.
    let rest = [not_found(&first[2]), not_found(&first[3]), not_found(&next[0])];
    q.run(q.settle_pipeline(&rest, &holdings)).await.unwrap();
    holdings.settled(&rest);
    let mut keys: Vec<String> = conn.hkeys(&processing).unwrap();
    keys.sort();
    let n = &field(&next[0])[1..];
    assert_eq!(keys, vec![format!("b{n}"), format!("s{n}")], "only the second fetch, partly settled, is left");

    // The idle wait: with tasks queued it takes them; on an empty queue it
    // times out and changes nothing.
    let got = q.fetch_blocking(100, Duration::from_millis(200)).await.unwrap();
    assert_eq!(payloads(&got), (6..10).map(payload).collect::<Vec<_>>());
    let none = q.fetch_blocking(100, Duration::from_millis(200)).await.unwrap();
    assert!(none.is_empty());
    assert_eq!(conn.llen::<_, usize>(QUEUE).unwrap(), 0);

    // A clean release returns every task not settled (not next[0], settled
    // above), oldest first in line.
    assert_eq!(q.release().await.unwrap(), 5);
    let order: Vec<String> = conn.lrange(QUEUE, 0, -1).unwrap();
    let mut expected: Vec<String> = (5..10).map(payload).collect();
    expected.reverse();
    assert_eq!(order, expected, "taken from the right: the oldest is last");
    assert_eq!(conn.hlen::<_, usize>(&processing).unwrap(), 0);
    let _: () = conn.del(QUEUE).unwrap();

    // The largest fetch the configuration allows, in one call and one entry.
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.lpush(QUEUE, payload(i)).ignore();
    }
    let _: () = pipe.query(&mut conn).unwrap();
    let all = q.fetch(10_000).await.unwrap();
    assert_eq!(all.len(), 10_000);
    assert_eq!(fetch_entry(&mut conn, &field(&all[0])), payloads(&all));
}

/// The id record through a task's life: a fresh id is claimed; a published
/// one is a duplicate; one claimed by another consumer is theirs; one we
/// claimed before (a check repeated after a reconnect) stays ours, renewed.
/// Publishing replaces our claim with the URL for `dedup_ttl`; settling
/// otherwise drops our claim, and never a record that is not our claim.
#[actix_rt::test]
async fn the_id_record_from_claim_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&redis);
    let mut conn = redis.conn();
    let record = |id: &str| format!("{QUEUE}:id:{id}");
    let _: () = conn.set(record("published"), "done:http://paste/1").unwrap();
    let _: () = conn.set(record("theirs"), "claim:other-consumer").unwrap();
    let _: () = conn.set(record("ours-before"), format!("claim:{CONSUMER}")).unwrap();
    // Write records: our own results file's (its line was never written:
    // intake starts after the file's lines are recorded) and another's.
    let _: () = conn.set(record("our-file"), "write:file-a").unwrap();
    let _: () = conn.set(record("their-file"), "write:file-b").unwrap();
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();

    let ids: Vec<String> =
        ["fresh", "published", "theirs", "ours-before", "miss", "our-file", "their-file"].map(String::from).to_vec();
    let checks = q.check(&ids, "file-a").await.unwrap();
    assert_eq!(
        checks,
        vec![Check::Mine, Check::Published, Check::Elsewhere, Check::Mine, Check::Mine, Check::Mine, Check::Elsewhere]
    );
    let taken: String = conn.get(record("our-file")).unwrap();
    assert_eq!(taken, format!("claim:{CONSUMER}"));

    let owner: String = conn.get(record("fresh")).unwrap();
    assert_eq!(owner, format!("claim:{CONSUMER}"));
    let theirs: String = conn.get(record("theirs")).unwrap();
    assert_eq!(theirs, "claim:other-consumer", "another consumer's claim is left alone");
    let ttl: i64 = conn.pttl(record("ours-before")).unwrap();
    assert!(ttl > 0, "our earlier claim now expires with the lease (pttl {ttl})");

    // While we hold "miss", our lease runs out and another consumer publishes it.
    let _: () = conn.set(record("miss"), "done:http://paste/other").unwrap();
    let settled = |id: &str, outcome: Outcome| Settled {
        delivery: Delivery::from_list(1, 0, Bytes::from_static(b"{}")),
        task_id: Some(id.to_owned()),
        outcome,
    };
    let batch = [
        settled("fresh", Outcome::Published { url: "http://paste/2".into() }),
        settled("published", Outcome::Duplicate),
        settled("ours-before", Outcome::NotFound),
        settled("miss", Outcome::NotFound),
    ];
    q.run(q.settle_pipeline(&batch, &Holdings::new(QueueMode::List))).await.unwrap();
    let done: String = conn.get(record("fresh")).unwrap();
    assert_eq!(done, "done:http://paste/2");
    let ttl: i64 = conn.ttl(record("fresh")).unwrap();
    assert!(ttl > 3600, "a done record is kept for dedup_ttl (ttl {ttl})");
    let kept: String = conn.get(record("published")).unwrap();
    assert_eq!(kept, "done:http://paste/1", "a duplicate leaves the record alone");
    assert!(!conn.exists::<_, bool>(record("ours-before")).unwrap(), "our claim is dropped");
    let other: String = conn.get(record("miss")).unwrap();
    assert_eq!(other, "done:http://paste/other", "a record that is no longer our claim is never dropped");

    // The heartbeat renews our claims only.
    let _: () = conn.set(record("claimed"), format!("claim:{CONSUMER}")).unwrap();
    q.heartbeat(vec!["claimed".into(), "published".into(), "theirs".into()], Vec::new(), 0).await.unwrap();
    assert!(conn.pttl::<_, i64>(record("claimed")).unwrap() > 0);
    assert_eq!(conn.pttl::<_, i64>(record("theirs")).unwrap(), -1, "not ours: untouched");
    assert_eq!(conn.pttl::<_, i64>(record("published")).unwrap(), -1, "a done record keeps its own expiry");
}

/// The fence against a real Redis, one row per case: whether we still hold
/// the task (list mode: its fetch is in our processing hash), what the id's
/// record says, what the fence is for -> the answer, and the record after.
#[actix_rt::test]
async fn the_fence_decides_from_holding_and_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let s = settings(&redis);
    let mut conn = redis.conn();
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();
    let _: () = conn.lpush(QUEUE, payload(1)).unwrap();
    let held = q.fetch(10).await.unwrap()[0].receipt.key();
    let gone = Bytes::from_static(b"b999");
    let mine = format!("claim:{CONSUMER}");
    use device_lookup::lease::Fenced::*;
    use device_lookup::messages::FencePurpose::{Publish, Write};
    // (id, token, record before, purpose, answer, record after)
    type Row<'a> = (&'a str, &'a Bytes, Option<&'a str>, FencePurpose, Fenced, Option<&'a str>);
    let rows: &[Row<'_>] = &[
        ("a", &held, Some(&mine), Publish, Keep, Some(&mine)),
        ("b", &held, None, Publish, Keep, Some(&mine)),
        ("c", &held, Some("done:http://p/1"), Publish, Duplicate, Some("done:http://p/1")),
        ("d", &held, Some("claim:other"), Publish, Elsewhere, Some("claim:other")),
        ("e", &gone, None, Publish, Lost, None),
        ("f", &gone, Some("claim:other"), Publish, Lost, Some("claim:other")),
        ("g", &gone, Some(&mine), Publish, Keep, Some(&mine)),
        ("h", &held, Some(&mine), Write, Keep, Some("write:file-a")),
        ("i", &gone, Some("write:file-a"), Write, Keep, Some("write:file-a")),
        ("j", &held, Some("write:file-b"), Write, Elsewhere, Some("write:file-b")),
        ("k", &gone, Some("done:http://p/2"), Write, Lost, Some("done:http://p/2")),
        ("l", &gone, Some(&mine), Write, Keep, Some("write:file-a")),
        ("m", &held, Some("write:file-a"), Publish, Keep, Some("write:file-a")),
    ];
    for (id, token, before, purpose, want, after) in rows {
        let key = format!("{QUEUE}:id:{id}");
        if let Some(v) = before {
            let _: () = conn.pset_ex(&key, v, 60_000).unwrap();
        }
        let got = q.fence(&[(id.to_string(), (*token).clone())], *purpose, "file-a").await.unwrap();
        assert_eq!(got, vec![*want], "row {id}");
        let now: Option<String> = conn.get(&key).unwrap();
        assert_eq!(now.as_deref(), *after, "row {id}: the record after");
        if *want == Keep {
            assert!(conn.pttl::<_, i64>(&key).unwrap() > 0, "row {id}: a kept record expires");
        }
    }
    // A write record is kept for write_grace, not the lease.
    let grace: i64 = conn.pttl(format!("{QUEUE}:id:h")).unwrap();
    assert!(grace > s.redis.lease.as_millis() as i64, "pttl {grace}");
}

/// Stream mode: an entry another consumer claimed is ours no more. The
/// heartbeat says so and leaves it with them (it renews only what is still
/// ours), and the fence drops it.
#[actix_rt::test]
async fn a_stream_entry_claimed_by_another_is_lost_to_us() {
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), false);
    let text = format!("[redis]\nurl = \"{}\"\nconsumer = \"{CONSUMER}\"\nmode = \"stream\"\n", redis.url());
    let s = Settings::from_toml(&text, Path::new("test.toml"), Vec::new()).unwrap();
    let mut conn = redis.conn();
    let q = Queue::connect(&s.redis, CONSUMER).await.unwrap();
    for i in 0..2 {
        let _: String = conn.xadd(QUEUE, "*", &[("id", format!("t{i}")), ("ipv4", "10.0.0.1".into())]).unwrap();
    }
    let taken = q.fetch(10).await.unwrap();
    let (kept, stolen) = (taken[0].receipt.key(), taken[1].receipt.key());
    let stolen_id = String::from_utf8(stolen.to_vec()).unwrap();
    // Another consumer claims the second entry (as after our lease ran out).
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(QUEUE)
        .arg("device-lookup")
        .arg("other")
        .arg(0)
        .arg(&stolen_id)
        .query(&mut conn)
        .unwrap();

    let beat = q.heartbeat(Vec::new(), vec![kept.clone(), stolen.clone()], 0).await.unwrap();
    assert_eq!(beat.lost, vec![stolen.clone()]);
    let owner: redis::Value = redis::cmd("XPENDING")
        .arg(QUEUE)
        .arg("device-lookup")
        .arg(&stolen_id)
        .arg(&stolen_id)
        .arg(1)
        .query(&mut conn)
        .unwrap();
    assert!(format!("{owner:?}").contains("other"), "the heartbeat took nothing back: {owner:?}");

    let got = q
        .fence(&[("t0".into(), kept), ("t1".into(), stolen)], device_lookup::messages::FencePurpose::Publish, "f")
        .await
        .unwrap();
    assert_eq!(got, vec![device_lookup::lease::Fenced::Keep, device_lookup::lease::Fenced::Lost]);
}
