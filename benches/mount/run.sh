#!/usr/bin/env bash
# Benchmarks lisafs-mount against native access to the same backing directory (a tmpfs),
# with libfuse's passthrough_hp example over that directory as a reference, and prints a
# markdown table with ratios. Not a pass/fail test. Needs root, /dev/fuse, gcc, python3
# and apt: installs fio and git with apt and fsx 0.3.2 with cargo install if missing; for
# the reference, g++, pkg-config, curl and libfuse3-dev (with apt) and the Debian source of
# the installed libfuse3 (from the pool apt downloads from; see build_reference).
#   bash benches/mount/run.sh [ROW...]        (from the repository root)
# ROWs (default all): create stat readdir io fsx cp git; also ROWS="io fsx".
# MOUNT_OPTS: extra lisafs-mount options, appended to its command line
#   (MOUNT_OPTS="--no-passthrough"). FSX_OPS: fsx operations (default 20000).
#   REFERENCE=0: no passthrough_hp column (it prints —).
#
# The reference runs as `passthrough_hp --foreground --nocache BACKING MOUNTPOINT`.
# --nocache is its only caching switch: it sets the entry and attribute timeouts to 0, as
# lisafs-mount's defaults are, and with them turns off what the timeouts would have turned
# on, the writeback cache and keep_cache (lisafs-mount asks for neither), so both serve a
# backing directory others may change. The rest is left at its defaults: splice for reads
# and writes; libfuse's worker threads (up to 10 in libfuse 3.14; lisafs-mount runs 1, and
# --num-threads only sets how many idle ones it keeps); its fixed mount options
# default_permissions,fsname=hpps (no allow_other: root runs everything here). It is the
# passthrough_hp of the installed libfuse3 (3.14 in Debian bookworm), which predates FUSE
# passthrough: every read and write goes through the daemon. (libfuse 3.17's passthrough_hp
# asks for passthrough by default when the kernel, 6.9 or later, offers it.)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$repo/benches/mount/run.sh"
  exit 0
fi

all_rows="create stat readdir io fsx cp git"
rows="${*:-${ROWS:-$all_rows}}"
rows=" ${rows//,/ } "
for r in $rows; do
  [[ " $all_rows " == *" $r "* ]] || { echo "unknown row '$r' (rows: $all_rows)" >&2; exit 2; }
done
want() { [[ "$rows" == *" $1 "* ]]; }
read -ra mount_opts <<<"${MOUNT_OPTS:-}"
FSX_VERSION=0.3.2
FSX_OPS="${FSX_OPS:-20000}"
fsx_conf="$repo/tests/conformance/fsx.toml"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lisafs-bench"
# git's timings should not depend on whoever runs this.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

apt_updated=""
apt_install() { # PACKAGE...: apt-get install, after one apt-get update per run
  if [[ -z "$apt_updated" ]]; then
    apt-get update -qq || return
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
pkgs=()
if want io && ! command -v fio >/dev/null; then pkgs+=(fio); fi
if want git && ! command -v git >/dev/null; then pkgs+=(git); fi
if ((${#pkgs[@]})); then apt_install "${pkgs[@]}"; fi
if want fsx && ! fsx --version 2>/dev/null | grep -q " $FSX_VERSION$"; then
  cargo install --locked --quiet fsx --version "$FSX_VERSION"
fi
cargo build --release --locked --quiet -p lisafs-gofer -p lisafs-client --bin gofer --bin lisafs-mount

base="$(mktemp -d /tmp/lfb.XXXX)"
mkdir "$base"/{b,m,h,log}
mount_pid=""
hp_pid=""
cleanup() {
  set +e
  for pid in "$mount_pid" "$hp_pid"; do
    [[ -n "$pid" ]] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  for m in "$base/m" "$base/h" "$base/b"; do
    mountpoint -q "$m" && umount -l "$m"
  done
  if [[ -s "$base/log/lisafs-mount" ]]; then
    echo "lisafs-mount's stderr ($(wc -l <"$base/log/lisafs-mount") lines, at most the last 10):" >&2
    tail -n 10 "$base/log/lisafs-mount" >&2
  fi
  rm -rf "$base"
}
trap cleanup EXIT
# Without these, a Ctrl-C that fio or fsx catches and exits from normally lets the
# script go on to the next benchmark.
trap 'exit 130' INT
trap 'exit 143' TERM

wait_mount() { # DIR PID: until DIR is a mount point; fails if PID exits first or after 5 s
  for _ in $(seq 100); do
    mountpoint -q "$1" && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  mountpoint -q "$1"
}

# passthrough_hp.cc from the source package of the installed libfuse3-dev, fetched from the
# pool directory apt downloads libfuse3-dev itself from and checked against the .dsc's
# SHA-256, compiled on its own with g++ and kept in $cache (one binary per libfuse3
# version). Sets hp_bin. Errors are handled by hand: this runs in an `if`, where set -e
# does not apply.
hp_bin=""
build_reference() {
  local pkgs=() src ver pool tmp sum tarball flags
  command -v g++ >/dev/null || pkgs+=(g++)
  command -v pkg-config >/dev/null || pkgs+=(pkg-config)
  command -v curl >/dev/null || pkgs+=(curl)
  command -v xz >/dev/null || pkgs+=(xz-utils)
  dpkg-query -W libfuse3-dev >/dev/null 2>&1 || pkgs+=(libfuse3-dev)
  if ((${#pkgs[@]})); then apt_install "${pkgs[@]}" || return; fi
  read -r src ver < <(dpkg-query -W -f='${source:Package} ${source:Version}\n' libfuse3-dev) ||
    return
  hp_bin="$cache/passthrough_hp-$ver"
  [[ -x "$hp_bin" ]] && return 0
  pool=$(apt-get download --print-uris libfuse3-dev | sed -n "s|^'\(.*\)/[^/]*' .*|\1|p")
  if [[ -z "$pool" && -z "$apt_updated" ]]; then # no package lists yet
    apt-get update -qq || return
    apt_updated=1
    pool=$(apt-get download --print-uris libfuse3-dev | sed -n "s|^'\(.*\)/[^/]*' .*|\1|p")
  fi
  [[ -n "$pool" ]] || return
  tmp="$base/reference"
  mkdir -p "$tmp" || return
  curl -fsS -o "$tmp/dsc" "$pool/${src}_${ver#*:}.dsc" || return
  read -r sum tarball < <(awk '/^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 }
    s && $3 ~ /\.orig\.tar\.[a-z0-9]+$/ { print $1, $3 }' "$tmp/dsc") || return
  curl -fsS -o "$tmp/$tarball" "$pool/$tarball" || return
  echo "$sum  $tmp/$tarball" | sha256sum -c --quiet || return
  tar -xf "$tmp/$tarball" -C "$tmp" --strip-components=1 --wildcards '*/example/*' || return
  read -ra flags < <(pkg-config --cflags --libs fuse3) || return
  # libfuse's own build leaves passthrough_hp.cc's HAVE_* macros undefined (its config
  # header reaches C files only), and with them utimensat by path, fallocate and xattrs;
  # glibc has all three.
  g++ -O2 -std=c++17 -DHAVE_UTIMENSAT -DHAVE_POSIX_FALLOCATE -DHAVE_SETXATTR \
    -I"$tmp/example" -o "$tmp/passthrough_hp" "$tmp/example/passthrough_hp.cc" \
    "${flags[@]}" -pthread || return
  mkdir -p "$cache" && mv "$tmp/passthrough_hp" "$hp_bin"
}

mount -t tmpfs -o size=2g tmpfs "$base/b"
gcc -O2 -o "$base/fsbench" benches/mount/fsbench.c
"$repo/target/release/lisafs-mount" --foreground --root "$base/b" "$base/m" \
  -o allow_other,default_permissions "${mount_opts[@]}" 2>"$base/log/lisafs-mount" &
mount_pid=$!
wait_mount "$base/m" "$mount_pid"

hp=""
if [[ "${REFERENCE:-1}" == 0 ]]; then
  :
elif ! build_reference >"$base/log/reference" 2>&1; then
  tail -n 20 "$base/log/reference" >&2
  echo "could not build libfuse's passthrough_hp (above); its column is —" >&2
else
  "$hp_bin" --foreground --nocache "$base/b" "$base/h" 2>"$base/log/passthrough_hp" &
  hp_pid=$!
  if wait_mount "$base/h" "$hp_pid"; then
    hp="$base/h/work"
  else
    cat "$base/log/passthrough_hp" >&2
    echo "passthrough_hp ($hp_bin) did not mount; its column is —" >&2
  fi
fi

native="$base/b/work"
fuse="$base/m/work"
src="$base/b/src.bin" # cp's source: on the tmpfs, outside what the benchmarks touch
mkdir -p "$native"
if want create; then mkdir "$native/c"; fi
if want stat; then
  mkdir -p "$native/a/b/c/d"
  touch "$native/a/b/c/d/e"
fi
if want readdir; then
  mkdir "$native/r"
  (cd "$native/r" && seq 10000 | sed 's/^/entry-/' | xargs touch)
fi
if want cp; then head -c 200M /dev/urandom >"$src"; fi
if want git; then
  mkdir "$native/g"
  for d in $(seq -w 0 40); do # 41 directories of 10 files
    mkdir "$native/g/d$d"
    for i in $(seq 0 9); do echo "file $d/$i" >"$native/g/d$d/f$i.txt"; done
  done
  git -C "$native/g" init -q
  git -C "$native/g" add -A
  git -C "$native/g" -c user.name=bench -c user.email=bench@localhost commit -qm files
fi
if want fsx; then # for where hole punching fails (fsx_rate)
  sed 's/^punch_hole = 1$/punch_hole = 0/' "$fsx_conf" >"$base/log/fsx-no-punch.toml"
  grep -q '^punch_hole = 0$' "$base/log/fsx-no-punch.toml"
fi

calc() { # FORMAT EXPR: python3's f"{EXPR:FORMAT}"
  python3 -c "print(f'{($2):$1}')"
}
ratio() { # DIGITS VALUE NATIVE: VALUE / NATIVE (a † after either ignored), or — when either
  # is not a number
  python3 -c "
import sys
value = lambda s: float(s.rstrip('†'))
try: print(f'{value(sys.argv[2]) / value(sys.argv[3]):.{sys.argv[1]}f}×')
except (ValueError, ZeroDivisionError): print('—')" "$@"
}
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
side() { # DIR FUNC [ARGS...]: FUNC DIR ARGS's value, or "failed" (its errors on stderr)
  local out
  if out=$("$2" "$1" "${@:3}"); then echo "$out"; else echo failed; fi
}
measure() { # DIGITS LABEL FUNC [ARGS...]: a row of FUNC DIR ARGS for each DIR; ratios to
  # native with DIGITS decimals. FUNC prints one number; it runs in an `if` (no set -e).
  local digits="$1" label="$2" n m h="—" hr="—"
  shift 2
  n=$(side "$native" "$@")
  m=$(side "$fuse" "$@")
  if [[ -n "$hp" ]]; then
    h=$(side "$hp" "$@")
    hr=$(ratio "$digits" "$h" "$n")
  fi
  row "$label" "$n" "$m" "$(ratio "$digits" "$m" "$n")" "$h" "$hr"
}

fsb() { "$base/fsbench" "$@"; }
create_us() { fsb create "$1/c" 10000; }
stat_us() { fsb stat "$1/a/b/c/d/e" 100000; }
readdir_us() { fsb readdir "$1/r" 20; }
fio_run() { # DIR RW BS iops|mib [fio args...]: IOPS or MiB/s
  local dir="$1" rw="$2" bs="$3" unit="$4"
  shift 4
  fio --name=b --directory="$dir" --rw="$rw" --bs="$bs" --size=256M --ioengine=psync \
    --numjobs=1 --time_based --runtime=5 --ramp_time=1 --output-format=json "$@" 2>/dev/null |
    python3 -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
side = j["read"] if j["read"]["io_bytes"] else j["write"]
print("%.0f" % (side["iops"] if sys.argv[1] == "iops" else side["bw"] / 1024))' "$unit"
}
io_row() { # LABEL RW BS iops|mib [fio args...]
  local label="$1" rw="$2" bs="$3" unit="$4"
  shift 4
  if [[ "$unit" == iops ]]; then label+=" (IOPS)"; else label+=" (MiB/s)"; fi
  measure 2 "$label" fio_run "$rw" "$bs" "$unit" "$@"
  rm -f "$native"/b.*
}
fsx_rate() { # DIR: fsx operations per second on DIR/fsx.bin; fails unless fsx says A-OK.
  # Where fallocate(PUNCH_HOLE) fails (libfuse 3.14's passthrough_hp answers any fallocate
  # mode but 0 with EOPNOTSUPP), without punch_hole, and the value gets a †.
  local log="$base/log/fsx" conf="$fsx_conf" mark="" t0 t1 rc
  if ! : >"$1/punch" || ! fallocate -p -o 0 -l 4096 "$1/punch" 2>/dev/null; then
    conf="$base/log/fsx-no-punch.toml"
    mark="†"
    touch "$base/log/no-punch"
  fi
  rm -f "$1/punch"
  t0=$EPOCHREALTIME
  fsx -N "$FSX_OPS" -S 1 -f "$conf" -P "$base/log" "$1/fsx.bin" >"$log" 2>&1
  rc=$?
  t1=$EPOCHREALTIME
  if ((rc != 0)) || ! grep -q 'All operations completed A-OK' "$log"; then
    tail -n 20 "$log" >&2
    echo "fsx failed on $1" >&2
    return 1
  fi
  rm -f "$1/fsx.bin"
  echo "$(calc .0f "$FSX_OPS / ($t1 - $t0)")$mark"
}
cp_secs() { # DIR: seconds to cp $src into DIR (the copy is checked, then removed)
  local t0 t1
  t0=$EPOCHREALTIME
  cp "$src" "$1/cp.bin" || return
  t1=$EPOCHREALTIME
  cmp "$src" "$native/cp.bin" >&2 || return
  rm -f "$1/cp.bin"
  calc .2f "$t1 - $t0"
}
git_secs() { # DIR: median seconds of 5 `git status` of DIR/g, after one to warm up
  local times=() t0 out
  out=$(git -C "$1/g" status --porcelain) || return
  [[ -z "$out" ]] || { echo "git status on $1/g: $out" >&2; return 1; }
  for _ in 1 2 3 4 5; do
    t0=$EPOCHREALTIME
    git -C "$1/g" status --porcelain >/dev/null || return
    times+=("$(calc .6f "$EPOCHREALTIME - $t0")")
  done
  calc .3f "sorted([${times[*]/%/,}])[2]"
}

echo "| benchmark | native | lisafs-mount | ratio (mount / native) | passthrough_hp | ratio (hp / native) |"
echo "|---|---|---|---|---|---|"
if want create; then
  measure 1 "create+stat+unlink, 10,000 files (µs per file)" create_us
fi
if want stat; then measure 1 "stat of a 5-component path (µs)" stat_us; fi
if want readdir; then measure 1 "readdir of 10,000 entries (µs per listing)" readdir_us; fi
if want io; then
  io_row "4 KiB random read, page cache (fio psync)" randread 4k iops
  io_row "4 KiB random read, O_DIRECT (fio psync)" randread 4k iops --direct=1
  io_row "1 MiB sequential read (fio psync)" read 1M mib
  io_row "1 MiB sequential write (fio psync)" write 1M mib
fi
if want fsx; then
  measure 2 "fsx, $(calc , "$FSX_OPS") operations, every kind (ops/s)" fsx_rate
fi
if want cp; then measure 1 "cp of a 200 MiB file from tmpfs (s)" cp_secs; fi
if want git; then
  measure 1 "git status --porcelain, 410 files (s, median of 5)" git_secs
fi
if [[ -e "$base/log/no-punch" ]]; then
  printf '\n† fallocate(PUNCH_HOLE) fails there: fsx ran without punch_hole.\n'
fi
