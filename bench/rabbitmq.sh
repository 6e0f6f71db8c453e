#!/usr/bin/env bash
# End-to-end benchmark of the RabbitMQ queue backend: Postfix's smtp-source → `mq serve` with
# [queue] backend = "rabbitmq" (publisher confirms, persistent messages) → the broker's outbox →
# mq's delivery → smarthost → Postfix's smtp-sink, all over loopback. In the same run, for
# comparison, the embedded queue (fsync on), then two mq nodes sharing one broker (smtp-source
# split over both). For each it prints messages/s arriving at the sink (from the first message
# sent to the last one received) and the CPU seconds mq and the broker used meanwhile.
#
#   bench/rabbitmq.sh                       # 5 KB at concurrency 20
#   MESSAGES=5000 bench/rabbitmq.sh
#   MQ_BIN=/path/to/mq RUNS="rabbitmq:1" bench/rabbitmq.sh   # another build, one node only
#
# MQ_BIN: the mq binary to run (default: target/release/mq, built first). RUNS: which runs, as
# BACKEND:NODES (default "embedded:1 rabbitmq:1 rabbitmq:2"). BROKER_PROFILE=1: after each run,
# where the broker's work went, as Erlang reductions per kind of process (channel, queue,
# message store, ...) during the run.
#
# Needs smtp-source and smtp-sink (shared/tools/install-smtp-tools.sh) and RabbitMQ on
# 127.0.0.1:5672 (guest/guest). Queues get a prefix of their own and are deleted after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/common.sh

SIZES=${SIZES:-"5120"}
CONCURRENCY=${CONCURRENCY:-"20"}

need smtp-source smtp-sink bc rabbitmqctl
RUNS=${RUNS:-"embedded:1 rabbitmq:1 rabbitmq:2"}
build_mq

# The broker's Erlang VM.
broker_pid() {
    pgrep -o -f 'beam.smp.*rabbit' || echo 0
}

# Writes the config of one node: BACKEND is embedded or rabbitmq; queues prefixed PREFIX.
node_config() {
    local port=$1 dir=$2 backend=$3 prefix=$4 sink=$5
    # The backend goes into base_config's [queue] table, before [admin].
    base_config "$port" "$dir" | sed "s/^\[admin\]/backend = \"$backend\"\nfsync = true\n[admin]/"
    if [ "$backend" = rabbitmq ]; then
        cat <<CONF
[queue.rabbitmq]
outbox = "$prefix.outbox"
results = "$prefix.results"
success = "$prefix.success"
failure = "$prefix.failure"
retry = "$prefix.retry"
prefetch = 500
CONF
    fi
    relay_config "$sink"
}

# Reductions (the Erlang VM's unit of work) of the broker's processes so far, summed by kind
# (registered name or module), one "kind count" per line.
broker_reductions() {
    rabbitmqctl -q eval 'Kind = fun(P) -> case process_info(P, registered_name) of
            {registered_name, N} when is_atom(N) -> N;
            _ -> case proc_lib:translate_initial_call(P) of {M, _, _} -> M; _ -> other end
        end end,
        lists:foldl(fun(P, Acc) -> case process_info(P, reductions) of
            {reductions, R} -> orddict:update_counter(Kind(P), R, Acc); _ -> Acc end end,
            orddict:new(), processes()).' |
        tr -d '\n ' | grep -o '{[a-z_0-9]*,[0-9]*}' | tr -d '{}' | tr ',' ' '
}

# The kinds of broker process that did most of the work between two broker_reductions.
broker_profile() {
    awk 'NR == FNR { before[$1] = $2; next }
         { d = $2 - before[$1]; if (d > 0) { delta[$1] = d; total += d } }
         END { for (k in delta) if (delta[k] * 50 > total) printf "    %-32s %5.1f%%\n", k, 100 * delta[k] / total }' \
        "$1" "$2" | sort -k2 -nr
}

delete_queues() {
    local prefix=$1 q
    for q in outbox results success failure retry; do
        rabbitmqctl -q delete_queue "$prefix.$q" >/dev/null 2>&1 || true
    done
}

# run SIZE CONCURRENCY BACKEND NODES
run() {
    local size=$1 concurrency=$2 backend=$3 nodes=$4 messages dir sink_port sink start end got=0
    local prefix pids=() ports=() i beam cpu_mq=0 cpu_broker_start cpu_broker_end
    messages=$(messages_for "$size")
    dir=$(mktemp -d)
    prefix="mqbench-$$-$RANDOM"
    sink_port=$(free_port)
    smtp-sink -c -u nobody "127.0.0.1:$sink_port" 1024 > "$dir/sink" 2>&1 &
    sink=$!
    for i in $(seq "$nodes"); do
        ports+=("$(free_port)")
        mkdir -p "$dir/$i"
        node_config "${ports[-1]}" "$dir/$i" "$backend" "$prefix" "$sink_port" > "$dir/$i/mq.toml"
        "$mq" --config "$dir/$i/mq.toml" serve 2>"$dir/$i/log" &
        pids+=($!)
        wait_for_port "${ports[-1]}"
    done
    beam=$(broker_pid)
    [ -n "${BROKER_PROFILE:-}" ] && broker_reductions > "$dir/reductions.before"
    cpu_broker_start=$(cpu_seconds "$beam")
    start=$(date +%s.%N)
    local sources=()
    for i in $(seq "$nodes"); do
        smtp-source -s "$((concurrency / nodes))" -l "$size" -m "$((messages / nodes))" \
            -f sender@client.test -t user@remote.test "127.0.0.1:${ports[$((i - 1))]}" &
        sources+=($!)
    done
    wait "${sources[@]}"
    for _ in $(seq 1200); do
        got=$(received "$dir/sink"); got=${got:-0}
        [ "$got" -ge "$messages" ] && break
        sleep 0.1
    done
    end=$(date +%s.%N)
    cpu_broker_end=$(cpu_seconds "$beam")
    for pid in "${pids[@]}"; do
        cpu_mq=$(echo "$cpu_mq + $(cpu_seconds "$pid")" | bc -l)
    done
    [ -n "${BROKER_PROFILE:-}" ] && broker_reductions > "$dir/reductions.after"
    for pid in "${pids[@]}"; do stop_mq "$pid"; done
    kill "$sink"; wait "$sink" 2>/dev/null || true
    [ "$backend" = rabbitmq ] && delete_queues "$prefix"
    printf '%-8s nodes=%d %6d B c=%-3d %6d msgs  %7.0f msg/s at the sink  CPU s per 10,000: mq %5.2f broker %5.2f  (received %d, %.1f s)\n' \
        "$backend" "$nodes" "$size" "$concurrency" "$messages" \
        "$(echo "$got / ($end - $start)" | bc -l)" "$(echo "$cpu_mq * 10000 / $messages" | bc -l)" \
        "$(echo "($cpu_broker_end - $cpu_broker_start) * 10000 / $messages" | bc -l)" "$got" "$(echo "$end - $start" | bc -l)"
    if [ -n "${BROKER_PROFILE:-}" ]; then
        echo "  broker reductions by process kind (over 2%):"
        broker_profile "$dir/reductions.before" "$dir/reductions.after"
    fi
    rm -rf "$dir"
}

for size in $SIZES; do
    for concurrency in $CONCURRENCY; do
        for what in $RUNS; do
            run "$size" "$concurrency" "${what%%:*}" "${what##*:}"
        done
    done
done
