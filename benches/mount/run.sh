#!/usr/bin/env bash
# Benchmarks lisafs-mount against native access to the same backing directory (a tmpfs)
# and prints a ratio table. Not a pass/fail test. Needs root, /dev/fuse, gcc and fio
# (installed with apt if missing).
#   bash benches/mount/run.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
command -v fio >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null
}
cargo build --release --locked --quiet -p lisafs-gofer -p lisafs-client --bin lisafs-mount

base="$(mktemp -d /tmp/lfb.XXXX)"
mkdir "$base"/{b,m}
mount_pid=""
cleanup() {
  set +e
  [[ -n "$mount_pid" ]] && kill -TERM "$mount_pid" && wait "$mount_pid"
  mountpoint -q "$base/b" && umount -l "$base/b"
  rm -rf "$base"
}
trap cleanup EXIT
mount -t tmpfs -o size=2g tmpfs "$base/b"
gcc -O2 -o "$base/fsbench" benches/mount/fsbench.c
"$repo/target/release/lisafs-mount" --foreground --root "$base/b" "$base/m" \
  -o allow_other,default_permissions &
mount_pid=$!
for _ in $(seq 100); do mountpoint -q "$base/m" && break; sleep 0.05; done
mountpoint -q "$base/m"

native="$base/b/work"
fuse="$base/m/work"
mkdir -p "$native/c" "$native/a/b/c/d" "$native/r"
touch "$native/a/b/c/d/e"
(cd "$native/r" && seq 10000 | sed 's/^/entry-/' | xargs touch)

fsb() { "$base/fsbench" "$@"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1]) / float(sys.argv[2]):.1f}')" "$@"; }
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"; }

echo "| benchmark | native | lisafs-mount | ratio (mount / native) |"
echo "|---|---|---|---|"
n=$(fsb create "$native/c" 10000); m=$(fsb create "$fuse/c" 10000)
row "create+stat+unlink, 10,000 files (µs per file)" "$n" "$m" "$(ratio "$m" "$n")×"
n=$(fsb stat "$native/a/b/c/d/e" 100000); m=$(fsb stat "$fuse/a/b/c/d/e" 100000)
row "stat of a 5-component path (µs)" "$n" "$m" "$(ratio "$m" "$n")×"
n=$(fsb readdir "$native/r" 20); m=$(fsb readdir "$fuse/r" 20)
row "readdir of 10,000 entries (µs per listing)" "$n" "$m" "$(ratio "$m" "$n")×"

fio_run() { # NAME DIR RW BS [extra...]; prints IOPS and MiB/s
  local dir="$2" rw="$3" bs="$4"
  shift 4
  fio --name=b --directory="$dir" --rw="$rw" --bs="$bs" --size=256M --ioengine=psync \
    --numjobs=1 --time_based --runtime=5 --ramp_time=1 --output-format=json "$@" 2>/dev/null |
    python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
side = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f %.0f" % (side["iops"], side["bw"] / 1024))'
}
io_row() { # LABEL RW BS UNIT(iops|mib) [fio args...]
  local label="$1" rw="$2" bs="$3" unit="$4"
  shift 4
  read -r ni nb < <(fio_run n "$native" "$rw" "$bs" "$@")
  read -r mi mb < <(fio_run m "$fuse" "$rw" "$bs" "$@")
  rm -f "$native"/b.*
  if [[ "$unit" == iops ]]; then
    row "$label (IOPS)" "$ni" "$mi" "$(python3 -c "print(f'{$mi / $ni:.2f}')")×"
  else
    row "$label (MiB/s)" "$nb" "$mb" "$(python3 -c "print(f'{$mb / $nb:.2f}')")×"
  fi
}
io_row "4 KiB random read, page cache (fio psync)" randread 4k iops
io_row "4 KiB random read, O_DIRECT (fio psync)" randread 4k iops --direct=1
io_row "1 MiB sequential read (fio psync)" read 1M mib
io_row "1 MiB sequential write (fio psync)" write 1M mib
