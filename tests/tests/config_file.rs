//! `gofer --config`: several mounts from one file, served by one confined process, each
//! with its own root and policy, and connections isolated from each other (issue 9).
#![allow(clippy::unwrap_used)] // Tests fail by panicking.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lisafs_client::Client;
use lisafs_protocol::wire::Errno;
use lisafs_tests::errno;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");

/// Kills the gofer on drop so a failed assertion leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes `config` to `<dir>/gofer.toml` and starts the gofer on it.
fn start(dir: &Path, config: &str) -> Running {
    let path = dir.join("gofer.toml");
    fs::write(&path, config).unwrap();
    let child = Command::new(GOFER)
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Running(child)
}

/// Stops the gofer with SIGTERM; its exit code.
fn stop(gofer: &mut Running) -> Option<i32> {
    let pid = rustix::process::Pid::from_child(&gofer.0);
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    gofer.0.wait().unwrap().code()
}

fn connect(socket: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(client) = Client::connect(socket) {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "{} never served",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_process_serves_every_mount_of_the_file_with_its_own_policy() {
    for sandbox in ["namespace", "chroot", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let (data, ro) = (dir.path().join("data"), dir.path().join("ro"));
        fs::create_dir(&data).unwrap();
        fs::create_dir(&ro).unwrap();
        fs::write(ro.join("only-in-ro"), b"ro").unwrap();
        let mut gofer = start(
            dir.path(),
            &format!(
                r#"
sandbox = "{sandbox}"
log_level = "warn"

[[mount]]
name = "data"
root = "{data}"
socket = "{dir}/data.sock"

[[mount]]
name = "ro"
root = "{ro}"
socket = "{dir}/ro.sock"
readonly = true
donate = false
"#,
                data = data.display(),
                ro = ro.display(),
                dir = dir.path().display(),
            ),
        );
        let data_client = connect(&dir.path().join("data.sock"));
        let ro_client = connect(&dir.path().join("ro.sock"));
        data_client.write("new", b"written").unwrap();
        assert_eq!(fs::read(data.join("new")).unwrap(), b"written", "{sandbox}");
        let refused = ro_client.write("new", b"x").unwrap_err();
        assert_eq!(refused.errno(), Errno::EROFS, "{sandbox}");
        assert!(!ro.join("new").exists());
        // `donate = false`: an opened file's host FD stays in the gofer.
        data_client.write("mine", b"m").unwrap();
        let open = |client: &Client, name: &str| {
            let (_, found) = client.root().walk(&[name]).unwrap();
            found[0].fd.open_at(lisafs_client::O_RDONLY).unwrap()
        };
        assert!(open(&data_client, "mine").host_fd.is_some(), "{sandbox}");
        assert!(
            open(&ro_client, "only-in-ro").host_fd.is_none(),
            "{sandbox}"
        );
        // Each connection sees its own root only.
        assert_eq!(ro_client.read("only-in-ro").unwrap(), b"ro");
        let err = data_client.read("only-in-ro").unwrap_err();
        assert_eq!(err.errno(), Errno::ENOENT, "{sandbox}");
        // One process: the supervisor's one child, or the process itself.
        let pid = lisafs_tests::serving_pid(gofer.0.id());
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        assert!(children.trim().is_empty(), "{sandbox}: {children}");
        drop((data_client, ro_client));
        assert_eq!(stop(&mut gofer), Some(0), "{sandbox}");
        assert!(!dir.path().join("data.sock").exists());
        assert!(!dir.path().join("ro.sock").exists());
    }
}

/// `[mount.ids]`: IDs the client sends are translated to the host's (unmapped ones refused
/// with EPERM), and the IDs it is shown are translated back (unmapped host IDs show as
/// 65534), for creates, chown and stat alike.
#[test]
fn ids_are_translated_both_ways() {
    use lisafs_client::{Owner, SetStat};
    use lisafs_protocol::wire::{Gid, Uid};
    use std::os::unix::fs::MetadataExt;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("host-root-file"), b"").unwrap();
    let _gofer = start(
        dir.path(),
        &format!(
            r#"
log_level = "warn"
[[mount]]
name = "data"
root = "{root}"
socket = "{dir}/s"
[mount.ids]
uid = [{{ inside = 0, outside = 100000, count = 65536 }}]
gid = [{{ inside = 0, outside = 200000, count = 65536 }}]
unmapped = "deny"
"#,
            root = root.display(),
            dir = dir.path().display(),
        ),
    );
    let client = connect(&dir.path().join("s"));
    let owner = |uid, gid| Owner {
        uid: Uid(uid),
        gid: Gid(gid),
    };
    // Create as inside 0:0 -> host 100000:200000, shown as 0:0.
    let made = client.root().mkdir_at("d", 0o755, owner(0, 0)).unwrap();
    let host = fs::metadata(root.join("d")).unwrap();
    assert_eq!((host.uid(), host.gid()), (100_000, 200_000));
    assert_eq!((made.stat.uid, made.stat.gid), (0, 0));
    assert_eq!(made.fd.fstat().unwrap().uid, 0);
    // chown to inside 1000:50 -> host 101000:200050.
    let set = SetStat {
        uid: Some(1000),
        gid: Some(50),
        ..SetStat::default()
    };
    made.fd.set_stat(&set).unwrap();
    let host = fs::metadata(root.join("d")).unwrap();
    assert_eq!((host.uid(), host.gid()), (101_000, 200_050));
    assert_eq!(made.fd.fstat().unwrap().gid, 50);
    // IDs outside the ranges: refused going in, overflow coming out.
    let refused = client.root().mkdir_at("e", 0o755, owner(70_000, 0));
    assert_eq!(errno(refused), Errno::EPERM);
    assert!(!root.join("e").exists());
    let chown = SetStat {
        uid: Some(65_536),
        ..SetStat::default()
    };
    assert_eq!(errno(made.fd.set_stat(&chown)), Errno::EPERM);
    let (_, inodes) = client.root().walk(&["host-root-file"]).unwrap();
    assert_eq!((inodes[0].stat.uid, inodes[0].stat.gid), (65_534, 65_534));
}

/// `[audit]`: a confined gofer writes one JSON line per mutation, naming the mount, the
/// operation, the path and the result.
#[test]
fn the_audit_log_records_each_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut gofer = start(
        dir.path(),
        &format!(
            r#"
log_level = "warn"
[audit]
file = "{log}"
on_full = "block"
[[mount]]
name = "data"
root = "{root}"
socket = "{dir}/s"
"#,
            log = log.display(),
            root = root.display(),
            dir = dir.path().display(),
        ),
    );
    let client = connect(&dir.path().join("s"));
    client.create_dir("d", 0o755).unwrap();
    assert_eq!(errno(client.create_dir("d", 0o755)), Errno::EEXIST);
    client.rename("d", "e").unwrap();
    drop(client);
    assert_eq!(stop(&mut gofer), Some(0));
    let lines: Vec<serde_json::Value> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let ops: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l["mount"].as_str().unwrap().to_string(),
                l["op"].as_str().unwrap().to_string(),
                l["path"].as_str().unwrap_or("").to_string(),
                l["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let line = |op: &str, path: &str, result: &str| {
        (
            "data".to_string(),
            op.to_string(),
            path.to_string(),
            result.to_string(),
        )
    };
    assert!(ops.contains(&line("MkdirAt", "d", "ok")), "{ops:?}");
    assert!(ops.contains(&line("MkdirAt", "d", "EEXIST")), "{ops:?}");
    let rename = lines
        .iter()
        .find(|l| l["op"] == "RenameAt")
        .expect("a RenameAt line");
    assert_eq!(rename["new_path"], "e");
}

/// `[[mount.rule]]` through a confined gofer: hide, readonly and a per-class deny, and the
/// bypasses: renaming a restricted directory, hard-linking a restricted file to a free
/// name, and a symlink into a hidden tree.
#[test]
fn path_rules_hold_against_the_obvious_bypasses() {
    use lisafs_client::Owner;
    use std::os::unix::fs::symlink;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for sub in ["secrets", "ro", "free"] {
        fs::create_dir_all(root.join(sub)).unwrap();
    }
    fs::write(root.join("secrets/key"), b"k").unwrap();
    fs::write(root.join("ro/f"), b"ro").unwrap();
    fs::write(root.join("app.log"), b"log").unwrap();
    symlink("secrets/key", root.join("link")).unwrap();
    let _gofer = start(
        dir.path(),
        &format!(
            r#"
log_level = "error"
[[mount]]
name = "data"
root = "{root}"
socket = "{dir}/s"
donate = false
[[mount.rule]]
path = "secrets/**"
action = "hide"
[[mount.rule]]
path = "ro/**"
action = "readonly"
[[mount.rule]]
path = "**/*.log"
ops = ["write", "remove", "rename", "setattr"]
action = "deny"
"#,
            root = root.display(),
            dir = dir.path().display(),
        ),
    );
    let client = connect(&dir.path().join("s"));
    // hide: absent to walks, listings and creates; a symlink into it leads nowhere.
    assert_eq!(errno(client.read("secrets/key")), Errno::ENOENT);
    let names: Vec<_> = client
        .read_dir("")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(
        !names.iter().any(|n| n.as_slice() == b"secrets"),
        "{names:?}"
    );
    assert_eq!(errno(client.read("link")), Errno::ENOENT);
    assert_eq!(errno(client.write("secrets/new", b"x")), Errno::ENOENT);
    // readonly: reads pass, every change is refused.
    assert_eq!(client.read("ro/f").unwrap(), b"ro");
    assert_eq!(errno(client.write("ro/f", b"x")), Errno::EACCES);
    assert_eq!(errno(client.write("ro/new", b"x")), Errno::EACCES);
    assert_eq!(errno(client.remove_file("ro/f")), Errno::EACCES);
    // deny by class: a log can be read, not written or removed.
    assert_eq!(client.read("app.log").unwrap(), b"log");
    assert_eq!(errno(client.write("app.log", b"x")), Errno::EACCES);
    assert_eq!(errno(client.remove_file("app.log")), Errno::EACCES);
    // Bypasses: moving the restricted tree, or linking a restricted file to a free name.
    assert_eq!(errno(client.rename("ro", "free/ro")), Errno::EACCES);
    let (_, ro) = client.root().walk(&["ro", "f"]).unwrap();
    let (_, free) = client.root().walk(&["free"]).unwrap();
    let linked = free[0].fd.link_at(&ro[1].fd, "f2");
    assert_eq!(errno(linked), Errno::EACCES);
    assert!(!root.join("free/f2").exists());
    // A directory move that changes no verdict ("**/*.log" looks only at names) is fine;
    // into the read-only tree it is not.
    client.rename("free", "free2").unwrap();
    assert_eq!(errno(client.rename("free2", "ro/x")), Errno::EACCES);
    client.rename("free2", "free").unwrap();
    // Elsewhere everything works, an unlinked file's I/O (over RPCs here) included.
    client.write("free/ok", b"fine").unwrap();
    client.write("free/tmp", b"t").unwrap();
    let tmp = client.open("free/tmp", lisafs_client::O_RDWR).unwrap();
    client.remove_file("free/tmp").unwrap();
    assert!(tmp.host_fd().is_none());
    assert_eq!(tmp.write_at(b"still", 0).unwrap(), 5);
    let mut back = [0u8; 5];
    assert_eq!(tmp.read_at(&mut back, 0).unwrap(), 5);
    assert_eq!(&back, b"still");
    client
        .root()
        .mkdir_at("newdir", 0o755, Owner::UNSET)
        .unwrap();
    assert_eq!(fs::read(root.join("ro/f")).unwrap(), b"ro");
    assert_eq!(fs::read(root.join("free/ok")).unwrap(), b"fine");
}

/// SIGHUP to a `--config` gofer: the rules are read again and the audit file reopened
/// (after a rotation by rename), while an open connection goes on with the new rules; a
/// file that no longer parses changes nothing and says why, with its line.
#[test]
fn sighup_reloads_the_rules_and_reopens_the_audit_file() {
    for sandbox in ["namespace", "chroot", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for sub in ["secrets", "public"] {
            fs::create_dir_all(root.join(sub)).unwrap();
        }
        fs::write(root.join("secrets/key"), b"k").unwrap();
        fs::write(root.join("public/page"), b"p").unwrap();
        let (log, stderr) = (dir.path().join("audit.jsonl"), dir.path().join("stderr"));
        let config = |rule: &str| {
            format!(
                r#"
sandbox = "{sandbox}"
log_level = "info"
[audit]
file = "{log}"
on_full = "block"
[[mount]]
name = "data"
root = "{root}"
socket = "{dir}/s"
{rule}
"#,
                log = log.display(),
                root = root.display(),
                dir = dir.path().display(),
            )
        };
        let path = dir.path().join("gofer.toml");
        fs::write(
            &path,
            config("[[mount.rule]]\npath = \"secrets/**\"\naction = \"hide\""),
        )
        .unwrap();
        let child = Command::new(GOFER)
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut gofer = Running(child);
        let client = connect(&dir.path().join("s"));
        assert_eq!(
            errno(client.read("secrets/key")),
            Errno::ENOENT,
            "{sandbox}"
        );
        client.create_dir("before", 0o755).unwrap();

        // Rotate the audit file, change the rules, and tell the gofer.
        let rotated = dir.path().join("audit.jsonl.1");
        fs::rename(&log, &rotated).unwrap();
        fs::write(
            &path,
            config("[[mount.rule]]\npath = \"public/**\"\naction = \"deny\""),
        )
        .unwrap();
        let hup = |pid: u32| {
            let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
            rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
        };
        hup(gofer.0.id());
        wait_for(&stderr, 1, "reloaded");
        assert_eq!(client.read("secrets/key").unwrap(), b"k", "{sandbox}");
        assert_eq!(
            errno(client.read("public/page")),
            Errno::EACCES,
            "{sandbox}"
        );
        client.create_dir("after", 0o755).unwrap();

        // A broken file: the error names its line, and the rules stay as they were. The
        // signal goes to the serving process this time (the confined child, which asks its
        // parent for the files).
        fs::write(
            &path,
            config("[[mount.rule]]\npath = \"secrets/**\"\naction = \"explode\""),
        )
        .unwrap();
        hup(lisafs_tests::serving_pid(gofer.0.id()));
        wait_for(&stderr, 1, "rules unchanged");
        let logged = fs::read_to_string(&stderr).unwrap();
        assert!(logged.contains("gofer.toml:"), "{sandbox}: {logged}");
        assert_eq!(client.read("secrets/key").unwrap(), b"k", "{sandbox}");
        assert_eq!(
            errno(client.read("public/page")),
            Errno::EACCES,
            "{sandbox}"
        );

        drop(client);
        assert_eq!(stop(&mut gofer), Some(0), "{sandbox}");
        let mkdirs = |file: &Path| -> Vec<String> {
            fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
                .filter(|line| line["op"] == "MkdirAt")
                .map(|line| line["path"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(mkdirs(&rotated), ["before"], "{sandbox}");
        assert_eq!(mkdirs(&log), ["after"], "{sandbox}");
    }
}

/// Waits until `file` holds `count` lines containing `text`.
fn wait_for(file: &Path, count: usize, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logged = fs::read_to_string(file).unwrap_or_default();
        if logged.lines().filter(|line| line.contains(text)).count() >= count {
            return;
        }
        assert!(Instant::now() < deadline, "never logged {text:?}: {logged}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Lines the audit log loses are counted on the metrics endpoint: here every line, as the
/// file refuses each write (`/dev/full`).
#[test]
fn lost_audit_lines_are_exported_as_a_metric() {
    use std::io::{Read as _, Write as _};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let metrics = dir.path().join("metrics.sock");
    let _gofer = start(
        dir.path(),
        &format!(
            r#"
log_level = "error"
metrics_socket = "{metrics}"
[audit]
file = "/dev/full"
[[mount]]
name = "data"
root = "{root}"
socket = "{dir}/s"
"#,
            metrics = metrics.display(),
            root = root.display(),
            dir = dir.path().display(),
        ),
    );
    let client = connect(&dir.path().join("s"));
    for name in ["a", "b", "c"] {
        client.create_dir(name, 0o755).unwrap();
    }
    let dropped = || -> Option<u64> {
        let mut stream = std::os::unix::net::UnixStream::connect(&metrics).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: gofer\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let line = text
            .lines()
            .find(|line| line.starts_with("lisafs_audit_dropped_total "))?;
        line.rsplit_once(' ').unwrap().1.parse().ok()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while dropped() != Some(3) {
        assert!(Instant::now() < deadline, "dropped: {:?}", dropped());
        std::thread::sleep(Duration::from_millis(10));
    }
}
