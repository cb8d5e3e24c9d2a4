#!/usr/bin/env bash
# Contract run: schemathesis generates requests from openapi/openapi.yaml and sends them to a live
# sidebus (debug build, memory broker, API token set); every response must be documented and
# match its schema, and none may be a 5xx. Afterwards sidebus must not have panicked and must
# still shut down cleanly. See docs/development.md ("Contract run").
#
# Runs inside a private network namespace with only loopback up, so the webhook subscriptions
# schemathesis creates (arbitrary http/https endpoints) can reach nothing beyond this machine's
# loopback. Extra arguments go to `schemathesis run` (e.g. --max-examples 5, --seed N).
set -euo pipefail
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$script")/../.."
root=$PWD
bin=${CARGO_TARGET_DIR:-$root/target}/debug/sidebus

if [ -z "${SIDEBUS_CONTRACT_IN_NETNS:-}" ]; then
  cargo build --quiet --bin sidebus
  if ! command -v ip >/dev/null; then
    echo "contract: needs \`ip\` (Debian package iproute2) to bring up loopback in its namespace" >&2
    exit 1
  fi
  export SIDEBUS_CONTRACT_IN_NETNS=1
  # As root a network namespace alone; otherwise inside a user namespace of our own.
  for flags in "--net" "--user --map-root-user --net"; do
    # shellcheck disable=SC2086 # the flags are separate words on purpose
    if unshare $flags true 2>/dev/null; then
      # shellcheck disable=SC2086
      exec unshare $flags -- bash -c 'ip link set lo up && exec bash "$0" "$@"' "$script" "$@"
    fi
  done
  echo "contract: cannot create a network namespace (unshare --net); it keeps the webhook" \
    "deliveries of generated subscriptions on loopback, so the run does not go without it" >&2
  exit 1
fi

work=$(mktemp -d)
sidebus_pid=
cleanup() {
  if [ -n "$sidebus_pid" ]; then
    kill "$sidebus_pid" 2>/dev/null || true
    wait "$sidebus_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=contract-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
# A second principal with less scope and a small quota: hooks.py sends some requests with it, so
# the run also holds the 403 and 429 answers to the spec.
limited=limited-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
base=http://127.0.0.1:$port

cat >"$work/sidebus.toml" <<TOML
listen = "127.0.0.1:$port"
state_dir = "$work/state"
source = "sidebus://contract"
shutdown_grace = "10s"

[access.principals.contract]
token_sha256 = "$(sha "$token")"
publish = [">"]
subscribe = [">"]
manage_subscriptions = true

[access.principals.limited]
token_sha256 = "$(sha "$limited")"
publish = [">"]
subscribe = ["orders.>"]
quota = { events_per_second = 2, bytes_per_second = "4KiB" }

[audit]
path = "$work/audit/audit.jsonl"

[[topics]]
name = "contract.mapped"
broker = "default"
physical = "contract.physical"
shadow = "contract.shadow"

[brokers.default]
kind = "memory"

# A subscription from the file: PUT and DELETE on it must answer 409.
[[subscriptions]]
name = "from-config"
broker = "default"
topic = "contract"
endpoint = "http://127.0.0.1:9/events"
TOML

"$bin" --config "$work/sidebus.toml" >"$work/sidebus.log" 2>&1 &
sidebus_pid=$!

show_log() {
  echo "--- sidebus log (last 200 lines) ---" >&2
  tail -n 200 "$work/sidebus.log" >&2
}

# Poll readiness with a deadline.
deadline=$((SECONDS + 30))
until curl -fsS -o /dev/null "$base/readyz" 2>/dev/null; do
  if ! kill -0 "$sidebus_pid" 2>/dev/null; then
    echo "contract: sidebus exited before it was ready" >&2
    show_log
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "contract: sidebus not ready on $base within 30 s" >&2
    show_log
    exit 1
  fi
  sleep 0.1
done

# Events on the spec's example topic, so streams of it from `earliest` carry CloudEvents (JSON,
# text and binary data) whose schema the SSE checks can hold them to.
publish() {
  curl -fsS -o /dev/null -H "Authorization: Bearer $token" -H "Content-Type: $1" \
    -H "ce-type: com.example.seeded" -H "ce-partitionkey: seed" --data-binary "$2" \
    "$base/v1/publish/default/orders.v1"
}
publish application/json '{"n":1}'
publish text/plain 'two'
publish application/octet-stream $'\x01\x02three'

status=0
# `python3 -m` runs the schemathesis that `python3 -m pip` installed (.ci/run), whatever PATH says.
SIDEBUS_CONTRACT_TOKEN=$token SIDEBUS_CONTRACT_LIMITED=$limited python3 -m schemathesis.cli \
  --config-file tests/contract/schemathesis.toml run \
  openapi/openapi.yaml --url "$base" "$@" || status=$?

# A fuzzed sidebus must still be alive, must not have panicked in any task (a panic in a
# delivery or consumer task never shows as a 5xx), and must shut down cleanly on SIGTERM.
if ! kill -0 "$sidebus_pid" 2>/dev/null; then
  echo "contract: sidebus died during the run" >&2
  show_log
  exit 1
fi
kill -TERM "$sidebus_pid"
exit_code=0
wait "$sidebus_pid" || exit_code=$?
sidebus_pid=
if [ "$exit_code" -ne 0 ]; then
  echo "contract: sidebus exited with status $exit_code on SIGTERM (expected 0)" >&2
  show_log
  status=1
fi
# The limited principal's requests were refused as the spec says (held to it above); the audit
# log shows they happened, so the run did cover them.
for code in 401 403 429; do
  if ! grep -q "\"status\":$code" "$work"/audit/audit.jsonl.*; then
    echo "contract: no $code answer was audited; the run did not cover it" >&2
    status=1
  fi
done
if grep -q "panicked" "$work/sidebus.log"; then
  echo "contract: sidebus panicked during the run:" >&2
  grep -A5 "panicked" "$work/sidebus.log" >&2
  status=1
fi
exit "$status"
