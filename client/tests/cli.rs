//! The `lisafs` binary against the in-memory tree served on a Unix socket path.
#![allow(clippy::unwrap_used)]

mod fake;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fake::tree::{Kind, Tree};
use parking_lot::Mutex;

/// A served tree and a temp dir holding its socket and any local files.
struct Setup {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gofer.sock");
    let mut tree = Tree::new();
    tree.add("docs", Kind::Dir)
        .add("docs/readme", Kind::File(b"hello\n".to_vec()))
        .add("docs/link", Kind::Symlink(b"readme".to_vec()));
    let tree = Mutex::new(tree);
    fake::listen(&socket, move |req| tree.lock().handle(req));
    Setup { dir, socket }
}

impl Setup {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_lisafs"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs, expects success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?} failed: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs, expects exit status 1, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?} did not fail");
        String::from_utf8(out.stderr).unwrap()
    }

    fn local(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn missing_file_is_reported_like_coreutils_with_exit_status_1() {
    let s = setup();

    let stderr = s.fails(&["cat", "/x"]);

    assert_eq!(stderr, "lisafs: cat /x: No such file or directory\n");
}

#[test]
fn unreachable_socket_is_a_connect_error() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("none.sock");

    let out = Command::new(env!("CARGO_BIN_EXE_lisafs"))
        .args(["--socket", text(&socket), "ls"])
        .output()
        .unwrap();

    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "lisafs: connect {}: No such file or directory\n",
            socket.display()
        )
    );
}

#[test]
fn ls_cat_stat_and_readlink() {
    let s = setup();

    assert_eq!(s.ok(&["ls"]), "docs\n");
    assert_eq!(s.ok(&["ls", "docs"]), "link\nreadme\n");
    assert_eq!(s.ok(&["cat", "docs/link", "docs/readme"]), "hello\nhello\n");
    assert_eq!(s.ok(&["readlink", "docs/link"]), "readme\n");
    let long = s.ok(&["ls", "-l", "docs"]);
    assert!(long.contains("lrwxrwxrwx"), "{long}");
    assert!(long.contains("link -> readme"), "{long}");
    let stat = s.ok(&["stat", "docs/readme"]);
    assert!(stat.contains("  File: docs/readme\n"), "{stat}");
    assert!(stat.contains("Size: 6 "), "{stat}");
    assert!(stat.contains("regular file"), "{stat}");
}

#[test]
fn put_get_mkdir_mv_ln_rm_round_trip() {
    let s = setup();
    let local = s.local("in.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&local, &data).unwrap();

    s.ok(&["mkdir", "-p", "a/b/c"]);
    s.ok(&["put", text(&local), "a/b/c/file"]);
    s.ok(&["mv", "a/b/c/file", "a/moved"]);
    s.ok(&["ln", "-s", "moved", "a/sym"]);
    s.ok(&["get", "a/sym", text(&s.local("out.bin"))]);
    let tree = s.ok(&["tree", "a"]);
    s.ok(&["rm", "-r", "a"]);

    assert_eq!(std::fs::read(s.local("out.bin")).unwrap(), data);
    assert_eq!(
        tree,
        "a\n├── b\n│   └── c\n├── moved\n└── sym -> moved\n\n2 directories, 2 files\n"
    );
    assert_eq!(s.ok(&["ls"]), "docs\n");
}

#[test]
fn rm_of_a_directory_without_r_fails_and_other_operands_still_run() {
    let s = setup();

    let stderr = s.fails(&["rm", "docs", "docs/link"]);

    assert_eq!(stderr, "lisafs: rm docs: Is a directory\n");
    assert_eq!(s.ok(&["ls", "docs"]), "readme\n");
}

#[test]
fn mkdir_without_p_reports_an_existing_directory() {
    let s = setup();

    assert_eq!(
        s.fails(&["mkdir", "docs"]),
        "lisafs: mkdir docs: File exists\n"
    );
}

#[test]
fn df_prints_usage_in_1k_blocks() {
    let s = setup();

    let out = s.ok(&["df"]);

    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["lisafs", "4000", "1000", "2800", "27%", "100", "90"]);
}

#[test]
fn unsupported_operation_is_reported_with_its_errno() {
    let s = setup();

    let stderr = s.fails(&["xattr", "list", "docs"]);

    assert_eq!(stderr, "lisafs: xattr list docs: Operation not supported\n");
}
