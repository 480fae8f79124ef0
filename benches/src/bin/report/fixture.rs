//! The served tree on a tmpfs, and the gofer process serving it.

use std::fs;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::fs::statfs;
use rustix::mount::{mount, unmount, MountFlags, UnmountFlags};
use tempfile::TempDir;

/// Names in the served root, shared by the native and the lisafs operations.
pub(crate) mod names {
    /// A 4 KiB file: FStat, OpenAt+PRead+Close.
    pub(crate) const SMALL: &str = "f4k";
    /// `a/b/c`, a 4 KiB file three components down: WalkStat.
    pub(crate) const DEEP: [&str; 3] = ["a", "b", "c"];
    /// A 1 MiB file: PRead 1 MiB.
    pub(crate) const BIG: &str = "big";
    /// A directory of [`super::LIST_ENTRIES`] empty files: Getdents64.
    pub(crate) const LIST: &str = "list";
}

/// `statfs(2)`'s `f_type` of a tmpfs (rustix does not export it).
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Entries in the listed directory.
pub(crate) const LIST_ENTRIES: usize = 1000;
/// Size of the small files and of each PWrite.
pub(crate) const SMALL_SIZE: usize = 4096;
/// Size of the big file and of each big PRead.
pub(crate) const BIG_SIZE: usize = 1 << 20;

/// A temporary directory on a tmpfs: a private tmpfs mounted on a fresh directory when we
/// may mount (root), else a directory in `/dev/shm`. Unmounted and removed on drop.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// Whether `dir` is a tmpfs mount point of ours (unmounted in `Drop`, before the
    /// `TempDir` field removes the directory).
    mounted: bool,
    dir: TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("lisafs-bench")
            .tempdir_in("/tmp")
            .map_err(|err| format!("temp dir in /tmp: {err}"))?;
        // A tmpfs of our own: nothing else on the machine shares its locks or page cache
        // accounting, and it is gone with the run.
        let mounted = mount(
            "lisafs-bench",
            dir.path(),
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            c"size=1g,mode=0755",
        )
        .is_ok();
        let scratch = if mounted {
            Self { mounted, dir }
        } else {
            // Not root: /dev/shm is a tmpfs on every Linux we run on.
            let dir = tempfile::Builder::new()
                .prefix("lisafs-bench")
                .tempdir_in("/dev/shm")
                .map_err(|err| format!("temp dir in /dev/shm: {err}"))?;
            Self { mounted, dir }
        };
        let fs = statfs(scratch.path()).map_err(|err| format!("statfs: {err}"))?;
        // `f_type`'s integer type differs between architectures; i64 holds them all.
        #[allow(clippy::useless_conversion)]
        let f_type = i64::from(fs.f_type);
        if f_type != TMPFS_MAGIC {
            return Err(format!("{} is not on a tmpfs", scratch.path().display()));
        }
        Ok(scratch)
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// How the tmpfs was obtained, for the report's header.
    pub(crate) fn describe(&self) -> &'static str {
        if self.mounted {
            "a private tmpfs mounted for the run"
        } else {
            "/dev/shm (tmpfs)"
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.mounted {
            // Lazily, in case a gofer that failed to die still holds it; the TempDir then
            // removes the empty mount point.
            let _ = unmount(self.dir.path(), UnmountFlags::DETACH);
        }
    }
}

/// Creates the tree every operation uses under `root`.
pub(crate) fn populate(root: &Path) -> std::io::Result<()> {
    let small = vec![0x5a_u8; SMALL_SIZE];
    fs::write(root.join(names::SMALL), &small)?;
    let [a, b, c] = names::DEEP;
    fs::create_dir_all(root.join(a).join(b))?;
    fs::write(root.join(a).join(b).join(c), &small)?;
    fs::write(root.join(names::BIG), vec![0xa5_u8; BIG_SIZE])?;
    let list = root.join(names::LIST);
    fs::create_dir(&list)?;
    for i in 0..LIST_ENTRIES {
        fs::write(list.join(format!("entry-{i:04}")), b"")?;
    }
    Ok(())
}

/// A running gofer serving `root` on a socket; killed on drop.
#[derive(Debug)]
pub(crate) struct Gofer {
    child: Child,
    socket: PathBuf,
}

impl Gofer {
    /// Starts `binary` with `extra` flags and waits until it accepts connections.
    /// `spin_us` is passed as `--spin-us` when given.
    pub(crate) fn start(
        binary: &Path,
        root: &Path,
        socket: PathBuf,
        spin_us: Option<u64>,
        extra: &[&str],
    ) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command.args(extra);
        if let Some(us) = spin_us {
            command.arg("--spin-us").arg(us.to_string());
        }
        command.arg("--root").arg(root);
        Self::launch(binary, command, socket)
    }

    /// Starts `binary` serving, in memory, a copy of the tree at `from` (`--memory
    /// --memory-from`), and waits until it accepts connections.
    pub(crate) fn start_memory(
        binary: &Path,
        from: &Path,
        socket: PathBuf,
    ) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command.arg("--memory").arg("--memory-from").arg(from);
        Self::launch(binary, command, socket)
    }

    fn launch(binary: &Path, mut command: Command, socket: PathBuf) -> Result<Self, String> {
        let child = command
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|err| format!("start {}: {err}", binary.display()))?;
        let mut gofer = Self { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&gofer.socket).is_err() {
            if let Ok(Some(status)) = gofer.child.try_wait() {
                return Err(format!("the gofer exited during start-up: {status}"));
            }
            if Instant::now() > deadline {
                return Err("the gofer did not listen within 10 s".into());
            }
            sleep(Duration::from_millis(5));
        }
        Ok(gofer)
    }

    /// The process that serves: the started one, or with the default sandbox the child it
    /// forked into new namespaces (its only child).
    pub(crate) fn pid(&self) -> u32 {
        let pid = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        children
            .split_whitespace()
            .next()
            .and_then(|child| child.parse().ok())
            .unwrap_or(pid)
    }

    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for Gofer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gofer binary: `--gofer PATH`, else `$LISAFS_GOFER`, else `gofer` next to this
/// executable (both land in `target/release/`).
pub(crate) fn locate_gofer(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit.or_else(|| std::env::var_os("LISAFS_GOFER").map(PathBuf::from)) {
        return Ok(path);
    }
    let exe = std::env::current_exe().map_err(|err| format!("current_exe: {err}"))?;
    let beside = exe.with_file_name("gofer");
    if beside.is_file() {
        Ok(beside)
    } else {
        Err(format!(
            "no gofer binary at {}: run `cargo build --release -p lisafs-gofer` first, \
             or pass --gofer PATH",
            beside.display()
        ))
    }
}
