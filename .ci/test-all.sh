#!/usr/bin/env bash
# Install everything the tests need on a fresh Debian/Ubuntu machine, then run every test.
# This is the README's test command; .ci/run calls it.  Run as root (or with sudo): the
# NAT lab needs network namespaces and the Docker tests need a Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need=()
for pkg in docker.io nftables iproute2 busybox-static tmux git python3-venv; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  echo "== apt: installing ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}"
fi

DOCKERD_PID=""
cleanup() {
  if [ -n "$DOCKERD_PID" ]; then
    echo "== stopping the dockerd we started (pid $DOCKERD_PID)"
    $SUDO kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  fi
}
trap cleanup EXIT

if ! docker info >/dev/null 2>&1; then
  echo "== starting dockerd in the background"
  $SUDO dockerd >/tmp/rnn-ci-dockerd.log 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start:"; tail -20 /tmp/rnn-ci-dockerd.log; exit 1; }
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
echo "== pip install -e .[dev]"
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[dev]'

echo "== pytest"
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests (exit 5)"
  exit 1
fi
exit "$rc"
