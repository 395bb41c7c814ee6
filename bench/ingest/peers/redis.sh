#!/usr/bin/env bash
# Redis Streams peer for the ingest benchmark: starts its own redis-server (AOF on, appendfsync
# always, no RDB snapshots) in a fresh directory on a free loopback port, drives it with
# redis-benchmark running XADD with a payload of the given size, stops it, and prints one JSON line.
#
#   redis.sh --dir DIR --port PORT --payload BYTES --clients C --pipeline P --seconds S [--label L]
#            [--streams K]
#
# --streams K (> 1) spreads the XADDs over K streams at random (redis-benchmark -r), for the
# partitions benchmark; the stream-length check then counts the entries of all of them.
#
# redis-benchmark has no duration option: a short probe run (which also warms up) measures the
# rate, and the measured run gets rate * seconds requests. redis-benchmark's latency is per
# command; with -P it is the time from writing the pipeline to reading that command's reply.
set -euo pipefail

dir="" port="" payload=100 clients=64 pipeline=64 seconds=10 label="" streams=1
while (($#)); do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --payload) payload=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --pipeline) pipeline=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --label) label=$2; shift 2 ;;
    --streams) streams=$2; shift 2 ;;
    *) echo "redis.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ -n "$dir" && -n "$port" ]] || { echo "redis.sh: --dir and --port are required" >&2; exit 2; }

mkdir -p "$dir"
redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes --appendfsync always \
  --save '' --daemonize no --protected-mode yes --logfile "$dir/redis.log" &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
trap cleanup EXIT

for _ in $(seq 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null

data=$(head -c "$payload" /dev/zero | tr '\0' x)
cpu_of() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }  # utime+stime, ticks
hz=$(getconf CLK_TCK)
machine() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9; exit }' /proc/stat; }

# Probe (also the warmup): enough requests for every client to send a few pipelines.
probe_n=$((clients * pipeline * 20))
((probe_n < 2000)) && probe_n=2000
((probe_n > 200000)) && probe_n=200000
probe=$(redis-benchmark -p "$port" -c "$clients" -P "$pipeline" -n "$probe_n" --csv \
  XADD bench:probe '*' d "$data" | tail -1)
rate=$(echo "$probe" | awk -F'","' '{ print int($2) }')
n=$((rate * seconds))
((n < probe_n)) && n=$probe_n

s0=$(cpu_of "$pid")
m0=$(machine)
t0=$(date +%s.%N)
if ((streams > 1)); then
  target=(-r "$streams" XADD 'bench:__rand_int__' '*' d "$data")
else
  target=(XADD bench '*' d "$data")
fi
out=$(/usr/bin/time -f '%U %S' -o "$dir/time.txt" redis-benchmark -p "$port" -c "$clients" \
  -P "$pipeline" -n "$n" --csv "${target[@]}" | tail -1)
t1=$(date +%s.%N)
s1=$(cpu_of "$pid")
m1=$(machine)
if ((streams > 1)); then
  # Every entry of every stream (the probe's stream aside).
  len=$(redis-cli -p "$port" EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', 'bench:*')) do if k ~= 'bench:probe' then n = n + redis.call('XLEN', k) end end return n" 0)
else
  len=$(redis-cli -p "$port" XLEN bench)
fi
aof_bytes=$(du -sb "$dir" | awk '{ print $1 }')

# "XADD bench * d xxx","rps","avg","min","p50","p95","p99","max"
echo "$out" | awk -F'","' -v label="$label" -v payload="$payload" -v c="$clients" -v p="$pipeline" \
  -v n="$n" -v len="$len" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" \
  -v tf="$dir/time.txt" -v aof="$aof_bytes" -v m0="$m0" -v m1="$m1" -v ncpu="$(nproc)" '
  {
    gsub(/"/, "", $8)
    getline cpu < tf; split(cpu, u, " ")
    wall = t1 - t0
    rps = $2 + 0
    printf "{\"tool\":\"redis-benchmark\",\"label\":\"%s\",\"payload_bytes\":%d,\"clients\":%d,", label, payload, c
    printf "\"pipeline\":%d,\"requests\":%d,\"events\":%d,\"stream_length\":%d,\"seconds\":%.3f,", p, n, n, len, wall
    printf "\"events_per_s\":%.1f,\"mb_per_s\":%.2f,\"latency_per\":\"command\",", rps, rps * payload / 1e6
    printf "\"avg_ms\":%.3f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,", $3, $5, $6, $7, $8
    printf "\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f,\"aof_dir_bytes\":%d,", 100 * (u[1] + u[2]) / wall, 100 * (s1 - s0) / hz / wall, aof
    split(m0, a, " "); split(m1, b, " ")
    printf "\"machine_cpu_pct\":%.1f,", (b[2] > a[2]) ? 100 * ncpu * (b[1] - a[1]) / (b[2] - a[2]) : -1
    printf "\"errors\":%d,\"error\":\"%s\"}\n", (len >= n ? 0 : 1), (len >= n ? "" : "stream shorter than the requests sent")
  }'
