# Shared by the load scripts in bench/: source it, don't run it.

# Fails with the install hint when a tool is missing.
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null || {
            echo "$tool is missing (smtp-source and smtp-sink: run shared/tools/install-smtp-tools.sh)" >&2
            exit 1
        }
    done
}

# How many messages a run sends: MESSAGES, or enough for a few seconds at the expected rate.
messages_for() {
    if [ -n "${MESSAGES:-}" ]; then echo "$MESSAGES"; elif [ "$1" -le 10240 ]; then echo 20000; else echo 4000; fi
}

# A TCP port on 127.0.0.1 that nothing listens on now, picked by the kernel, so that two runs
# (or a run beside the tests) never collide.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something listens on 127.0.0.1:PORT, for at most TENTHS tenths of a second.
wait_for_port() {
    local port=$1 tenths=${2:-100}
    for _ in $(seq "$tenths"); do
        (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port" >&2
    return 1
}

# The peak resident set of process PID so far, in MB.
peak_rss_mb() {
    echo "$(awk '/VmHWM/ { print $2 }' "/proc/$1/status") / 1024" | bc -l
}

# CPU seconds (user + system) process PID has used so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Stops `mq serve` (PID) as an operator would, and waits for it.
stop_mq() {
    kill -TERM "$1"
    wait "$1" || true
}

# How many messages `mq serve` logged as accepted in LOG.
accepted() {
    grep -c "message accepted" "$1" || true
}

# The config every load run starts from: mq on 127.0.0.1:PORT with its data in DIR/data, no
# admin port, room for many connections from one address. A script appends its own tables.
base_config() {
    cat <<CONF
[smtp]
listen = "127.0.0.1:$1"
max_connections_per_ip = 1000
max_message_size = 10240000
[queue]
data_dir = "$2/data"
[admin]
listen = ""
CONF
}

# Calls `run SIZE CONCURRENCY` for every size in SIZES and concurrency in CONCURRENCY.
run_all() {
    local size concurrency
    for size in $SIZES; do
        for concurrency in $CONCURRENCY; do
            run "$size" "$concurrency"
        done
    done
}
