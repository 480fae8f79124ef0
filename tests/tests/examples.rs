//! The client library's examples (`client/examples/`), run as programs against a real
//! gofer, their output checked against the share's contents on the host.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::process::{Command, Output};

use lisafs_client::ClientOptions;
use lisafs_tests::Gofer;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");
const CONNECT: &str = env!("CARGO_BIN_EXE_example-connect");
const WALK: &str = env!("CARGO_BIN_EXE_example-walk");
const READ_FILE: &str = env!("CARGO_BIN_EXE_example-read-file");
const LIST_DIR: &str = env!("CARGO_BIN_EXE_example-list-dir");
const CHANNELS: &str = env!("CARGO_BIN_EXE_example-channels");

/// The share: `docs/{notes.txt, link -> notes.txt, sub/}`, `dl -> docs`, and `big.bin`
/// (larger than the gofer's message limit, so read with several PReads).
fn share(root: &Path) {
    fs::create_dir_all(root.join("docs/sub")).unwrap();
    fs::write(root.join("docs/notes.txt"), "hello\nworld\n").unwrap();
    symlink("notes.txt", root.join("docs/link")).unwrap();
    symlink("docs", root.join("dl")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    fs::write(root.join("big.bin"), big).unwrap();
}

fn start() -> Gofer {
    Gofer::start_after(GOFER, &[], share)
}

/// Runs `example` with the gofer's socket and `args`.
fn run(example: &str, gofer: &Gofer, args: &[&str]) -> Output {
    Command::new(example)
        .arg(gofer.socket())
        .args(args)
        .output()
        .unwrap()
}

/// The standard output of a run that must succeed.
fn stdout(example: &str, gofer: &Gofer, args: &[&str]) -> String {
    let out = run(example, gofer, args);
    assert!(
        out.status.success(),
        "{example} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ino(path: impl AsRef<Path>) -> u64 {
    fs::symlink_metadata(path).unwrap().ino()
}

#[test]
fn connect_reports_the_mount() {
    let gofer = start();
    let out = stdout(CONNECT, &gofer, &[]);
    let root = fs::metadata(gofer.root()).unwrap();
    let expected_root = format!(
        "root: directory, mode {:04o}, inode {}, uid {}, gid {}\n",
        root.mode() & 0o7777,
        root.ino(),
        root.uid(),
        root.gid()
    );
    assert!(out.contains(&expected_root), "{out}");
    assert!(out.contains("max message size: "), "{out}");
    let supported = out
        .lines()
        .find_map(|line| line.strip_prefix("supported RPCs "))
        .unwrap();
    for rpc in ["Mount", "Walk", "OpenAt", "PRead", "Getdents64", "Channel"] {
        assert!(supported.split(' ').any(|name| name == rpc), "{out}");
    }
    // The client asks for its default; the gofer grants at most 4 (--max-channels).
    let channels = ClientOptions::default().channels.min(4);
    assert!(
        out.contains(&format!("shared-memory channels: {channels}\n")),
        "{out}"
    );
    assert!(out.contains("mount FD donated: no"), "{out}");
}

#[test]
fn walk_prints_each_component_and_why_it_stopped() {
    let gofer = start();
    let root = gofer.root();

    let out = stdout(WALK, &gofer, &["docs/notes.txt"]);
    let expected = format!(
        "docs: directory, inode {}, {} bytes\n\
         docs/notes.txt: regular file, inode {}, 12 bytes\n\
         walked all 2 components\n",
        ino(root.join("docs")),
        fs::metadata(root.join("docs")).unwrap().size(),
        ino(root.join("docs/notes.txt")),
    );
    assert_eq!(out, expected);

    let out = stdout(WALK, &gofer, &["docs/nope/deeper"]);
    assert!(
        out.ends_with("stopped: docs/nope does not exist\n"),
        "{out}"
    );

    // The server never follows a symlink: the walk stops on it, the client reads it.
    let out = stdout(WALK, &gofer, &["dl/notes.txt"]);
    let expected = format!(
        "dl: symlink, inode {}, 4 bytes\n\
         stopped at a symlink: dl -> docs (components left: 1)\n",
        ino(root.join("dl")),
    );
    assert_eq!(out, expected);
}

#[test]
fn read_file_copies_the_file_exactly() {
    let gofer = start();
    let root = gofer.root();
    for (path, host) in [
        ("big.bin", "big.bin"),
        // Symlinks are followed client-side.
        ("dl/link", "docs/notes.txt"),
    ] {
        let out = run(READ_FILE, &gofer, &[path]);
        assert!(out.status.success(), "{path}: {}", out.status);
        let contents = fs::read(root.join(host)).unwrap();
        assert!(
            out.stdout == contents,
            "{path}: the output differs from {host}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let summary = format!("{} bytes of {path} ", contents.len());
        assert!(stderr.contains(&summary), "{stderr}");
        assert!(stderr.contains("host FD donated: yes"), "{stderr}");
    }

    let missing = run(READ_FILE, &gofer, &["docs/none"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn list_dir_lists_what_the_host_has() {
    let gofer = start();
    let root = gofer.root();
    for (dir, arg) in [("", None), ("docs", Some("docs"))] {
        let out = stdout(LIST_DIR, &gofer, arg.as_slice());
        let mut lines = out.lines();
        let mut names: Vec<String> = fs::read_dir(root.join(dir))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let shown = if dir.is_empty() { "/" } else { dir };
        assert_eq!(
            lines.next(),
            Some(format!("{} entries in {shown}", names.len()).as_str())
        );
        for name in &names {
            let line = lines.next().unwrap();
            let meta = fs::symlink_metadata(root.join(dir).join(name)).unwrap();
            let (kind, tail) = if meta.is_dir() {
                ('d', name.clone())
            } else if meta.is_symlink() {
                let target = fs::read_link(root.join(dir).join(name)).unwrap();
                ('l', format!("{name} -> {}", target.display()))
            } else {
                ('-', name.clone())
            };
            assert!(line.starts_with(kind), "{name}: {line}");
            assert!(
                line.ends_with(&format!(" {} {tail}", meta.size())),
                "{line}"
            );
        }
        assert_eq!(lines.next(), None, "{out}");
    }
}

#[test]
fn channels_reads_in_parallel_over_channels_and_the_socket() {
    let gofer = start();
    let out = stdout(CHANNELS, &gofer, &["dl/notes.txt", "2"]);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("channels: 2 of 2 asked"));
    let over = lines.next().unwrap();
    assert!(
        over.starts_with("over channels: 2 threads x 1000 reads of 12 bytes of dl/notes.txt in "),
        "{out}"
    );
    let socket = lines.next().unwrap();
    assert!(
        socket.starts_with("on the socket: 2 threads x 1000 reads of 12 bytes of dl/notes.txt in "),
        "{out}"
    );
}

#[test]
fn examples_refuse_bad_arguments_with_usage() {
    let gofer = start();
    for (example, args) in [
        (CONNECT, &["extra"][..]),
        (WALK, &[]),
        (READ_FILE, &[]),
        (LIST_DIR, &["a", "b"]),
        (CHANNELS, &["f", "0"]),
    ] {
        let out = run(example, &gofer, args);
        assert_eq!(out.status.code(), Some(2), "{example} {args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: "));
    }
}
