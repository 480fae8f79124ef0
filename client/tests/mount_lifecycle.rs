//! `lisafs-mount` as a FUSE filesystem seen from outside: real mounts with a real gofer,
//! checked with findmnt, umount and signals. Needs root and /dev/fuse; without them each
//! test says so and passes without checking anything.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// How long anything may take before the test calls it hung: far above a real run.
const LIVENESS: Duration = Duration::from_secs(60);

fn mount_bin() -> &'static str {
    env!("CARGO_BIN_EXE_lisafs-mount")
}

/// Whether mounting can be tried here; builds the gofer `--root` starts (it looks next
/// to lisafs-mount, and another package's binary is not built for these tests).
fn ready() -> bool {
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
struct Dirs {
    tmp: tempfile::TempDir,
}

impl Dirs {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        for (dir, content) in [("b", "bottom"), ("c", "top")] {
            std::fs::create_dir(tmp.path().join(dir)).unwrap();
            std::fs::write(tmp.path().join(dir).join("f"), content).unwrap();
        }
        std::fs::create_dir(tmp.path().join("m")).unwrap();
        Self { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn m(&self) -> PathBuf {
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
fn findmnt(mountpoint: &Path, fstype: Option<&str>) -> Option<String> {
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
fn finish(mut child: Child) -> Output {
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

fn run(command: &mut Command) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child)
}

/// `lisafs-mount --root SHARE M ARGS…` in the background mode; expects success.
fn mount(dirs: &Dirs, share: &str, args: &[&str]) {
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

fn umount(path: &Path) {
    let status = Command::new("umount").arg(path).status().unwrap();
    assert!(status.success());
}

/// Waits until `done` holds, failing after [`LIVENESS`].
fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIVENESS;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not after {LIVENESS:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn background_mount_lets_go_of_the_callers_stderr() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    // `| cat` ends only when every writer of the pipe has closed it: the mount's
    // background process (and its gofer) must have let go of stdout and stderr.
    let script = format!(
        "'{}' --root '{}' '{}' 2>&1 | cat",
        mount_bin(),
        dirs.path("b").display(),
        dirs.m().display()
    );
    let out = run(Command::new("sh").arg("-c").arg(script));
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(dirs.m().join("f")).unwrap(),
        "bottom"
    );
    umount(&dirs.m());
}

#[test]
fn umount_of_the_top_of_two_stacked_mounts_leaves_the_bottom_one_serving() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    mount(&dirs, "b", &[]);
    mount(&dirs, "c", &[]);
    assert_eq!(std::fs::read_to_string(dirs.m().join("f")).unwrap(), "top");
    umount(&dirs.m());
    // The top's process must exit without touching the mount point: give it the time
    // to do so, then the bottom mount must still be there and still be served.
    let top = format!("lisafs:{}", dirs.path("c").display());
    wait_for("the top's lisafs-mount and gofer exit", || {
        !Command::new("pgrep")
            .args(["-f", "--", &format!("--root {}", dirs.path("c").display())])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    });
    let seen = findmnt(&dirs.m(), Some("fuse.lisafs")).unwrap();
    assert!(!seen.contains(&top), "{seen}");
    assert!(seen.starts_with(&format!("lisafs:{} ", dirs.path("b").display())));
    assert_eq!(
        std::fs::read_to_string(dirs.m().join("f")).unwrap(),
        "bottom"
    );
    umount(&dirs.m());
    assert_eq!(findmnt(&dirs.m(), None), None);
}

#[test]
fn the_type_is_fuse_lisafs_or_the_subtype_asked_for() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    mount(&dirs, "b", &[]);
    let source = format!("lisafs:{}", dirs.path("b").display());
    assert_eq!(
        findmnt(&dirs.m(), Some("fuse.lisafs")),
        Some(format!("{source} fuse.lisafs"))
    );
    umount(&dirs.m());
    mount(&dirs, "b", &["-o", "subtype=x,fsname=share"]);
    assert_eq!(
        findmnt(&dirs.m(), Some("fuse.x")),
        Some("share fuse.x".into())
    );
    umount(&dirs.m());
}

#[test]
fn auto_unmount_removes_the_mount_when_the_process_is_killed() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    let mut child = Command::new(mount_bin())
        .args(["--foreground", "-o", "auto_unmount", "--root"])
        .arg(dirs.path("b"))
        .arg(dirs.m())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("mounted", || {
        findmnt(&dirs.m(), Some("fuse.lisafs")).is_some()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("auto-unmounted", || findmnt(&dirs.m(), None).is_none());
}

#[test]
fn a_bogus_log_level_is_a_usage_error() {
    let dirs = Dirs::new();
    let out = run(Command::new(mount_bin())
        .args(["--log-level", "bogus", "--root"])
        .arg(dirs.path("b"))
        .arg(dirs.m()));
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--log-level"), "{stderr}");
    assert_eq!(findmnt(&dirs.m(), None), None);
}

#[test]
fn a_gofer_that_cannot_start_is_reported_in_its_own_one_line() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    for foreground in [false, true] {
        let mut command = Command::new(mount_bin());
        if foreground {
            command.arg("--foreground");
        }
        let missing = dirs.path("missing");
        let out = run(command.arg("--root").arg(&missing).arg(dirs.m()));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("gofer: "), "{stderr}");
        assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    }
}

#[test]
fn the_mount_helper_takes_mount8_arguments() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    let helper = dirs.path("mount.fuse.lisafs");
    symlink(mount_bin(), &helper).unwrap();
    let source = format!("root={}", dirs.path("b").display());
    let out = run(Command::new(&helper)
        .arg(&source)
        .arg(dirs.m())
        .args(["-o", "rw,noauto,ro,default_permissions"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(findmnt(&dirs.m(), Some("fuse.lisafs")).is_some());
    assert_eq!(
        std::fs::read_to_string(dirs.m().join("f")).unwrap(),
        "bottom"
    );
    let err = std::fs::write(dirs.m().join("g"), "x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    umount(&dirs.m());
    assert_eq!(findmnt(&dirs.m(), None), None);
}
