#!/usr/bin/env bash
# The test suite: unit tests, integration tests against real Redis and
# ClickHouse (each test starts its own on free ports), and one pass of every
# benchmark in test mode.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo test --locked --all-targets
