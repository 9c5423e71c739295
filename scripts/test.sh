#!/usr/bin/env bash
# The test suite: unit tests, integration tests against real Redis and
# ClickHouse (each test starts its own on free ports), one pass of every
# benchmark in test mode, the linters of the Dockerfiles and compose files,
# and the containers built and run in a real engine (scripts/containers.sh:
# where none can start it says so and skips, except in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/lint.sh
bash scripts/containers.sh
# Every benchmark once, in test mode (they compile and run), then the tests,
# so that the run closes with the test runner's summary.
cargo test --locked --benches
# The table-size benchmark once, on small tables: it runs end to end (seed,
# optimize, drains, the query log's figures); its numbers mean nothing here.
cargo build --locked --quiet
SIZES="20000 200000" TASKS=2000 RUNS=1 BIN=$PWD/target/debug/device-lookup bash benches/table_size.sh >/dev/null
echo "benches/table_size.sh ran (small tables)"
cargo test --locked --lib --bins --tests
