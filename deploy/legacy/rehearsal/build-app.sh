#!/usr/bin/env bash
# Builds deploy/legacy/app/Dockerfile for real, the way the application
# repository would: a context with requirements.txt, src/ and deploy/app/.
# The stand-in application (rehearsal/app) plays the real one; the base is
# Debian 11 (python2.7 2.7.18), which can be had here, instead of Ubuntu 20.04.
#   build-app.sh BASE_IMAGE TAG
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp -a "$here/app/requirements.txt" "$here/app/src" "$ctx/"
mkdir -p "$ctx/deploy"
cp -a "$here/../app" "$ctx/deploy/app"
secret=()
[ -s /etc/ssl/certs/ca-certificates.crt ] && secret=(--secret "id=cacert,src=/etc/ssl/certs/ca-certificates.crt")
DOCKER_BUILDKIT=1 docker build -q "${secret[@]}" --build-arg "BASE=$1" -t "$2" -f "$ctx/deploy/app/Dockerfile" "$ctx"
