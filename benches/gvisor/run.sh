#!/usr/bin/env bash
# gVisor's own Go client against gVisor's production gofer and against ours, alternating
# (A, B, A, B, ...) on fresh tmpfs roots, over channels and over the socket alone; prints
# a Markdown table of medians and ratios (issue 10, section 1). A benchmark, not a test:
# it needs the peer binary `lisafs-harness` (../shared/gvisor-peer/, or $LISAFS_HARNESS)
# and says so, exiting 0, when it is absent.
#
#   bash benches/gvisor/run.sh            # ROUNDS=3 DUR=2s by default
#   ROUNDS=5 DUR=1s GOFER=target/release/gofer bash benches/gvisor/run.sh
#   PIN=0 bash benches/gvisor/run.sh      # server and client both on CPU 0 (taskset)
#   MEMORY=1 bash benches/gvisor/run.sh   # ours serves its memory backend (--memory)
#
# PIN takes where the kernel puts the two ends out of the comparison; MEMORY takes out
# most of the host system calls of ours: together they bound what any gofer could gain
# under this client on this machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
harness=${LISAFS_HARNESS:-$repo/../shared/gvisor-peer/lisafs-harness}
gofer=${GOFER:-$repo/target/release/gofer}
rounds=${ROUNDS:-3}
dur=${DUR:-2s}
pin=()
[[ -n ${PIN:-} ]] && pin=(taskset -c "$PIN")

if [[ ! -x $harness ]]; then
    echo "benches/gvisor: no lisafs-harness at $harness (set LISAFS_HARNESS); nothing measured"
    exit 0
fi
if [[ ! -x $gofer ]]; then
    echo "benches/gvisor: build the gofer first: cargo build --release -p lisafs-gofer" >&2
    exit 1
fi

work=$(mktemp -d /tmp/lisafs-gvbench.XXXXXX)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    umount "$work/tmpfs" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
mkdir "$work/tmpfs" "$work/json"
# A private tmpfs as root; elsewhere /dev/shm-backed /tmp will do.
mount -t tmpfs -o size=1g tmpfs "$work/tmpfs" 2>/dev/null || true

start() { # server root socket
    case $1 in
        gvisor) "${pin[@]}" "$harness" serve --root "$2" --sock "$3" 2>"$work/server.log" & ;;
        ours)
            local tree=(--root "$2")
            [[ ${MEMORY:-0} == 1 ]] && tree=(--memory)
            "${pin[@]}" "$gofer" "${tree[@]}" --socket "$3" --log-level warn 2>"$work/server.log" &
            ;;
    esac
    server_pid=$!
    for _ in $(seq 500); do
        [[ -S $3 ]] && return 0
        sleep 0.01
    done
    echo "benches/gvisor: $1 did not listen on $3" >&2
    cat "$work/server.log" >&2
    exit 1
}

stop() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
}

n=0
for mode in channels socket; do
    flags=()
    [[ $mode == socket ]] && flags=(--no-channels)
    for round in $(seq "$rounds"); do
        for server in gvisor ours; do
            n=$((n + 1))
            root="$work/tmpfs/root$n" sock="$work/s$n"
            mkdir "$root"
            start "$server" "$root" "$sock"
            echo "benches/gvisor: $mode, round $round, $server" >&2
            "${pin[@]}" "$harness" bench --sock "$sock" --dur "$dur" --json "${flags[@]}" \
                >"$work/json/$mode.$server.$round.json"
            stop
            rm -rf "$root"
        done
    done
done

echo "PIN=${PIN:-none} MEMORY=${MEMORY:-0}"
python3 - "$work/json" "$(cat /proc/loadavg)" <<'PY'
import json, os, statistics, sys

folder, load = sys.argv[1], sys.argv[2]
runs = {}
for name in sorted(os.listdir(folder)):
    mode, server, _round, _ = name.split(".")
    for r in json.load(open(os.path.join(folder, name)))["results"]:
        runs.setdefault((mode, r["op"]), {}).setdefault(server, []).append(r)

names = {
    "fstat": "FStat",
    "walkstat_a/b/c": "WalkStat a/b/c",
    "open_pread4k_close": "OpenAt + PRead 4K + Close",
    "pwrite4k": "PWrite 4K",
    "getdents_1000": "Getdents64, 1,000 entries",
    "mkdir_unlink": "MkdirAt + UnlinkAt",
}
print(f"load average at the end: {load.split()[0]}\n")
print("| op | mode | gVisor ops/s | ours ops/s | ours ÷ gVisor | median µs gVisor / ours | p99 µs gVisor / ours | ≥ 1.5× | latency ≤ gVisor's |")
print("|---|---|---:|---:|---:|---:|---:|:---:|:---:|")
for (mode, op), by in sorted(runs.items(), key=lambda kv: (list(names).index(kv[0][1]), kv[0][0])):
    g = statistics.median(r["ops_per_s"] for r in by["gvisor"])
    o = statistics.median(r["ops_per_s"] for r in by["ours"])
    gl = statistics.median(r["median_ns"] for r in by["gvisor"]) / 1000
    ol = statistics.median(r["median_ns"] for r in by["ours"]) / 1000
    gt = statistics.median(r["p99_ns"] for r in by["gvisor"]) / 1000
    ot = statistics.median(r["p99_ns"] for r in by["ours"]) / 1000
    ratio = o / g
    print(f"| {names[op]} | {mode} | {g:,.0f} | {o:,.0f} | {ratio:.2f} | {gl:.1f} / {ol:.1f} "
          f"| {gt:.0f} / {ot:.0f} | {'yes' if ratio >= 1.5 else '**no**'} | {'yes' if ol <= gl else '**no**'} |")
PY
