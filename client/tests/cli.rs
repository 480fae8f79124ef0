//! The `lisafs` binary against the in-memory tree served on a Unix socket path.
#![allow(clippy::unwrap_used)]

mod fake;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fake::tree::{Kind, Tree};
use fake::Reply;
use lisafs_client::wire::{AnyRequest, AnyResponse, Statx};
use parking_lot::Mutex;

/// How long a `lisafs` run may take before a test calls it hung. Far above any real run:
/// it only keeps a broken build from hanging the suite.
const LIVENESS: Duration = Duration::from_secs(60);

/// A served tree and a temp dir holding its socket and any local files.
struct Setup {
    dir: tempfile::TempDir,
    socket: PathBuf,
}

/// The tree every test starts from.
fn tree() -> Tree {
    let mut tree = Tree::new();
    tree.add("docs", Kind::Dir)
        .add("docs/readme", Kind::File(b"hello\n".to_vec()))
        .add("docs/link", Kind::Symlink(b"readme".to_vec()));
    tree
}

fn setup() -> Setup {
    serve(tree(), |tree, req| tree.handle(req))
}

/// Serves `tree`, answering every request (Mount aside) with `handler`, which may defer
/// to the tree, change its answer, or hang up. The tree outlives connections.
fn serve(
    tree: Tree,
    mut handler: impl FnMut(&mut Tree, &AnyRequest) -> Reply + Send + 'static,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gofer.sock");
    let tree = Mutex::new(tree);
    fake::listen(&socket, move |req| handler(&mut tree.lock(), req));
    Setup { dir, socket }
}

impl Setup {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lisafs"));
        command
            .env_remove("LISAFS_SOCKET")
            .arg("--socket")
            .arg(&self.socket)
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish(child)
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

    /// The names in the local temp dir, sorted (the socket included).
    fn local_names(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }
}

/// Waits for `child` to exit, within [`LIVENESS`], collecting whatever of its stdout and
/// stderr the test has not taken (on threads, so a full pipe cannot stall it).
fn finish(mut child: Child) -> Output {
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).unwrap();
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > LIVENESS {
            child.kill().unwrap();
            panic!("lisafs still running after {LIVENESS:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
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
fn a_gofer_that_hangs_up_before_mount_is_named_as_the_refuser() {
    // What a gofer at its --max-connections does: accept, then close at once.
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("full.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let refuser = std::thread::spawn(move || drop(listener.accept().unwrap()));

    let out = Command::new(env!("CARGO_BIN_EXE_lisafs"))
        .args(["--socket", text(&socket), "ls"])
        .output()
        .unwrap();
    refuser.join().unwrap();

    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "lisafs: connect {}: the gofer closed the connection before answering Mount \
             (its log says why, e.g. --max-connections reached)\n",
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

/// A file of `len` bytes that differ from their neighbours, as text lines.
fn lines(len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len + 16);
    let mut i = 0;
    while data.len() < len {
        data.extend_from_slice(format!("line {i}\n").as_bytes());
        i += 1;
    }
    data.truncate(len);
    data
}

/// A handler that answers from the tree until `cut` says to hang up on a request, once:
/// the gofer dying in the middle of an operation. Later connections are served again.
fn dies_once(
    mut cut: impl FnMut(&AnyRequest) -> bool + Send + 'static,
) -> impl FnMut(&mut Tree, &AnyRequest) -> Reply + Send + 'static {
    let mut died = false;
    move |tree, req| {
        if !died && cut(req) {
            died = true;
            return Reply::HangUp;
        }
        tree.handle(req)
    }
}

/// True for the `nth` request of one kind and every later one of that kind.
fn nth(
    mut is_it: impl FnMut(&AnyRequest) -> bool + Send,
    nth: usize,
) -> impl FnMut(&AnyRequest) -> bool + Send {
    let mut seen = 0;
    move |req| {
        if !is_it(req) {
            return false;
        }
        seen += 1;
        seen >= nth
    }
}

#[test]
fn failed_get_of_a_missing_file_leaves_the_local_file_and_no_temporary() {
    let s = setup();
    let keep = s.local("keep.txt");
    std::fs::write(&keep, "keep\n").unwrap();

    let stderr = s.fails(&["get", "missing", text(&keep)]);

    assert_eq!(stderr, "lisafs: get missing: No such file or directory\n");
    assert_eq!(std::fs::read(&keep).unwrap(), b"keep\n");
    assert_eq!(s.local_names(), ["gofer.sock", "keep.txt"]);
}

#[test]
fn get_of_a_directory_creates_nothing() {
    let s = setup();
    let got = s.local("gotdir");

    let stderr = s.fails(&["get", "docs", text(&got)]);

    assert_eq!(stderr, "lisafs: get docs: Is a directory\n");
    assert_eq!(s.local_names(), ["gofer.sock"]);
}

#[test]
fn put_of_a_local_directory_leaves_the_remote_file_and_no_temporary() {
    let mut tree = tree();
    tree.add("r.txt", Kind::File(b"old\n".to_vec()));
    let s = serve(tree, |tree, req| tree.handle(req));
    let local_dir = s.local("sub");
    std::fs::create_dir(&local_dir).unwrap();

    let stderr = s.fails(&["put", text(&local_dir), "r.txt"]);

    assert_eq!(
        stderr,
        format!("lisafs: put {}: Is a directory\n", local_dir.display())
    );
    assert_eq!(s.ok(&["cat", "r.txt"]), "old\n");
    assert_eq!(s.ok(&["ls", "-a"]), ".\n..\ndocs\nr.txt\n");
}

#[test]
fn put_cut_off_by_the_gofer_dying_leaves_the_old_remote_content() {
    let mut tree = tree();
    tree.add("r.txt", Kind::File(b"old\n".to_vec()));
    let second_write = nth(|req| matches!(req, AnyRequest::PWrite(_)), 2);
    let s = serve(tree, dies_once(second_write));
    let local = s.local("big.txt");
    std::fs::write(&local, lines(5 << 20)).unwrap();

    let stderr = s.fails(&["put", text(&local), "r.txt"]);

    assert_eq!(stderr, "lisafs: put r.txt: connection to the gofer lost\n");
    assert_eq!(s.ok(&["cat", "r.txt"]), "old\n");
    // The temporary could not be removed without a connection; it is at least hidden.
    assert_eq!(s.ok(&["ls"]), "docs\nr.txt\n");
}

#[test]
fn put_failing_mid_write_removes_its_temporary_and_leaves_the_old_content() {
    let mut tree = tree();
    tree.add("r.txt", Kind::File(b"old\n".to_vec()));
    let mut second_write = nth(|req| matches!(req, AnyRequest::PWrite(_)), 2);
    let s = serve(tree, move |tree, req| match second_write(req) {
        true => Reply::err(lisafs_client::Errno::ENOSPC),
        false => tree.handle(req),
    });
    let local = s.local("big.txt");
    std::fs::write(&local, lines(5 << 20)).unwrap();

    let stderr = s.fails(&["put", text(&local), "r.txt"]);

    assert_eq!(stderr, "lisafs: put r.txt: No space left on device\n");
    assert_eq!(s.ok(&["cat", "r.txt"]), "old\n");
    assert_eq!(s.ok(&["ls", "-a"]), ".\n..\ndocs\nr.txt\n");
}

#[test]
fn get_cut_off_by_the_gofer_dying_leaves_the_local_file_and_no_temporary() {
    let mut tree = tree();
    tree.add("big", Kind::File(lines(5 << 20)));
    let second_read = nth(|req| matches!(req, AnyRequest::PRead(_)), 2);
    let s = serve(tree, dies_once(second_read));
    let keep = s.local("keep.txt");
    std::fs::write(&keep, "keep\n").unwrap();

    let stderr = s.fails(&["get", "big", text(&keep)]);

    assert_eq!(stderr, "lisafs: get big: connection to the gofer lost\n");
    assert_eq!(std::fs::read(&keep).unwrap(), b"keep\n");
    assert_eq!(s.local_names(), ["gofer.sock", "keep.txt"]);
}

#[test]
fn put_and_get_replace_existing_files_whole() {
    let mut tree = tree();
    tree.add("r.txt", Kind::File(b"a much longer old content\n".to_vec()));
    let s = serve(tree, |tree, req| tree.handle(req));
    let (local, back) = (s.local("new.txt"), s.local("back.txt"));
    std::fs::write(&local, "new\n").unwrap();
    std::fs::write(&back, "a much longer old local file\n").unwrap();

    s.ok(&["put", text(&local), "r.txt"]);
    s.ok(&["get", "r.txt", text(&back)]);

    assert_eq!(std::fs::read(&back).unwrap(), b"new\n");
    assert_eq!(s.ok(&["ls", "-a"]), ".\n..\ndocs\nr.txt\n");
    assert_eq!(s.local_names(), ["back.txt", "gofer.sock", "new.txt"]);
}

#[test]
fn put_dash_reads_standard_input() {
    let s = setup();
    let data = lines(300_000);
    let mut child = s
        .command(&["put", "-", "docs/in.txt"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = finish(child);

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.ok(&["cat", "docs/in.txt"]).as_bytes(), data);
}

#[test]
fn socket_comes_from_lisafs_socket_when_not_given() {
    let s = setup();

    let out = Command::new(env!("CARGO_BIN_EXE_lisafs"))
        .env("LISAFS_SOCKET", &s.socket)
        .arg("ls")
        .output()
        .unwrap();

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"docs\n");
}

#[test]
fn timeout_ends_a_call_the_gofer_never_answers() {
    // The fake stops answering at the first WalkStat, as a SIGSTOPped gofer would (its
    // socket stays open). Dropping `_resume` at the end lets the fake's thread go on.
    let (_resume, stopped) = std::sync::mpsc::channel::<()>();
    let stopped = Mutex::new(stopped);
    let s = serve(tree(), move |tree, req| {
        if matches!(req, AnyRequest::WalkStat(_)) {
            let _ = stopped.lock().recv();
        }
        tree.handle(req)
    });

    let stderr = s.fails(&["--timeout", "0.5", "ls", "docs"]);

    assert_eq!(
        stderr,
        "lisafs: ls docs: no answer from the gofer within 0.5 s (--timeout)\n"
    );
}

#[test]
fn timeout_must_be_a_positive_number() {
    let s = setup();

    let out = s.run(&["--timeout", "0", "ls"]);

    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("not a positive number of seconds"),
        "{stderr}"
    );
}

#[test]
fn ls_hides_dot_names_unless_a() {
    let mut tree = tree();
    tree.add(".hidden", Kind::File(Vec::new()));
    let s = serve(tree, |tree, req| tree.handle(req));

    assert_eq!(s.ok(&["ls"]), "docs\n");
    assert_eq!(s.ok(&["ls", "-a"]), ".\n..\n.hidden\ndocs\n");
    let long = s.ok(&["ls", "-la", "docs"]);
    let names: Vec<&str> = long
        .lines()
        .map(|line| line.split_whitespace().nth(7).unwrap())
        .collect();
    assert_eq!(names, [".", "..", "link", "readme"]);
    assert!(
        long.lines().next().unwrap().starts_with("drwxr-xr-x"),
        "{long}"
    );
}

#[test]
fn mv_and_put_into_an_existing_directory_keep_the_name() {
    let s = setup();
    let local = s.local("in.txt");
    std::fs::write(&local, "in\n").unwrap();
    s.ok(&["mkdir", "dest"]);

    s.ok(&["put", text(&local), "dest"]);
    s.ok(&["mv", "docs/readme", "dest/"]);

    assert_eq!(s.ok(&["ls", "dest"]), "in.txt\nreadme\n");
    assert_eq!(s.ok(&["cat", "dest/in.txt", "dest/readme"]), "in\nhello\n");
    assert_eq!(s.ok(&["ls", "docs"]), "link\n");
}

#[test]
fn get_into_an_existing_local_directory_keeps_the_name() {
    let s = setup();
    let dir = s.local("here");
    std::fs::create_dir(&dir).unwrap();

    s.ok(&["get", "docs/readme", text(&dir)]);

    assert_eq!(std::fs::read(dir.join("readme")).unwrap(), b"hello\n");
}

/// Remembers the permission bits OpenCreateAt asked for (the fake tree keeps none) and
/// reports them in every later stat of that file, as a real server would.
fn keeps_modes() -> impl FnMut(&mut Tree, &AnyRequest) -> Reply + Send + 'static {
    let mut modes: HashMap<u64, u16> = HashMap::new();
    move |tree, req| {
        let mut reply = tree.handle(req);
        let Reply::Resp(resp) = &mut reply else {
            return reply;
        };
        if let (AnyRequest::OpenCreateAt(create), AnyResponse::OpenCreateAt(created)) =
            (req, &*resp)
        {
            modes.insert(created.child.stat.ino, create.common.mode);
        }
        let stats: Vec<&mut Statx> = match resp {
            AnyResponse::Walk(walk) => walk.inodes.iter_mut().map(|i| &mut i.stat).collect(),
            AnyResponse::WalkStat(walk) => walk.stats.iter_mut().collect(),
            AnyResponse::FStat(fstat) => vec![&mut fstat.stat],
            AnyResponse::OpenCreateAt(created) => vec![&mut created.child.stat],
            _ => Vec::new(),
        };
        for stat in stats {
            if let Some(mode) = modes.get(&stat.ino) {
                stat.mode = (stat.mode & !0o7777) | mode;
            }
        }
        reply
    }
}

#[test]
fn put_sends_the_local_mode_and_get_keeps_the_remote_one() {
    let s = serve(tree(), keeps_modes());
    let (local, back) = (s.local("tool"), s.local("tool.back"));
    std::fs::write(&local, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&local, std::fs::Permissions::from_mode(0o750)).unwrap();

    s.ok(&["put", text(&local), "tool"]);
    s.ok(&["get", "tool", text(&back)]);

    assert!(s.ok(&["ls", "-l", "tool"]).starts_with("-rwxr-x---"));
    let mode = std::fs::metadata(&back).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o750);
}

#[test]
fn dot_and_dotdot_are_path_components_and_the_root_is_their_limit() {
    let mut tree = tree();
    tree.add("docs/sub", Kind::Dir)
        .add("docs/sub/deep", Kind::File(b"deep\n".to_vec()))
        .add("up", Kind::Symlink(b"docs/sub".to_vec()));
    let s = serve(tree, |tree, req| tree.handle(req));

    assert_eq!(s.ok(&["cat", "./docs/readme"]), "hello\n");
    assert_eq!(s.ok(&["cat", "docs/sub/../readme"]), "hello\n");
    assert_eq!(s.ok(&["cat", "../../docs/./readme"]), "hello\n");
    assert_eq!(s.ok(&["ls", ".."]), "docs\nup\n");
    // ".." after a symlink leaves its target, as the kernel resolves it.
    assert_eq!(s.ok(&["ls", "up/.."]), "link\nreadme\nsub\n");
    assert_eq!(s.ok(&["cat", "up/../sub/deep"]), "deep\n");
    assert_eq!(
        s.fails(&["cat", "docs/readme/.."]),
        "lisafs: cat docs/readme/..: Not a directory\n"
    );
}

#[test]
fn lost_connection_is_named_and_ends_the_remaining_operands() {
    let s = serve(tree(), dies_once(|req| matches!(req, AnyRequest::Walk(_))));

    let stderr = s.fails(&["cat", "docs/readme", "docs/link"]);

    assert_eq!(
        stderr,
        "lisafs: cat docs/readme: connection to the gofer lost\n"
    );
}

#[test]
fn closed_stdout_ends_quietly_like_coreutils() {
    let mut tree = tree();
    tree.add("big", Kind::File(lines(4 << 20)));
    let s = serve(tree, |tree, req| tree.handle(req));
    let mut child = s
        .command(&["cat", "big", "docs/readme"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    drop(reader);
    let out = finish(child);

    assert_eq!(first, "line 0\n");
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
    assert_eq!(out.status.code(), Some(141));
}

#[test]
fn help_describes_every_argument_and_option() {
    let commands: &[&[&str]] = &[
        &[],
        &["ls"],
        &["stat"],
        &["cat"],
        &["put"],
        &["get"],
        &["mkdir"],
        &["rm"],
        &["mv"],
        &["ln"],
        &["readlink"],
        &["tree"],
        &["df"],
        &["xattr", "get"],
        &["xattr", "set"],
        &["xattr", "list"],
        &["xattr", "rm"],
    ];
    for command in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_lisafs"))
            .args(*command)
            .arg("-h")
            .output()
            .unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        // Short help puts an argument and its description on one line.
        let blank: Vec<&str> = help
            .lines()
            .filter(|line| line.starts_with("  <") || line.starts_with("  -"))
            .filter(|line| line.split_whitespace().count() < 2)
            .collect();
        assert!(
            help.contains("Arguments:") || help.contains("Options:"),
            "{help}"
        );
        assert!(
            blank.is_empty(),
            "{command:?} -h leaves {blank:?} undescribed"
        );
    }
}
