#!/usr/bin/env bash
# A real gVisor sandbox as the client: runs a small shell workload (creates, stats,
# unlinks, mkdir/rmdir, tar, 4 KiB dd) in `runsc --directfs=false`, so that every file
# operation of the sandbox is a lisafs RPC, once with runsc's own gofer and once with ours,
# alternating, and prints the median seconds per step (issue 10, section 1). A benchmark,
# not a test: it needs root and the peer runtime `runsc` from ../shared/runsc-peer/ (or
# $RUNSC_PEER), and says so, exiting 0, when it is absent.
#
#   bash benches/gvisor/sandbox.sh          # ROUNDS=3
#   ROUNDS=5 GOFER=target/release/gofer bash benches/gvisor/sandbox.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
peer=${RUNSC_PEER:-$repo/../shared/runsc-peer}
gofer=${GOFER:-$repo/target/release/gofer}
rounds=${ROUNDS:-3}

if [[ ! -x $peer/runsc || ! -x $peer/run-in-sandbox.sh ]]; then
    echo "benches/gvisor: no runsc peer at $peer (set RUNSC_PEER); nothing measured"
    exit 0
fi
if [[ ! -x $gofer ]]; then
    echo "benches/gvisor: build the gofer first: cargo build --release -p lisafs-gofer" >&2
    exit 1
fi

work=$(mktemp -d /tmp/lisafs-sandbox.XXXXXX)
trap 'umount "$work/rootfs" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/rootfs" "$work/times"
mount -t tmpfs -o size=1g tmpfs "$work/rootfs" 2>/dev/null || true
"$peer/make-rootfs.sh" "$work/rootfs" >/dev/null
mkdir "$work/rootfs/w"
# Each step in its own shell, timed by busybox's `time -p`; the sandbox's own page cache
# and dentry cache stand between the workload and the gofer, as in real use.
cat >"$work/rootfs/workload.sh" <<'EOF'
cd /w
step() { echo "$1" >>/tmp/times; time -p sh -c "{ $2; } >/dev/null 2>&1" 2>>/tmp/times; }
step create-5000 'seq 5000 | sed s/^/f/ | xargs touch'
step ls-l-3x5000 'for i in 1 2 3; do ls -l /w; done'
step unlink-5000 'seq 5000 | sed s/^/f/ | xargs rm'
step mkdir-rmdir-3000 'mkdir d && cd d && seq 3000 | xargs mkdir && seq 3000 | xargs rmdir && cd .. && rmdir d'
step tar-c-x-rm 'tar cf t.tar /bin /etc && mkdir x && tar xf t.tar -C x && rm -r x t.tar'
step dd-4k-80MiB 'dd if=/dev/zero of=z bs=4k count=20000 && dd if=z of=/dev/null bs=4k && rm z'
grep -v '^user\|^sys' /tmp/times | paste - - | awk '{print $1, $3}'
EOF

for round in $(seq "$rounds"); do
    for server in gvisor ours; do
        echo "benches/gvisor: sandbox, round $round, $server" >&2
        if [[ $server == ours ]]; then
            GOFER=$gofer "$peer/run-in-sandbox.sh" "$work/rootfs" 'sh /workload.sh'
        else
            "$peer/run-in-sandbox.sh" "$work/rootfs" 'sh /workload.sh'
        fi >"$work/times/$server.$round"
    done
done

python3 - "$work/times" <<'PY'
import os, statistics, sys

folder = sys.argv[1]
steps = {}
for name in sorted(os.listdir(folder)):
    server = name.split(".")[0]
    for line in open(os.path.join(folder, name)):
        step, secs = line.split()
        steps.setdefault(step, {}).setdefault(server, []).append(float(secs))
print("| step | runsc's gofer (s) | ours (s) | speed-up (theirs ÷ ours) |")
print("|---|---:|---:|---:|")
for step, by in steps.items():
    g, o = statistics.median(by["gvisor"]), statistics.median(by["ours"])
    print(f"| {step} | {g:.2f} | {o:.2f} | {g / o:.2f} |" if o else f"| {step} | {g:.2f} | {o:.2f} | — |")
PY
