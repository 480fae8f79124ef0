//! The audit log (`lisafs_gofer::audit`) as a hook around the host backend, served in this
//! process over a real socket to a real client: one well-formed line per operation in
//! scope, with the connection and its peer, and a writer that stalls either losing lines
//! (`drop`) or holding requests (`block`), never both.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use lisafs_client::{Client, ControlFd, Owner, SetStat, WalkStatus, O_RDONLY, O_RDWR};
use lisafs_gofer::audit::{Audit, AuditOps, AuditOptions, AuditTarget, OnFull};
use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::Errno;
use lisafs_server::hooks::{Hook, Hooked, Op, OpClass};
use lisafs_server::{context, Server};
use lisafs_tests::errno;
use rustix::fs::OFlags;
use serde_json::Value;

/// Refuses writes under `secret/`, naming the rule that did.
struct NoSecretWrites;

impl Hook for NoSecretWrites {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        let secret = op.path().is_none_or(|path| path.starts_with("secret"));
        if op.class() == OpClass::Write && secret {
            context::set_rule("no-secret-writes".into());
            return Err(Errno::EACCES);
        }
        Ok(())
    }
}

type Hooks = (NoSecretWrites, lisafs_gofer::audit::AuditHook);

/// A temp directory's `root/` served with the audit hook of `audit` (mount "m").
struct Served {
    client: Client,
    server: Arc<Server<Hooked<HostBackend, Hooks>>>,
    serving: JoinHandle<()>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    fn new(audit: &Audit) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let backend = HostBackend::new(&root, HostOptions::default()).unwrap();
        let hooks = (NoSecretWrites, audit.hook("m"));
        let server = Server::new(Hooked::new(backend, hooks), Default::default());
        server.read_peer_credentials(true);
        let (client_end, server_end) = FramedSocket::pair().unwrap();
        let serving = server.spawn(server_end).unwrap();
        let client = Client::from_fd(client_end.into_inner()).unwrap();
        Self {
            client,
            server,
            serving,
            root,
            _dir: dir,
        }
    }

    /// Ends the connection and the server, so that the audit hook is gone and dropping the
    /// `Audit` waits for the writer to write everything.
    fn stop(self) {
        drop(self.client);
        self.serving.join().unwrap();
        drop(self.server);
    }
}

fn options(file: AuditTarget, ops: AuditOps, on_full: OnFull, queue: usize) -> AuditOptions {
    AuditOptions {
        ops,
        on_full,
        queue,
        ..AuditOptions::new(file)
    }
}

/// Every line of `text`, parsed (a line that is not one JSON object fails the test).
fn parse(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|err| {
                panic!("not JSON ({err}): {line}");
            });
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

fn walk(client: &Client, path: &[&str]) -> ControlFd {
    let (status, mut inodes) = client.root().walk(path).unwrap();
    assert_eq!(status, WalkStatus::Success, "{path:?}");
    inodes.pop().unwrap().fd
}

/// (op, path, new_path, result, rule) of a line.
fn summary(line: &Value) -> (String, Value, Value, String, Value) {
    (
        line["op"].as_str().unwrap().to_owned(),
        line["path"].clone(),
        line["new_path"].clone(),
        line["result"].as_str().unwrap().to_owned(),
        line["rule"].clone(),
    )
}

#[test]
fn every_mutation_gives_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let audit = Audit::open(AuditOptions::new(AuditTarget::Path(log.clone()))).unwrap();
    audit.start().unwrap();
    let s = Served::new(&audit);
    std::fs::create_dir(s.root.join("secret")).unwrap();
    let root = s.client.root();
    let owner = Owner::UNSET;

    root.mkdir_at("d", 0o755, owner).unwrap();
    assert_eq!(errno(root.mkdir_at("d", 0o755, owner)), Errno::EEXIST);
    let d = walk(&s.client, &["d"]);
    let (_, opened) = d.open_create_at("f", O_RDWR, 0o644, owner).unwrap();
    let file = lisafs_client::File::new(opened);
    assert_eq!(file.write_at(b"abc", 0).unwrap(), 3);
    let secret = walk(&s.client, &["secret"]);
    let (_, opened) = secret.open_create_at("s", O_RDWR, 0o644, owner).unwrap();
    let secret_file = lisafs_client::File::new(opened);
    assert_eq!(errno(secret_file.write_at(b"x", 0)), Errno::EACCES);
    let chmod = SetStat {
        mode: Some(0o700),
        ..SetStat::default()
    };
    d.set_stat(&chmod).unwrap();
    d.rename_at("f", root, "g", 0).unwrap();
    root.unlink_at("g", 0).unwrap();
    // Reads and lookups are not mutations.
    let mut buf = [0; 3];
    file.read_at(&mut buf, 0).unwrap();
    s.client.metadata("d").unwrap();
    // Every FD holds the client: the connection ends with the last.
    drop((file, secret_file, d, secret));
    s.stop();
    assert_eq!(audit.dropped(), 0);
    drop(audit);

    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&log).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the log is its owner's only");
    let lines = parse(&std::fs::read_to_string(&log).unwrap());
    let null = Value::Null;
    let text = |s: &str| Value::from(s);
    let expected = [
        ("MkdirAt", text("d"), null.clone(), "ok", null.clone()),
        ("MkdirAt", text("d"), null.clone(), "EEXIST", null.clone()),
        (
            "OpenCreateAt",
            text("d/f"),
            null.clone(),
            "ok",
            null.clone(),
        ),
        ("PWrite", text("d/f"), null.clone(), "ok", null.clone()),
        (
            "OpenCreateAt",
            text("secret/s"),
            null.clone(),
            "ok",
            null.clone(),
        ),
        (
            "PWrite",
            text("secret/s"),
            null.clone(),
            "EACCES",
            text("no-secret-writes"),
        ),
        ("SetStat", text("d"), null.clone(), "ok", null.clone()),
        ("RenameAt", text("d/f"), text("g"), "ok", null.clone()),
        ("UnlinkAt", text("g"), null.clone(), "ok", null.clone()),
    ];
    let expected: Vec<_> = expected
        .into_iter()
        .map(|(op, path, new_path, result, rule)| {
            (op.to_owned(), path, new_path, result.to_owned(), rule)
        })
        .collect();
    let got: Vec<_> = lines.iter().map(summary).collect();
    assert_eq!(got, expected, "{lines:#?}");

    let pwrite = &lines[3];
    assert_eq!(pwrite["bytes"], 3);
    assert_eq!(pwrite["class"], "write");
    assert_eq!(pwrite["mount"], "m");
    let time = pwrite["time"].as_str().unwrap();
    assert_eq!(time.len(), "2026-12-04T19:50:05.123456Z".len(), "{time}");
    assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
    let connection = &lines[0]["connection"];
    assert!(connection["id"].as_u64().unwrap() > 0);
    assert_eq!(connection["pid"], std::process::id());
    assert_eq!(connection["uid"], rustix::process::geteuid().as_raw());
    assert_eq!(connection["gid"], rustix::process::getegid().as_raw());
    for line in &lines {
        assert_eq!(&line["connection"], connection, "one connection");
    }
}

#[test]
fn all_logs_reads_and_lookups_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let file = AuditTarget::Path(log.clone());
    let audit = Audit::open(options(file, AuditOps::All, OnFull::Drop, 16)).unwrap();
    audit.start().unwrap();
    let s = Served::new(&audit);
    std::fs::write(s.root.join("f"), b"hello").unwrap();
    let f = walk(&s.client, &["f"]);
    let file = lisafs_client::File::new(f.open_at(O_RDONLY).unwrap());
    let mut buf = [0; 5];
    assert_eq!(file.read_at(&mut buf, 0).unwrap(), 5);
    drop((file, f));
    s.stop();
    drop(audit);

    let lines = parse(&std::fs::read_to_string(&log).unwrap());
    let find = |op: &str| {
        lines
            .iter()
            .find(|line| line["op"] == op)
            .unwrap_or_else(|| panic!("no {op} in {lines:#?}"))
    };
    assert_eq!(find("Mount")["class"], "stat");
    assert_eq!(find("Walk")["path"], "f");
    assert_eq!(find("OpenAt")["class"], "read");
    let pread = find("PRead");
    assert_eq!(pread["path"], "f");
    assert_eq!(pread["bytes"], 5);
    assert_eq!(pread["result"], "ok");
}

/// A pipe whose buffer is full, so that the first write to it blocks until someone reads:
/// its read end, and its write end for the audit log.
fn full_pipe() -> (std::io::PipeReader, OwnedFd) {
    let (reader, mut writer) = std::io::pipe().unwrap();
    let flags = rustix::fs::fcntl_getfl(&writer).unwrap();
    rustix::fs::fcntl_setfl(&writer, flags | OFlags::NONBLOCK).unwrap();
    // Pages first, then single bytes: a write that would block on the last page writes
    // nothing, not part of it.
    for chunk in [&[b'#'; 4096][..], b"#"] {
        while writer.write(chunk).is_ok() {}
    }
    rustix::fs::fcntl_setfl(&writer, flags).unwrap();
    (reader, writer.into())
}

/// Reads the pipe to its end on a thread; the lines written after the filler.
fn drain(mut reader: std::io::PipeReader) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        let text = String::from_utf8(all).unwrap();
        text.trim_start_matches('#').to_owned()
    })
}

/// Runs `count` MkdirAt requests on a thread, telling each completion.
fn mkdirs(client: Client, count: usize) -> (mpsc::Receiver<usize>, JoinHandle<Client>) {
    let (done, completions) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        for i in 0..count {
            client
                .root()
                .mkdir_at(format!("d{i}"), 0o755, Owner::UNSET)
                .unwrap();
            done.send(i).unwrap();
        }
        client
    });
    (completions, thread)
}

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn with_drop_a_stalled_writer_loses_lines_and_never_holds_a_request() {
    let (reader, writer) = full_pipe();
    let file = AuditTarget::Fd(writer);
    let audit = Audit::open(options(file, AuditOps::Mutations, OnFull::Drop, 1)).unwrap();
    audit.start().unwrap();
    let mut s = Served::new(&audit);
    const N: usize = 20;
    let (completions, thread) = mkdirs(s.client, N);
    for _ in 0..N {
        completions
            .recv_timeout(PATIENCE)
            .expect("a request waited for the log");
    }
    s.client = thread.join().unwrap();
    // The writer holds at most two lines (one batch) and the queue one.
    let dropped = audit.dropped();
    assert!(dropped >= N as u64 - 3, "{dropped} dropped");

    let drained = drain(reader);
    s.stop();
    drop(audit);
    let lines = parse(&drained.join().unwrap());
    assert_eq!(lines.len() as u64 + dropped, N as u64, "{lines:#?}");
    assert!(lines.iter().all(|line| line["op"] == "MkdirAt"));
}

#[test]
fn with_block_a_stalled_writer_holds_requests_until_it_writes() {
    let (reader, writer) = full_pipe();
    let file = AuditTarget::Fd(writer);
    let audit = Audit::open(options(file, AuditOps::Mutations, OnFull::Block, 1)).unwrap();
    audit.start().unwrap();
    let mut s = Served::new(&audit);
    const N: usize = 6;
    let (completions, thread) = mkdirs(s.client, N);
    // The writer holds at most two lines (one batch) and the queue one: a fourth request
    // at the latest waits, however long.
    let mut done = 0;
    while completions.recv_timeout(Duration::from_millis(500)).is_ok() {
        done += 1;
    }
    assert!(done <= 3, "{done} requests returned past a stalled writer");

    let drained = drain(reader);
    for _ in done..N {
        completions
            .recv_timeout(PATIENCE)
            .expect("the writer was drained");
    }
    s.client = thread.join().unwrap();
    assert_eq!(audit.dropped(), 0);
    s.stop();
    drop(audit);
    let lines = parse(&drained.join().unwrap());
    let paths: Vec<_> = lines.iter().map(|line| line["path"].clone()).collect();
    let expected: Vec<Value> = (0..N).map(|i| format!("d{i}").into()).collect();
    assert_eq!(paths, expected);
}

#[test]
fn non_utf8_paths_keep_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let audit = Audit::open(AuditOptions::new(AuditTarget::Path(log.clone()))).unwrap();
    audit.start().unwrap();
    let s = Served::new(&audit);
    s.client
        .root()
        .mkdir_at(b"caf\xe9", 0o755, Owner::UNSET)
        .unwrap();
    s.stop();
    drop(audit);
    let lines = parse(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(lines[0]["path"], "caf\u{fffd}");
    assert_eq!(lines[0]["path_bytes"], "636166e9");
}
