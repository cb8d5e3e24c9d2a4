#!/usr/bin/env bash
# Instructions per request, counted by callgrind: sidebus (its release binary, the memory broker)
# for single ack-wait POSTs of a 1 KiB event and for batches of 100, and the bare axum discard
# handler the load harness measures against (`benches/load`, phase a) for the same single POST;
# and the 1 KiB order event of the load harness's schema phases with no rule, a JSON Schema check
# and native Avro encoding (what a rule costs in a running sidebus).
# Counts, unlike CPU seconds, do not move with whatever else the machine is doing, so a change's
# effect shows even where the load harness's noise hides it.
#
#   bash benches/instructions.sh            # 2000 measured requests per case, 16 connections
#   REQUESTS=500 CONNECTIONS=4 bash benches/instructions.sh
#
# Each server runs under `valgrind --tool=callgrind`; after a warm-up of a fifth of the requests
# the counters are zeroed (`callgrind_control -z`), the measured requests are sent, and the
# counters are dumped (`callgrind_control -d`): the total over every thread, divided by the
# requests, is the figure. The client is Python on its own threads, outside valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

requests=${REQUESTS:-2000}
connections=${CONNECTIONS:-16}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# One build: `cargo bench` builds the sidebus binary (target/release/sidebus) with the harness.
load=$(cargo bench --bench load --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "load" and m.get("executable"):
        print(m["executable"])')

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# send PORT PATH KIND COUNT: COUNT POSTs over $connections keep-alive connections; KIND is
# `single` (binary mode, one event), `batch` (cloudevents-batch+json, 100 events) or
# `order.none`/`order.json`/`order.avro` (the order event of type com.example.order.*).
send() {
  python3 - "$@" "$connections" <<'PY'
import http.client, json, os, sys, threading
port, path, kind, count, conns = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
payload = '{"p":"' + "x" * (1024 - 8) + '"}'
if kind == "single":
    body, headers = payload, {"Content-Type": "application/json", "ce-type": "com.example.bench"}
elif kind.startswith("order."):
    body = open(os.environ["ORDER_EVENT"]).read()
    headers = {"Content-Type": "application/json", "ce-type": "com.example." + kind}
else:
    event = '{"specversion":"1.0","type":"com.example.bench","source":"bench","datacontenttype":"application/json","data":' + payload + '}'
    body = "[" + ",".join(event for _ in range(100)) + "]"
    headers = {"Content-Type": "application/cloudevents-batch+json"}
failed = []
def worker(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for _ in range(n):
        c.request("POST", path, body=body, headers=headers)
        r = c.getresponse()
        r.read()
        if r.status not in (200, 202):
            failed.append(r.status)
threads = [threading.Thread(target=worker, args=(count // conns + (i < count % conns),)) for i in range(conns)]
for t in threads: t.start()
for t in threads: t.join()
if failed:
    sys.exit(f"{len(failed)} requests failed, first status {failed[0]}")
PY
}

wait_port() {
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  exit 1
}

# measure NAME PATH KIND -- COMMAND…: instructions per request of COMMAND's process.
measure() {
  local name=$1 path=$2 kind=$3
  shift 4
  local port out
  port=$(free_port)
  out="$work/$name.out"
  SIDEBUS_LOAD_BARE_LISTEN="127.0.0.1:$port" SIDEBUS_LISTEN="127.0.0.1:$port" \
    valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
    "$@" >"$work/$name.log" 2>&1 &
  local pid=$!
  wait_port "$port"
  send "$port" "$path" "$kind" $((requests / 5))
  callgrind_control -z "$pid" >/dev/null 2>&1
  send "$port" "$path" "$kind" "$requests"
  callgrind_control -d "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  # `-d` wrote `$out.1` (the exit writes `$out`): its `summary:` line is the total since `-z`.
  local total
  total=$(awk '/^summary:/ {print $2}' "$out.1")
  local events=1
  [ "$kind" = batch ] && events=100
  python3 -c "
t, r, e = $total, $requests, $events
print(f'{\"$name\":<22} {t / r:>12,.0f} instructions/request {t / r / e:>10,.0f} /event')"
}

echo "callgrind, $requests measured requests over $connections connections, 1 KiB events, $(date -u +%F)"
measure bare /bare single -- "$load"
measure sidebus-single /v1/publish/default/bench single -- target/release/sidebus --config-poll 0s
measure sidebus-batch-100 /v1/publish/default/bench/batch batch -- target/release/sidebus --config-poll 0s

# The schema phases' rules and order event, as the load harness writes them.
SIDEBUS_LOAD_SCHEMA_FILES="$work" "$load"
printf '[brokers.default]\nkind = "memory"\n' | cat - "$work/rules.toml" >"$work/sidebus.toml"
export ORDER_EVENT="$work/order.json"
for rule in none json avro; do
  measure "sidebus-order-$rule" /v1/publish/default/bench "order.$rule" -- \
    target/release/sidebus --config "$work/sidebus.toml" --config-poll 0s
done
