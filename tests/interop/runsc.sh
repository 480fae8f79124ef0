#!/usr/bin/env bash
# Interop: a real gVisor sandbox (gVisor's `runsc`, systrap platform) whose root, a second
# bind mount and a read-only one are served by our gofer, once with --directfs=false (every file
# operation is a lisafs RPC) and once with --directfs=true --donate-mount-fd (runsc's
# default: the sentry works on donated host FDs and asks the gofer for the mount points).
# The same workload then runs on runsc's own gofer, and the outputs must be equal; the
# host side is checked too (a 20 MiB file's md5, files written into the second mount).
#
#   tests/interop/runsc.sh            (as root)
#
# RUNSC_PEER: the directory with `runsc`, `make-rootfs.sh` (default ../shared/runsc-peer
# beside the repository); without it, or without root, the script prints "skipped: ..."
# and exits 0. GOFER: our gofer binary (default: built with cargo, release). KEEP=1 keeps
# the work directory (outputs, runsc and gofer logs).
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
peer="${RUNSC_PEER:-$repo/../shared/runsc-peer}"
if [ ! -x "$peer/runsc" ] || [ ! -x "$peer/make-rootfs.sh" ]; then
  echo "skipped: no runsc peer at $peer (set RUNSC_PEER to a directory with runsc and make-rootfs.sh)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "skipped: runsc needs root"
  exit 0
fi
peer="$(cd "$peer" && pwd)"
if [ -z "${GOFER:-}" ]; then
  (cd "$repo" && cargo build --release -q -p lisafs-gofer)
  GOFER="$repo/target/release/gofer"
fi
GOFER="$(realpath "$GOFER")"

work="$(mktemp -d /tmp/lisafs-runsc.XXXX)"
cleanup() { [ -n "${KEEP:-}" ] && echo "work directory kept: $work" || rm -rf "$work"; }
trap cleanup EXIT
"$peer/make-rootfs.sh" "$work/template" >/dev/null

# The workload. Its output must not depend on the gofer: no times, inode numbers, sizes
# of the host filesystem or directory link counts.
cat > "$work/template/workload.sh" <<'SH'
step() { echo "== $*"; }
step ls; ls /; ls /data; ls -a /mnt2
step cat; cat /etc/passwd /mnt2/seed
step write; echo hello > /data/a.txt; printf 'two\n' >> /data/a.txt; cat /data/a.txt
step mkdir -p; mkdir -p /data/d1/d2/d3 && ls -d /data/d1/d2/d3
step tar; tar cf /data/t.tar -C / etc bin/ls bin/cat && tar tf /data/t.tar | sort
mkdir /data/x && tar xf /data/t.tar -C /data/x && ls -R /data/x | head -20
step cp -a + diff -r; cp -a /etc /data/etc2 && diff -r /etc /data/etc2 && echo same
step mv; mv /data/a.txt /data/b.txt; ls /data/a.txt 2>&1; cat /data/b.txt
step symlink; ln -s b.txt /data/l && readlink /data/l && cat /data/l; ls -l /data/l | cut -c1-10
step hard link; ln /data/b.txt /data/h && stat -c '%h %s %F' /data/b.txt /data/h
step chmod; chmod 640 /data/b.txt && stat -c '%a' /data/b.txt; chmod 755 /data/d1 && stat -c '%a' /data/d1
step touch -d; touch -d '2020-01-02 03:04:05' /data/b.txt && stat -c '%Y' /data/b.txt
step dd; dd if=/dev/urandom of=/data/big bs=1M count=20 2>/dev/null; stat -c '%s' /data/big
md5sum /data/big > /data/big.md5; cmp /data/big /data/big && echo readable
step truncate; truncate -s 3 /data/b.txt && cat /data/b.txt && echo && stat -c '%s' /data/b.txt
truncate -s 0 /data/h && stat -c '%s' /data/b.txt
step append; echo one >> /data/b.txt; echo two >> /data/b.txt; cat /data/b.txt
step rm; rm /data/h /data/l /data/t.tar && rm -r /data/x /data/etc2 && ls /data
step rmdir; rmdir /data/d1/d2/d3 /data/d1/d2 /data/d1 && ls /data; rmdir /data 2>&1 | sed 's/.*: //'
step df; df -k / /mnt2 | awk 'NR > 1 { print $6, ($2 > 0 ? "sized" : "zero") }'
step find; find / -xdev | wc -l; find /data /mnt2 -xdev | sort
step mount2; echo new > /mnt2/new && cat /mnt2/new; mkdir /mnt2/sub && mv /mnt2/new /mnt2/sub/
ln -s sub/new /mnt2/ln && cat /mnt2/ln; rm /mnt2/seed; find /mnt2 | sort
step read-only mount; cat /ro/seed; ls /ro; (echo x > /ro/new) 2>&1 | sed 's/.*: //'
rm /ro/seed 2>&1 | sed 's/.*: //'; mkdir /ro/d 2>&1 | sed 's/.*: //'; ls /ro
SH

# run LABEL DIRECTFS [our gofer's args]: runs the workload in a fresh copy of the rootfs,
# on our gofer when $3 is given (possibly empty), else on runsc's own.
run() {
  local label=$1 directfs=$2 d="$work/$1"
  mkdir -p "$d/bundle" "$d/logs" "$d/mnt2" "$d/ro"
  cp -a "$work/template" "$d/rootfs"
  echo seed > "$d/mnt2/seed"
  echo ro-seed > "$d/ro/seed"
  cat > "$d/bundle/config.json" <<JSON
{"ociVersion": "1.0.0",
 "process": {"user": {"uid": 0, "gid": 0}, "args": ["/bin/sh", "/workload.sh"], "cwd": "/",
   "env": ["PATH=/bin", "TZ=UTC"],
   "capabilities": {"bounding": $caps, "effective": $caps, "permitted": $caps}},
 "root": {"path": "$d/rootfs", "readonly": false},
 "hostname": "lisafs",
 "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/mnt2", "type": "bind", "source": "$d/mnt2", "options": ["rbind", "rw"]},
            {"destination": "/ro", "type": "bind", "source": "$d/ro", "options": ["rbind", "ro"]}],
 "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]}}
JSON
  local -a env=()
  if [ $# -ge 3 ]; then
    env=(LISAFS_EXTERNAL_GOFER="$GOFER" LISAFS_EXTERNAL_GOFER_ARGS="$3"
         LISAFS_EXTERNAL_GOFER_LOG_DIR="$d/logs")
  fi
  local id="lisafs-$label-$$" rc=0
  env "${env[@]}" timeout 60 "$peer/runsc" --root="$d/state" --platform=systrap \
    --network=none --overlay2=none --directfs="$directfs" --debug-log="$d/logs/" \
    run --bundle "$d/bundle" "$id" </dev/null >"$d/out" 2>&1 || rc=$?
  "$peer/runsc" --root="$d/state" delete -force "$id" >/dev/null 2>&1 || true
  umount "$d/state/null-netns" 2>/dev/null || true
  echo "exit $rc" >>"$d/out"
  # Host-side checks: the sandbox's md5 of the 20 MiB file matches the host's, and the
  # second mount holds what was written into it.
  local inside host
  inside=$(cut -d' ' -f1 "$d/rootfs/data/big.md5" 2>&1 || true)
  host=$(md5sum "$d/rootfs/data/big" 2>&1 | cut -d' ' -f1 || true)
  {
    echo "== host"
    if [ "$inside" = "$host" ]; then echo "big: md5 matches"; else echo "big: md5 differs"; fi
    cat "$d/mnt2/sub/new" || true
    readlink "$d/mnt2/ln" || true
    (cd "$d" && ls mnt2 ro) || true
  } >>"$d/out" 2>&1
}
caps='["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_SETUID", "CAP_SETGID"]'

start=$SECONDS
status=0
for mode in "false:" "true:--donate-mount-fd"; do
  directfs=${mode%%:*} args=${mode#*:}
  run "ours-directfs-$directfs" "$directfs" "$args"
  run "runsc-directfs-$directfs" "$directfs"
  if diff -u "$work/runsc-directfs-$directfs/out" "$work/ours-directfs-$directfs/out" >"$work/diff-$directfs"; then
    verdict=ok
  else
    verdict=FAILED status=1
    cat "$work/diff-$directfs"
  fi
  # Guard against both failing alike, and against runsc not starting our gofer (one per
  # mount: the root, /mnt2 and /ro).
  for must in "exit 0" "big: md5 matches" "same" "readable"; do
    grep -qx "$must" "$work/ours-directfs-$directfs/out" || { verdict=FAILED status=1; echo "missing line: $must"; }
  done
  gofers=$(find "$work/ours-directfs-$directfs/logs" -name 'gofer-*.log' | wc -l)
  [ "$gofers" = 3 ] || { verdict=FAILED status=1; echo "our gofer ran $gofers times, not 3"; }
  echo "directfs=$directfs${args:+ $args}: $verdict"
done
echo "runsc interop: $([ $status = 0 ] && echo passed || echo FAILED) in $((SECONDS - start)) s"
[ $status = 0 ] || KEEP=1
exit $status
