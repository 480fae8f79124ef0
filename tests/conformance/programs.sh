#!/usr/bin/env bash
# Real programs on a lisafs-mount mount, each with a verified result:
#   tar    extract and re-create a tar of a few thousand files; checksums must match
#   git    init/add/commit/log of a small repository, then fsck
#   cargo  build and run a small crate (target directory on the mount too)
#   sqlite a database with thousands of inserts and an integrity check
# usage: programs.sh MOUNT SCRATCH   (SCRATCH: a native directory for reference copies)
set -euo pipefail
mnt="$1"
scratch="$2"
files="${PROGRAM_FILES:-3000}"

step() { printf -- '--- %s\n' "$*"; }

# checksums of every file under $1, by relative path
sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

step "tar: $files files"
src="$scratch/src"
mkdir -p "$src"
python3 - "$src" "$files" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
for i in range(n):
    d = os.path.join(root, f"d{i % 40:02}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05}.bin"), "wb") as f:
        f.write(rng.randbytes(rng.choice([0, 1, 100, 4096, 5000, 70000])))
for i in range(0, n, 100):
    os.symlink(f"f{i:05}.bin", os.path.join(root, f"d{i % 40:02}", f"e{i % 7}", f"l{i:05}"))
PY
tar -C "$src" -cf "$scratch/a.tar" .
mkdir "$mnt/tar"
tar -C "$mnt/tar" -xf "$scratch/a.tar"
diff <(sums "$src") <(sums "$mnt/tar")
tar -C "$mnt/tar" -cf "$mnt/b.tar" .
mkdir "$scratch/back"
tar -C "$scratch/back" -xf "$mnt/b.tar"
diff <(sums "$src") <(sums "$scratch/back")
diff <(cd "$src" && find . | sort) <(cd "$mnt/tar" && find . | sort)
echo "tar: $(find "$mnt/tar" -type f | wc -l) files, checksums equal both ways"

step "git"
export GIT_AUTHOR_NAME=ci GIT_AUTHOR_EMAIL=ci@example.com
export GIT_COMMITTER_NAME=ci GIT_COMMITTER_EMAIL=ci@example.com
repo="$mnt/repo"
git init -q -b main "$repo"
cp -r "$src/d00" "$src/d01" "$repo/"
git -C "$repo" add -A
git -C "$repo" commit -q -m first
echo change >>"$repo/d00/e0/f00000.bin"
git -C "$repo" mv d01 moved
git -C "$repo" commit -q -am second
test "$(git -C "$repo" log --oneline | wc -l)" -eq 2
git -C "$repo" fsck --strict --no-progress
git -C "$repo" status --porcelain | (! grep -q .)
git clone -q "$repo" "$scratch/clone"
diff <(sums "$repo/moved") <(sums "$scratch/clone/moved")
echo "git: 2 commits, fsck clean, clone matches"

step "cargo build"
crate="$mnt/hello"
cargo new -q --offline --vcs none "$crate"
cat >"$crate/src/main.rs" <<'RS'
fn main() {
    let sum: u64 = (1..=100u64).sum();
    println!("sum {sum}");
}
RS
(cd "$crate" && CARGO_TARGET_DIR="$crate/target" cargo build -q --offline)
test "$("$crate/target/debug/hello")" = "sum 5050"
echo "cargo: built and ran on the mount"

step "sqlite3"
db="$mnt/test.db"
rows=5000
{
  echo "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, v BLOB);"
  echo "BEGIN;"
  for i in $(seq 1 $((rows / 2))); do
    echo "INSERT INTO t (name, v) VALUES ('row$i', randomblob(200));"
  done
  echo "COMMIT;"
} | sqlite3 "$db"
# The second half one transaction per insert: many journal create/sync/unlink cycles.
for i in $(seq 1 5); do
  {
    for j in $(seq 1 $((rows / 10))); do
      echo "INSERT INTO t (name, v) VALUES ('more$i.$j', randomblob(100));"
    done
  } | sqlite3 "$db"
done
test "$(sqlite3 "$db" 'PRAGMA integrity_check;')" = ok
test "$(sqlite3 "$db" 'SELECT count(*) FROM t;')" -eq "$rows"
sqlite3 "$db" 'PRAGMA journal_mode=WAL; INSERT INTO t (name) VALUES (1); DELETE FROM t WHERE name = 1;' >/dev/null
test "$(sqlite3 "$db" 'PRAGMA integrity_check;')" = ok
echo "sqlite3: $rows rows, integrity_check ok (rollback journal and WAL)"
