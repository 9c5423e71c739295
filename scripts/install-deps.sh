#!/usr/bin/env bash
# Installs what the tests and the demo need and a fresh Debian machine lacks:
# redis-server, clickhouse-server, clickhouse-client and prometheus (Debian's
# packages), then the third-party paste servers and the in-process ClickHouse
# below. Nothing is started here: the tests and the demo start their own
# instances.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
have redis-server || missing+=(redis-server)
have clickhouse-server || missing+=(clickhouse-server)
have clickhouse-client || missing+=(clickhouse-client)
# promtool for the alert rules' tests, and a real server for tests/observability.rs.
have prometheus || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # policy-rc.d in containers refuses to start services; we never want them started.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Real third-party paste servers for tests/third_party.rs, pinned, installed
# once under $DEVICE_LOOKUP_TOOLS (kept with the machine; a new version gets
# a directory of its own): rustypaste (crates.io, built from source, a few
# minutes the first time) and pinnwand (PyPI, in a virtual environment).
TOOLS=${DEVICE_LOOKUP_TOOLS:-/opt/device-lookup-test-tools}
RUSTYPASTE_VERSION=0.18.1
PINNWAND_VERSION=1.5.0
mkdir -p "$TOOLS"
if [ ! -x "$TOOLS/rustypaste-$RUSTYPASTE_VERSION/bin/rustypaste" ]; then
    echo "installing rustypaste $RUSTYPASTE_VERSION (cargo install)" >&2
    cargo install --locked --quiet --root "$TOOLS/rustypaste-$RUSTYPASTE_VERSION" "rustypaste@$RUSTYPASTE_VERSION"
fi
ln -sfn "rustypaste-$RUSTYPASTE_VERSION" "$TOOLS/rustypaste"

# pip_tool NAME VERSION PACKAGE MODULE: PACKAGE==VERSION in a virtual
# environment $TOOLS/NAME-VERSION, linked as $TOOLS/NAME, unless MODULE
# already imports there.
pip_tool() {
    local dir=$TOOLS/$1-$2
    if ! "$dir/bin/python" -c "import $4" 2>/dev/null; then
        echo "installing $3 $2 (pip)" >&2
        rm -rf "$dir"
        python3 -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$3==$2"
    fi
    ln -sfn "$1-$2" "$TOOLS/$1"
}
pip_tool pinnwand "$PINNWAND_VERSION" pinnwand pinnwand

# A current ClickHouse for tests/current_clickhouse.rs: the in-process engine
# of chdb-core (no current server installs here).
pip_tool chdb 26.9.0 chdb-core chdb
