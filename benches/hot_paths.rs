//! Micro-benchmarks of the per-task hot paths: parsing and normalising a task,
//! serialising the published document and its pastebin form, encoding a lookup batch and decoding
//! its answer, and classifying a paste service answer. Run with `cargo bench --bench hot_paths`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use device_lookup::db::{decode_rows, encode_keys};
use device_lookup::gen::{device, spell_mac, Rng};
use device_lookup::sink::verdict::{classify_pastebin, PastebinForm};
use device_lookup::task::{parse_json, Document, Mac};

fn payloads(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(1);
    (0..n as u64)
        .map(|i| {
            let d = device(1, i);
            let mac = spell_mac(&mut rng, Mac::from_u64(d.mac).unwrap());
            format!(r#"{{"id":"t1-{i}","ipv4":"{}","mac":"{mac}"}}"#, std::net::Ipv4Addr::from(d.ipv4)).into_bytes()
        })
        .collect()
}

fn parsing(c: &mut Criterion) {
    let input = payloads(1000);
    let mut g = c.benchmark_group("task");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("parse_json x1000", |b| {
        b.iter(|| {
            for p in &input {
                black_box(parse_json(black_box(p)).unwrap());
            }
        })
    });
    let tasks: Vec<_> = input.iter().map(|p| parse_json(p).unwrap()).collect();
    g.bench_function("document_json x1000", |b| {
        b.iter(|| {
            for t in &tasks {
                black_box(Document::new(t, "anna.kowalski42").to_json());
            }
        })
    });
    let form = PastebinForm::new([
        ("api_dev_key", "0123456789abcdef0123456789abcdef"),
        ("api_option", "paste"),
        ("api_paste_format", "json"),
        ("api_paste_private", "1"),
        ("api_paste_expire_date", "1M"),
    ]);
    let documents: Vec<_> = tasks.iter().map(|t| (Document::new(t, "anna.kowalski42").to_json(), &t.id)).collect();
    g.bench_function("pastebin_form x1000", |b| {
        b.iter(|| {
            for (doc, id) in &documents {
                black_box(form.body(black_box(doc), id));
            }
        })
    });
    g.finish();
}

fn lookup_encoding(c: &mut Criterion) {
    let keys: Vec<(u32, u64)> = (0..1000).map(|i| device(1, i)).map(|d| (d.ipv4, d.mac)).collect();
    let mut answer = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        answer.extend(encode_keys(&[*k]));
        let name = format!("user.name{i}");
        answer.push(name.len() as u8);
        answer.extend_from_slice(name.as_bytes());
    }
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(keys.len() as u64));
    g.bench_function("encode_keys x1000", |b| b.iter(|| black_box(encode_keys(black_box(&keys)))));
    g.bench_function("decode_rows x1000", |b| b.iter(|| black_box(decode_rows(black_box(&answer)).unwrap())));
    g.finish();
}

fn classification(c: &mut Criterion) {
    let answers: [(u16, &[u8]); 4] = [
        (200, b"https://pastebin.com/UIFdu235s"),
        (200, b"Bad API request, invalid api_dev_key"),
        (422, b"Post limit, maximum pastes per 24h reached"),
        (502, b"<html><body>Bad Gateway</body></html>"),
    ];
    c.bench_function("classify_pastebin x4", |b| {
        b.iter_batched(
            || answers,
            |answers| {
                for (status, body) in answers {
                    black_box(classify_pastebin(status, None, body));
                }
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, parsing, lookup_encoding, classification);
criterion_main!(benches);
