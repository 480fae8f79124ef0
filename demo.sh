#!/usr/bin/env bash
# The main job in one command: build the gofer and the lisafs CLI, serve a directory,
# and use it through the client. Usage: ./demo.sh [DIR]   (default: a fresh temp dir)
# The gofer keeps running only for the demo; everything is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")"

cargo build --release --locked --quiet -p lisafs-gofer -p lisafs-client
bin="$PWD/target/release"

work="$(mktemp -d /tmp/lisafs-demo.XXXXXX)"
root="${1:-$work/root}"
mkdir -p "$root"
sock="$work/gofer.sock"
"$bin/gofer" --root "$root" --socket "$sock" --log-level warn &
gofer=$!
cleanup() {
  status=$?
  # The gofer ends by our SIGTERM; its status is not the demo's.
  kill "$gofer" 2>/dev/null || true
  wait "$gofer" 2>/dev/null || true
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

lisafs() { echo "\$ lisafs $*"; "$bin/lisafs" --socket "$sock" "$@"; }
echo "serving $root on $sock"
printf 'hello from the sandbox\n' > "$work/hello.txt"
lisafs mkdir -p docs/notes
lisafs put "$work/hello.txt" docs/hello.txt
lisafs cat docs/hello.txt
lisafs ln -s hello.txt docs/link
lisafs readlink docs/link
lisafs xattr set docs/hello.txt user.origin demo 2>/dev/null \
  || echo "(user xattrs are not supported by the filesystem under $root)"
lisafs mv docs/notes docs/archive
lisafs tree
lisafs ls -l docs
lisafs stat docs/hello.txt
lisafs df
echo "\$ lisafs cat docs/missing   # errors are one line, exit status 1"
if "$bin/lisafs" --socket "$sock" cat docs/missing; then exit 1; fi
echo "demo finished: the host directory now holds:"
find "$root" | sort
