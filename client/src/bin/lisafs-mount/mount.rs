//! Making and removing our mount. fuser's own mounting types the mount plain `fuse` and,
//! when its session ends, unmounts whatever is on the mount point, which may be another
//! mount stacked on ours; so we mount here and give fuser only the /dev/fuse descriptor.
//!
//! As root the mount is mount(2) with type `fuse.SUBTYPE`; otherwise fusermount3 makes it
//! and passes the descriptor back over a socket (`_FUSE_COMMFD`), as libfuse does. The
//! mount is remembered by its mount ID, so that on exit we unmount it only if it is still
//! ours and on top, and leave the mount point alone once the kernel has dropped our
//! connection (someone unmounted it). `auto_unmount` is a small watcher process (or, for
//! users, fusermount3 itself) holding a pipe from us: when we die, even by SIGKILL, the
//! pipe closes and it lazily unmounts our mount if it is still on top.

use std::ffi::{CString, OsString};
use std::fs::OpenOptions;
use std::io::{IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitCode, Stdio};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
use rustix::io::{fcntl_setfd, Errno, FdFlags};
use rustix::mount::{unmount, UnmountFlags};
use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::cli::MountSpec;

/// The hidden first argument that makes this program an `auto_unmount` watcher.
pub(crate) const WATCHER_FLAG: &str = "--auto-unmount-watcher";

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8): a 64-bit mount ID never reused, unlike the
/// 32-bit `STATX_MNT_ID` we fall back to.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// A mount's identity as statx reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MountId {
    id: u64,
    unique: bool,
}

impl MountId {
    /// The ID of the mount on top of `path`. `STATX_DONT_SYNC`: asking our own FUSE
    /// mount must not send a request nobody may be serving yet (or any more).
    pub(crate) fn of(path: &Path) -> rustix::io::Result<Self> {
        let mask = StatxFlags::MNT_ID | StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE);
        let stx = statx(CWD, path, AtFlags::STATX_DONT_SYNC, mask)?;
        Ok(Self {
            id: stx.stx_mnt_id,
            unique: stx.stx_mask & STATX_MNT_ID_UNIQUE != 0,
        })
    }

    fn arg(self) -> String {
        format!("{}{}", if self.unique { "u" } else { "" }, self.id)
    }

    fn parse(arg: &str) -> Option<Self> {
        let (unique, id) = match arg.strip_prefix('u') {
            Some(id) => (true, id),
            None => (false, arg),
        };
        Some(Self {
            id: id.parse().ok()?,
            unique,
        })
    }
}

/// The mount this process made.
pub(crate) struct OurMount {
    mountpoint: PathBuf,
    id: MountId,
    /// Our FUSE connection, only to ask the kernel whether it still has it.
    conn: OwnedFd,
    /// fusermount3 made the mount (no CAP_SYS_ADMIN): it has to unmount it too.
    by_fusermount: bool,
    /// Held, never written: closes when we die, which tells our auto_unmount watcher
    /// to unmount.
    _watcher: Option<ChildStdin>,
    /// The same for fusermount3 in auto_unmount mode.
    _fusermount: Option<UnixStream>,
}

/// What [`OurMount::unmount`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unmounted {
    /// We unmounted it.
    Now,
    /// The kernel had already dropped the connection: someone else unmounted it.
    AlreadyGone,
    /// Still connected but not on top of the mount point (covered by a later mount, or
    /// lazily detached while busy); unmounting the mount point would hit someone else's.
    NotOnTop,
}

/// Mounts `spec` on `mountpoint`; returns the /dev/fuse descriptor for the session.
pub(crate) fn mount(spec: &MountSpec, mountpoint: &Path) -> Result<(OwnedFd, OurMount), String> {
    let at =
        |err: &dyn std::fmt::Display| format!("cannot mount on {}: {err}", mountpoint.display());
    let dev = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .map_err(|err| at(&format!("/dev/fuse: {err}")))?;
    let rootmode = std::fs::metadata(mountpoint)
        .map_err(|err| at(&err))?
        .mode();
    let mut data = format!(
        "fd={},rootmode={rootmode:o},user_id={},group_id={}",
        dev.as_raw_fd(),
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    for option in &spec.kernel_options {
        data.push(',');
        data.push_str(option);
    }
    let data = CString::new(data).map_err(|err| at(&err))?;
    let fstype = format!("fuse.{}", spec.subtype);
    let (fd, fusermount_socket, by_fusermount) = match rustix::mount::mount(
        spec.fsname.as_str(),
        mountpoint,
        fstype.as_str(),
        spec.flags,
        data.as_c_str(),
    ) {
        Ok(()) => (OwnedFd::from(dev), None, false),
        Err(Errno::PERM) => {
            drop(dev);
            let (fd, socket) = fusermount(spec, mountpoint).map_err(|err| at(&err))?;
            (fd, socket, true)
        }
        Err(err) => return Err(at(&err)),
    };
    let conn = fd.try_clone().map_err(|err| at(&err))?;
    let mut ours = OurMount {
        mountpoint: mountpoint.to_path_buf(),
        id: MountId::of(mountpoint).map_err(|err| at(&err))?,
        conn,
        by_fusermount,
        _watcher: None,
        _fusermount: fusermount_socket,
    };
    if spec.auto_unmount && !by_fusermount {
        match spawn_watcher(&ours) {
            Ok(stdin) => ours._watcher = Some(stdin),
            Err(err) => {
                let _ = ours.unmount();
                return Err(format!("auto_unmount: cannot start the watcher: {err}"));
            }
        }
    }
    Ok((fd, ours))
}

impl OurMount {
    /// Whether the kernel still has our connection; it drops it when the mount is gone.
    fn connected(&self) -> bool {
        let mut fds = [PollFd::new(&self.conn, PollFlags::empty())];
        loop {
            match poll(&mut fds, Some(&rustix::event::Timespec::default())) {
                Ok(_) => return !fds[0].revents().contains(PollFlags::ERR),
                Err(Errno::INTR) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Unmounts our mount if it is still there and on top of the mount point (lazily if
    /// it is busy), and never anyone else's.
    pub(crate) fn unmount(&self) -> Result<Unmounted, String> {
        if !self.connected() {
            return Ok(Unmounted::AlreadyGone);
        }
        if MountId::of(&self.mountpoint).ok() != Some(self.id) {
            return Ok(Unmounted::NotOnTop);
        }
        let shown = self.mountpoint.display();
        if self.by_fusermount {
            for flags in ["-u", "-uz"] {
                let status = Command::new("fusermount3")
                    .arg(flags)
                    .arg("--")
                    .arg(&self.mountpoint)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                if status.is_ok_and(|status| status.success()) {
                    return Ok(Unmounted::Now);
                }
            }
            return Err(format!("cannot unmount {shown}: fusermount3 -u failed"));
        }
        match unmount(&self.mountpoint, UnmountFlags::empty()) {
            Ok(()) => Ok(Unmounted::Now),
            Err(Errno::BUSY) => {
                tracing::warn!(mountpoint = %shown, "busy; detaching lazily");
                unmount(&self.mountpoint, UnmountFlags::DETACH)
                    .map(|()| Unmounted::Now)
                    .map_err(|err| format!("cannot unmount {shown}: {err}"))
            }
            Err(err) => Err(format!("cannot unmount {shown}: {err}")),
        }
    }
}

/// Starts `lisafs-mount --auto-unmount-watcher ID MOUNTPOINT` with a pipe on its stdin.
fn spawn_watcher(ours: &OurMount) -> std::io::Result<ChildStdin> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(WATCHER_FLAG)
        .arg(ours.id.arg())
        .arg(&ours.mountpoint)
        // Not in the mount (that would keep it busy), not on the caller's terminal or
        // pipes, and in its own process group so that ^C reaches only us.
        .current_dir("/")
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no pipe"))
}

/// The watcher: waits until the pipe from its lisafs-mount closes (it exited or was
/// killed), then lazily unmounts the mount if that very mount is still on top. Lazily,
/// as fusermount3 does: a process still inside must not keep a dead mount around.
pub(crate) fn watch(args: &[OsString]) -> ExitCode {
    let (Some(id), Some(mountpoint)) = (
        args.first()
            .and_then(|arg| arg.to_str())
            .and_then(MountId::parse),
        args.get(1),
    ) else {
        return ExitCode::from(2);
    };
    let mut buf = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
    if MountId::of(Path::new(mountpoint)).ok() == Some(id) {
        let _ = unmount(Path::new(mountpoint), UnmountFlags::DETACH);
    }
    ExitCode::SUCCESS
}

/// Has fusermount3 mount (`-o OPTIONS -- MOUNTPOINT`) and receives the /dev/fuse
/// descriptor it sends back. With auto_unmount fusermount3 stays running until the
/// returned socket closes, then unmounts.
fn fusermount(
    spec: &MountSpec,
    mountpoint: &Path,
) -> Result<(OwnedFd, Option<UnixStream>), String> {
    let (ours, theirs) = UnixStream::pair().map_err(|err| format!("socketpair: {err}"))?;
    fcntl_setfd(&theirs, FdFlags::empty()).map_err(|err| format!("fcntl: {err}"))?;
    let mut options = spec.fusermount_options.join(",");
    if spec.auto_unmount {
        options.push_str(",auto_unmount");
    }
    let mut command = Command::new("fusermount3");
    command
        .arg("-o")
        .arg(&options)
        .arg("--")
        .arg(mountpoint)
        .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if spec.auto_unmount {
        // It outlives this call: it must not hold the caller's stderr.
        command.stderr(Stdio::null()).current_dir("/");
        command
            .spawn()
            .map_err(|err| format!("cannot run fusermount3: {err}"))?;
    } else {
        let output = command
            .stderr(Stdio::piped())
            .output()
            .map_err(|err| format!("cannot run fusermount3: {err}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(stderr.trim().to_string());
        }
    }
    drop(theirs);
    let mut byte = [0u8; 1];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    recvmsg(
        ours.as_fd(),
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|err| format!("fusermount3: {err}"))?;
    let fd = control
        .drain()
        .find_map(|msg| match msg {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .ok_or("fusermount3 failed (no descriptor came back)")?;
    Ok((fd, spec.auto_unmount.then_some(ours)))
}
