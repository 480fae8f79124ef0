//! What the `lisafs-mount` tests share: real mounts with a real gofer, and the checks
//! around them. Needs root and /dev/fuse; without them each test says so and passes
//! without checking anything.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// How long anything may take before the test calls it hung: far above a real run.
pub(crate) const LIVENESS: Duration = Duration::from_secs(60);

pub(crate) fn mount_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lisafs-mount")
}

/// Whether mounting can be tried here; builds the gofer `--root` starts (it looks next
/// to lisafs-mount, and another package's binary is not built for these tests).
pub(crate) fn ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        if !rustix::process::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
            eprintln!("skipped: needs root and /dev/fuse");
            return false;
        }
        let dir = Path::new(mount_bin()).parent().unwrap();
        let mut build = Command::new(std::env::var("CARGO").unwrap_or("cargo".into()));
        build.args(["build", "--quiet", "-p", "lisafs-gofer", "--bin", "gofer"]);
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "cannot build the gofer");
        assert!(dir.join("gofer").is_file());
        true
    })
}

/// A temp dir with a share (`b`, holding `f` = "bottom"), a second share (`c`, holding
/// `f` = "top") and a mount point (`m`); unmounts whatever is left on `m` when dropped.
pub(crate) struct Dirs {
    pub(crate) tmp: tempfile::TempDir,
}

impl Dirs {
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, content) in [("b", "bottom"), ("c", "top")] {
            std::fs::create_dir(tmp.path().join(dir)).unwrap();
            std::fs::write(tmp.path().join(dir).join("f"), content).unwrap();
        }
        std::fs::create_dir(tmp.path().join("m")).unwrap();
        Self { tmp }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub(crate) fn m(&self) -> PathBuf {
        self.path("m")
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        while findmnt(&self.m(), None).is_some() {
            if !Command::new("umount")
                .arg("-l")
                .arg(self.m())
                .status()
                .unwrap()
                .success()
            {
                break;
            }
        }
    }
}

/// `findmnt [-t TYPE] --mountpoint M -n -r -o SOURCE,FSTYPE`: the top mount's source and
/// type, if M is a mount point (of that type).
pub(crate) fn findmnt(mountpoint: &Path, fstype: Option<&str>) -> Option<String> {
    let mut command = Command::new("findmnt");
    if let Some(fstype) = fstype {
        command.args(["-t", fstype]);
    }
    let out = command
        .args(["-n", "-r", "-o", "SOURCE,FSTYPE", "--mountpoint"])
        .arg(mountpoint)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // Stacked mounts list bottom first: the last line is the one on top.
    text.lines().last().map(str::to_string)
}

/// Runs to completion, killed after [`LIVENESS`].
pub(crate) fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + LIVENESS;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("still running after {LIVENESS:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

pub(crate) fn run(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

/// `lisafs-mount --root SHARE M ARGS…` in the background mode; expects success.
pub(crate) fn mount(dirs: &Dirs, share: &str, args: &[&str]) {
    let out = run(Command::new(mount_bin())
        .arg("--root")
        .arg(dirs.path(share))
        .arg(dirs.m())
        .args(args));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn umount(path: &Path) {
    let status = Command::new("umount").arg(path).status().unwrap();
    assert!(status.success());
}

/// A foreground `lisafs-mount --root b` on `m` with `args`, stopped and reaped on drop.
pub(crate) struct Mount {
    child: Child,
}

impl Mount {
    pub(crate) fn new(dirs: &Dirs, args: &[&str]) -> Self {
        let child = Command::new(mount_bin())
            .args(["--foreground", "--root"])
            .arg(dirs.path("b"))
            .arg(dirs.m())
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("mounted", || {
            findmnt(&dirs.m(), Some("fuse.lisafs")).is_some()
        });
        Self { child }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        kill_process(self.pid(), signal).unwrap();
    }

    /// The bridge's process ID.
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap()).unwrap()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        self.signal(Signal::CONT);
        self.signal(Signal::TERM);
        self.child.wait().unwrap();
    }
}

/// Waits until `done` holds, failing after [`LIVENESS`].
pub(crate) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIVENESS;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not after {LIVENESS:?}");
        thread::sleep(Duration::from_millis(20));
    }
}
