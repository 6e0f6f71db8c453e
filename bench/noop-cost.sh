#!/usr/bin/env bash
# What eight no-op plugins on every hook cost per message, counted in instructions rather than
# seconds: valgrind's callgrind counts the instructions each thread of `mq serve` executes,
# which is repeatable on a shared, noisy machine where throughput is not. Two builds (with and
# without the `noop` feature) each accept MESSAGES messages from smtp-source over loopback, one
# connection per message, with one worker; the script prints instructions per message for the
# worker thread (SMTP sessions and plugin chains) and for the whole process (with the queue
# writer), and the difference between the builds.
#
#   bench/noop-cost.sh
#   MESSAGES=4000 SIZE=5120 bench/noop-cost.sh
#   KEEP=/tmp/cg bench/noop-cost.sh     # keeps the callgrind files
#   REUSE=1 bench/noop-cost.sh          # one connection per client for all its messages
#
# Needs valgrind and smtp-source. Kernel time is not counted by callgrind; bench/inbound.sh
# gives messages/s and cpu.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/common.sh

MESSAGES=${MESSAGES:-2000}
SIZE=${SIZE:-5120}
PORT=${PORT:-$(free_port)}
need valgrind smtp-source bc

# KEEP=DIR keeps the callgrind files there (for callgrind_annotate).
work=${KEEP:-$(mktemp -d)}
mkdir -p "$work"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT
cargo build --release -q -p mq-bin
cp target/release/mq "$work/mq-plain"
cargo build --release -q -p mq-bin --features noop
cp target/release/mq "$work/mq-noop"

# Instructions of the thread that ran the sessions, and of all threads, per message.
count() {
    local build=$1 dir=$work/$1 pid
    mkdir -p "$dir"
    base_config "$PORT" "$dir" > "$dir/mq.toml"
    printf '[engine]\nworkers = 1\n[delivery]\nenabled = false\n' >> "$dir/mq.toml"
    valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/cg.%p" \
        "$work/mq-$build" --config "$dir/mq.toml" serve 2>"$dir/log" &
    pid=$!
    wait_for_port "$PORT" 600
    smtp-source ${REUSE:+-d} -s 20 -l "$SIZE" -m "$MESSAGES" -f sender@client.test -t user@localhost "127.0.0.1:$PORT"
    stop_mq "$pid"
    local queued worker total
    queued=$(accepted "$dir/log")
    [ "$queued" = "$MESSAGES" ] || { echo "$build: $queued of $MESSAGES messages queued" >&2; exit 1; }
    # The worker thread's file is the one whose functions include the SMTP session.
    worker=$(grep -l "smtp::session" "$dir"/cg.*-* | head -1)
    total=0
    for file in "$dir"/cg.*-*; do
        total=$((total + $(awk '/^(summary|totals):/ { print $2; exit }' "$file")))
    done
    worker=$(awk '/^(summary|totals):/ { print $2; exit }' "$worker")
    echo "$build $((worker / MESSAGES)) $((total / MESSAGES))"
}

printf '%-6s %18s %18s\n' build "worker instr/msg" "process instr/msg"
results=()
for build in plain noop; do
    read -r name worker total < <(count "$build")
    printf '%-6s %18d %18d\n' "$name" "$worker" "$total"
    results+=("$worker" "$total")
done
echo "noop - plain: worker $((results[2] - results[0])) instr/msg ($(echo "scale=2; 100 * (${results[2]} - ${results[0]}) / ${results[0]}" | bc) %), process $((results[3] - results[1])) instr/msg ($(echo "scale=2; 100 * (${results[3]} - ${results[1]}) / ${results[1]}" | bc) %)"
