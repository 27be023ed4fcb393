#!/usr/bin/env bash
# Check the three-node cluster of docs/operations.md on this one host: start three RabbitMQ nodes
# (AMQP on 127.0.0.1:5681-5683, beside the development broker on 5672), join them into one
# cluster, import `slipway definitions`, check that a queue has a replica on each node, submit a
# job through node 2, stop node 1, and read the job's queue through node 3. Everything it made is
# removed when it exits. Needs rabbitmq-server and the `slipway` binary (target/debug or PATH).
#
# Usage: bash deploy/rabbitmq/cluster-check.sh [path/to/slipway]
set -euo pipefail

ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)"
SLIPWAY="${1:-}"
if [[ -z "$SLIPWAY" ]]; then
    if [[ -x "$ROOT/target/debug/slipway" ]]; then
        SLIPWAY="$ROOT/target/debug/slipway"
    else
        SLIPWAY="$(command -v slipway)" || { echo "cluster-check: no slipway binary" >&2; exit 2; }
    fi
fi
HOST="$(hostname -s)"
BASE="$(mktemp -d /tmp/slipway-cluster.XXXXXX)"
chmod 0755 "$BASE"

say() { printf 'cluster-check: %s\n' "$*" >&2; }
node() { echo "slipway-check$1@$HOST"; }
ctl() { local n=$1; shift; rabbitmqctl -q -n "$(node "$n")" "$@"; }

cleanup() {
    for n in 1 2 3; do
        rabbitmqctl -q -n "$(node "$n")" stop >/dev/null 2>&1 || true
        # A node that never answered: its pid file names it.
        if [[ -s "$BASE/n$n/pid" ]]; then
            kill "$(cat "$BASE/n$n/pid")" 2>/dev/null || true
        fi
    done
    rm -rf -- "$BASE"
}
trap cleanup EXIT

start_node() {
    local n=$1 dir="$BASE/n$1"
    mkdir -p "$dir/mnesia" "$dir/log"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:568$n
loopback_users.guest = true
consumer_timeout = 10800000
cluster_partition_handling = pause_minority
EOF
    echo "[]." >"$dir/enabled_plugins"
    chown -R rabbitmq:rabbitmq "$dir"
    # Debian's /usr/sbin/rabbitmq-server drops the environment on its way to the rabbitmq user:
    # run the server script as that user with these variables.
    runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq \
        RABBITMQ_NODENAME="$(node "$n")" RABBITMQ_NODE_PORT="568$n" RABBITMQ_DIST_PORT="2568$n" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        RABBITMQ_PID_FILE="$dir/pid" /usr/lib/rabbitmq/bin/rabbitmq-server -detached
}

say "starting three nodes in $BASE"
for n in 1 2 3; do start_node "$n"; done
# `wait` follows the pid file until the node is up (await_startup fails while the node has not
# registered with epmd yet).
for n in 1 2 3; do ctl "$n" wait "$BASE/n$n/pid" --timeout 120; done
for n in 2 3; do
    ctl "$n" stop_app
    ctl "$n" reset
    ctl "$n" join_cluster "$(node 1)"
    ctl "$n" start_app
done
running="$(ctl 1 eval 'length(rabbit_nodes:all_running()).')"
say "cluster formed: $running nodes running"
[[ "$running" == 3 ]] || { say "FAILED: expected 3 running nodes"; exit 1; }

mkdir -p "$BASE/credentials"
for role in lint build scan repo-tracker rescan-scheduler notify cli; do
    head -c 18 /dev/urandom | base64 >"$BASE/credentials/$role"
done
"$SLIPWAY" definitions --credentials "$BASE/credentials" >"$BASE/definitions.json"
chmod 0644 "$BASE/definitions.json"
ctl 1 import_definitions "$BASE/definitions.json"
expected="$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["queues"]))' "$BASE/definitions.json")"
for _ in $(seq 1 300); do
    declared="$(ctl 1 list_queues -p slipway name --no-table-headers 2>/dev/null | grep -c . || true)"
    [[ "$declared" -ge "$expected" ]] && break
    sleep 0.2
done
say "definitions imported: $declared of $expected queues and streams"
[[ "$declared" -ge "$expected" ]] || { say "FAILED: the import did not finish"; exit 1; }

members="$(rabbitmq-queues -q -n "$(node 1)" quorum_status slipway.lint -p slipway | grep -c "slipway-check" || true)"
say "slipway.lint has $members replicas"
[[ "$members" == 3 ]] || { say "FAILED: expected a replica on each node"; exit 1; }
leader="$(ctl 1 list_queues -p slipway name leader --no-table-headers | awk '$1 == "slipway.lint" {print $2}')"
say "slipway.lint's leader: $leader"

cli_env() {
    env SLIPWAY_BROKER__URL="amqp://127.0.0.1:568$1/slipway" SLIPWAY_BROKER__USERNAME=slipway-cli \
        SLIPWAY_BROKER__PASSWORD_FILE="$BASE/credentials/cli" SLIPWAY_BROKER__TOPOLOGY=verify "${@:2}"
}
mkdir -p "$BASE/index.d"
printf 'Projects:\n  - id: 1\n    app-id: team\n    job-id: web\n    git-url: https://git.example.org/x.git\n    git-branch: main\n' \
    >"$BASE/index.d/team.yaml"
cli_env 2 "$SLIPWAY" submit "$BASE/index.d" >&2
say "submitted one job through node 2; stopping node 1"
ctl 1 stop
# Until the surviving nodes have elected a new leader, the queue cannot answer: ask again for a
# while.
ready=""
for _ in $(seq 1 60); do
    status="$(cli_env 3 "$SLIPWAY" status --format json 2>/dev/null || true)"
    ready="$(printf '%s\n' "$status" | python3 -c '
import json, sys
try:
    stages = json.load(sys.stdin)["stages"]
    print(next(stage["ready"] for stage in stages if stage["stage"] == "lint"))
except Exception:
    print("")
')"
    [[ "$ready" == 1 ]] && break
    sleep 0.5
done
say "through node 3, with node 1 stopped: slipway.lint holds ${ready:-?} ready job(s)"
[[ "$ready" == 1 ]] || { say "FAILED: the job is not in slipway.lint; status: $status"; exit 1; }
new_leader="$(ctl 2 list_queues -p slipway name leader --no-table-headers | awk '$1 == "slipway.lint" {print $2}')"
say "slipway.lint's leader now: $new_leader"
say "OK"
