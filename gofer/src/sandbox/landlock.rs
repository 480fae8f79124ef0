//! The Landlock layer: filesystem access only beneath the share.
//!
//! Namespaces and the pivot already leave the share as the only tree the gofer can name
//! by path; Landlock makes the kernel refuse access to other trees even through an FD or
//! a magic link the gofer still holds (the `/proc` handle's `..`, an FD inherited by
//! mistake), as a layer that does not depend on the gofer's own checks. It does not cover
//! a file a host process moved out of the share: reached through the share's mount, it
//! still counts as beneath it.

use std::os::fd::BorrowedFd;

use landlock::{
    Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus, ABI,
};

/// The newest Landlock ABI this code asks for; older kernels enforce what they know.
const ABI_WANTED: ABI = ABI::V6;

/// Restricts the process (every thread created afterwards, and this one) to `roots`: all
/// access beneath each, or only reading where it is marked read-only; nothing elsewhere.
/// Best effort: returns what the kernel enforces. Sets `no_new_privs`.
pub(crate) fn restrict_to(roots: &[(BorrowedFd<'_>, bool)]) -> Result<RulesetStatus, RulesetError> {
    let handled = AccessFs::from_all(ABI_WANTED);
    let mut ruleset = Ruleset::default().handle_access(handled)?.create()?;
    for &(root, readonly) in roots {
        let allowed = match readonly {
            true => AccessFs::from_read(ABI_WANTED),
            false => handled,
        };
        ruleset = ruleset.add_rule(PathBeneath::new(root, allowed))?;
    }
    Ok(ruleset.restrict_self()?.ruleset)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail by panicking.

    use std::os::fd::AsFd;
    use std::process::Command;

    use rustix::fs::{Mode, OFlags};

    use super::restrict_to;

    /// The variable that makes [`child`] restrict itself to the directory it names.
    const CHILD_ENV: &str = "LISAFS_LANDLOCK_UNIT_CHILD";

    /// The child side of [`only_the_share_is_reachable`]; passes at once when not a child.
    #[test]
    fn child() {
        let Some(share) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        let share = std::path::PathBuf::from(share);
        // A handle on a directory outside the share, opened before the restriction, as
        // the gofer's /proc handle is.
        let outside = rustix::fs::open(
            share.parent().unwrap(),
            OFlags::PATH | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        let root =
            rustix::fs::open(&share, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        restrict_to(&[(root.as_fd(), false)]).unwrap();
        let inside = rustix::fs::openat(&root, "f", OFlags::RDWR, Mode::empty());
        assert!(inside.is_ok(), "inside: {inside:?}");
        let beside = rustix::fs::openat(&outside, "secret", OFlags::RDONLY, Mode::empty());
        assert_eq!(beside.err(), Some(rustix::io::Errno::ACCESS));
        let created = rustix::fs::openat(
            &outside,
            "new",
            OFlags::CREATE | OFlags::WRONLY,
            Mode::from_raw_mode(0o600),
        );
        assert_eq!(created.err(), Some(rustix::io::Errno::ACCESS));
    }

    /// In a process restricted to a share, files in the share open, and files beside it do
    /// not, even through a directory FD opened before.
    #[test]
    fn only_the_share_is_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir(&share).unwrap();
        std::fs::write(share.join("f"), b"in").unwrap();
        std::fs::write(dir.path().join("secret"), b"out").unwrap();
        let exe = std::env::current_exe().unwrap();
        let out = Command::new(exe)
            .args(["--exact", "sandbox::landlock::tests::child", "--nocapture"])
            .env(CHILD_ENV, &share)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!dir.path().join("new").exists());
    }
}
