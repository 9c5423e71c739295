#!/usr/bin/env bash
# deploy.sh [STACK] [EXTRA_COMPOSE_FILE...]: deploys stack.yml, run on a manager.
# It carries FENCED_SERVERS over from the running proxies (a deploy must not
# lift a fence failover.sh set), and fails when Swarm would ignore any key of
# the files ("Ignoring unsupported options"): such a key protects nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
STACK=${1:-legacy}
shift || true
files=(-c "$here/stack.yml")
for f in "$@"; do files+=(-c "$f"); done
FENCED_SERVERS=$(docker service inspect "${STACK}_proxysql" \
    --format '{{range .Spec.TaskTemplate.ContainerSpec.Env}}{{println .}}{{end}}' 2>/dev/null \
    | sed -n 's/^FENCED_SERVERS=//p' || true)
export FENCED_SERVERS
out=$(docker stack deploy "${files[@]}" --with-registry-auth --prune --detach=true "$STACK" 2>&1) || { echo "$out" >&2; exit 1; }
echo "$out"
if grep -qi "ignoring" <<<"$out"; then
    echo "deploy.sh: Swarm ignored part of the stack file (above): fix the file" >&2
    exit 1
fi
