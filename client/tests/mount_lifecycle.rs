//! `lisafs-mount` as a FUSE filesystem seen from outside: real mounts with a real gofer,
//! checked with findmnt, umount and signals. Needs root and /dev/fuse; without them each
//! test says so and passes without checking anything.
#![allow(clippy::unwrap_used)]

mod mount_harness;

use std::ffi::OsStr;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::{Command, Stdio};

use mount_harness::{findmnt, mount, mount_bin, ready, run, umount, wait_for, Dirs};

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
    let missing = dirs.path("missing");
    for stderr in one_line_failures(&dirs, &["--root".as_ref(), missing.as_os_str()]) {
        assert!(stderr.starts_with("gofer: "), "{stderr}");
        assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
    }
}

/// Runs `lisafs-mount ARGS MOUNTPOINT` in the background and in the foreground; each run
/// must fail with exit status 1, one line on standard error and nothing mounted. Returns
/// the two lines.
fn one_line_failures(dirs: &Dirs, args: &[&OsStr]) -> Vec<String> {
    let mut lines = Vec::new();
    for foreground in [false, true] {
        let mut command = Command::new(mount_bin());
        if foreground {
            command.arg("--foreground");
        }
        let out = run(command.args(args).arg(dirs.m()));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(findmnt(&dirs.m(), None), None);
        lines.push(stderr);
    }
    lines
}

#[test]
fn a_gofer_killed_before_it_answers_is_reported_with_how_it_ended() {
    if !ready() {
        return;
    }
    let dirs = Dirs::new();
    // A "gofer" that dies as its seccomp filter would kill it: by SIGSYS, without a word.
    let gofer = dirs.path("gofer");
    std::fs::write(&gofer, "#!/bin/sh\nkill -SYS $$\n").unwrap();
    std::fs::set_permissions(&gofer, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = dirs.path("b");
    let args = [
        "--gofer".as_ref(),
        gofer.as_os_str(),
        "--root".as_ref(),
        root.as_os_str(),
    ];
    for stderr in one_line_failures(&dirs, &args) {
        assert!(stderr.contains("SIGSYS"), "{stderr}");
        assert!(stderr.contains("seccomp"), "{stderr}");
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
