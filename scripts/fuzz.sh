#!/usr/bin/env bash
# A bounded fuzz run of task parsing (libFuzzer through cargo-fuzz):
#   bash scripts/fuzz.sh [SECONDS]      default 60
# Starts from the seed corpus in fuzz/corpus/parse_task (left unchanged; new
# inputs go to a scratch copy). A crash leaves its input in fuzz/artifacts/.
# cargo-fuzz wants a nightly compiler; RUSTC_BOOTSTRAP lets this machine's
# stable one accept the flags it passes.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp fuzz/corpus/parse_task/* "$scratch"/
RUSTC_BOOTSTRAP=1 cargo fuzz run parse_task "$scratch" fuzz/corpus/parse_task -- \
    -max_total_time="$SECONDS_TO_RUN" -max_len=4096
