//! Command line and mount options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use fuser::{Config, SessionACL};
use rustix::mount::MountFlags;

use crate::fs::{DataPath, Timeouts};

/// Mount a lisafs share through FUSE.
///
/// With --root, starts a `gofer` serving DIR over a socketpair; with --memory, a `gofer
/// --memory` serving a tree in its memory; with --socket, attaches to a running gofer. Files are created with the calling process's uid and gid. The mount
/// goes away on SIGINT/SIGTERM, on `umount`, and when the gofer exits. Installed as
/// `mount.fuse.lisafs`, it takes mount(8)'s `SOURCE MOUNTPOINT -o OPTIONS` instead.
#[derive(Debug, Parser)]
#[command(name = "lisafs-mount", version)]
pub(crate) struct Args {
    /// Directory to serve: starts a gofer child on it.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["socket", "memory"])]
    pub(crate) root: Option<PathBuf>,

    /// Serve a tree in memory: starts a `gofer --memory` child (nothing reaches the host
    /// disk; everything is gone at unmount). Its size and initial contents are gofer
    /// flags: --gofer-arg=--memory-size=1G, --gofer-arg=--memory-from=DIR.
    #[arg(long, conflicts_with = "root")]
    pub(crate) memory: bool,

    /// Unix socket of a running gofer (`gofer --socket PATH`).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["root", "memory"])]
    pub(crate) socket: Option<PathBuf>,

    /// Where to mount.
    pub(crate) mountpoint: PathBuf,

    /// Mount read-only (and start the gofer with --readonly).
    #[arg(long)]
    pub(crate) readonly: bool,

    /// Stay in the foreground instead of returning once the mount is up.
    #[arg(long, short = 'f')]
    pub(crate) foreground: bool,

    /// Mount options, comma-separated: allow_other, allow_root, default_permissions,
    /// auto_unmount (unmount when this process dies, even by SIGKILL), ro, rw, dev, nodev,
    /// suid, nosuid, exec, noexec, atime, noatime, sync, async, dirsync, fsname=NAME (the
    /// source shown by findmnt; default lisafs:DIR or lisafs:SOCKET), subtype=NAME (the
    /// type is fuse.NAME; default fuse.lisafs).
    #[arg(short = 'o', value_name = "OPTIONS", value_delimiter = ',')]
    pub(crate) options: Vec<String>,

    /// Seconds the kernel may cache attributes. 0 (the default): every stat reaches the
    /// gofer, so host changes show at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub(crate) attr_timeout: f64,

    /// Seconds the kernel may cache name lookups (0: every lookup reaches the gofer).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub(crate) entry_timeout: f64,

    /// Do regular-file I/O in the bridge instead of FUSE passthrough. By default, where
    /// the kernel (6.9+) and the privileges allow, the kernel reads and writes the host
    /// file the gofer opened itself, with no round trip through this process.
    #[arg(long)]
    pub(crate) no_passthrough: bool,

    /// Let the kernel cache writes and send them in batches (the FUSE writeback cache).
    /// Faster small writes, but the kernel then trusts its own idea of a file's size and
    /// times while it holds dirty data, so host changes to an open file may not show at
    /// once. Rules out passthrough.
    #[arg(long)]
    pub(crate) writeback_cache: bool,

    /// Threads serving FUSE requests. One answers a lone process fastest (each request
    /// wakes the same thread; on a 2-core machine two threads took twice as long per
    /// request, see benches/README.md); more help when many processes use the mount at
    /// once on a machine with cores to spare.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) threads: usize,

    /// The gofer binary for --root and --memory (default: `gofer` next to this program, else on PATH).
    #[arg(long, value_name = "PATH")]
    pub(crate) gofer: Option<PathBuf>,

    /// An extra argument for the gofer started by --root or --memory (repeatable), e.g.
    /// --gofer-arg=--allow-setid.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) gofer_arg: Vec<String>,

    /// How much to log: error, warn, info, debug or trace (also passed to the gofer).
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Warn)]
    pub(crate) log_level: LogLevel,

    /// Where the log and errors go once a background mount is up (appended). Without
    /// it: the system log (`/dev/log`) if there is one, else nowhere. In the foreground
    /// they stay on standard error.
    #[arg(long, value_name = "FILE")]
    pub(crate) log_file: Option<PathBuf>,

    /// Internal: this is the background copy; report readiness on standard output.
    #[arg(long, hide = true)]
    pub(crate) daemon_child: bool,
}

/// `--log-level`: the levels both this program and the gofer accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also mounts, unmounts and gofer exits.
    Info,
    /// Also each FUSE operation's failures.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The name both `tracing`'s filter and the gofer's `--log-level` take.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// What to mount and how, from -o, --readonly and the source.
#[derive(Debug)]
pub(crate) struct MountSpec {
    /// Shown as the mount's source (`findmnt`'s SOURCE).
    pub(crate) fsname: String,
    /// The type is `fuse.SUBTYPE`.
    pub(crate) subtype: String,
    /// MS_* flags (nodev and nosuid unless dev or suid is asked for, as libfuse does).
    pub(crate) flags: MountFlags,
    /// FUSE options the kernel itself takes (default_permissions, allow_other).
    pub(crate) kernel_options: Vec<&'static str>,
    /// The same options as fusermount3 takes them, for a mount without CAP_SYS_ADMIN.
    pub(crate) fusermount_options: Vec<String>,
    /// Who may use the mount (fuser checks allow_root itself).
    pub(crate) acl: SessionACL,
    /// Unmount when this process dies, even by SIGKILL.
    pub(crate) auto_unmount: bool,
}

impl Args {
    /// Passthrough and the writeback cache, from --no-passthrough and --writeback-cache.
    pub(crate) fn data_path(&self) -> DataPath {
        DataPath {
            passthrough: !self.no_passthrough && !self.writeback_cache,
            writeback_cache: self.writeback_cache,
        }
    }

    /// The kernel cache timeouts.
    pub(crate) fn timeouts(&self) -> Result<Timeouts, String> {
        let secs = |value: f64, name: &str| {
            Duration::try_from_secs_f64(value).map_err(|_| format!("bad --{name} {value}"))
        };
        Ok(Timeouts {
            entry: secs(self.entry_timeout, "entry-timeout")?,
            attr: secs(self.attr_timeout, "attr-timeout")?,
        })
    }

    /// The fuser session configuration: threads (the mount itself is ours, see `mount.rs`).
    pub(crate) fn session_config(&self, acl: SessionACL) -> Config {
        let mut config = Config::default();
        config.acl = acl;
        config.n_threads = Some(self.threads.max(1));
        config.clone_fd = self.threads > 1;
        config
    }

    /// The mount from -o and --readonly; `source` is the default fsname.
    pub(crate) fn mount_spec(&self, source: String) -> Result<MountSpec, String> {
        let mut spec = MountSpec {
            fsname: source,
            subtype: "lisafs".into(),
            flags: MountFlags::NODEV | MountFlags::NOSUID,
            kernel_options: Vec::new(),
            fusermount_options: Vec::new(),
            acl: SessionACL::Owner,
            auto_unmount: false,
        };
        let mut words = Vec::new();
        for option in self.options.iter().filter(|option| !option.is_empty()) {
            let (set, clear) = match option.as_str() {
                "allow_other" => {
                    spec.acl = SessionACL::All;
                    continue;
                }
                "allow_root" => {
                    spec.acl = SessionACL::RootAndOwner;
                    continue;
                }
                "default_permissions" => {
                    spec.kernel_options.push("default_permissions");
                    words.push(option.clone());
                    continue;
                }
                "auto_unmount" => {
                    spec.auto_unmount = true;
                    continue;
                }
                "ro" => (MountFlags::RDONLY, MountFlags::empty()),
                "rw" => (MountFlags::empty(), MountFlags::RDONLY),
                "dev" => (MountFlags::empty(), MountFlags::NODEV),
                "nodev" => (MountFlags::NODEV, MountFlags::empty()),
                "suid" => (MountFlags::empty(), MountFlags::NOSUID),
                "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
                "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
                "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
                "atime" => (MountFlags::empty(), MountFlags::NOATIME),
                "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
                "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
                "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
                "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
                other => {
                    match other.split_once('=') {
                        Some(("fsname", name)) if !name.is_empty() => spec.fsname = name.into(),
                        Some(("subtype", name)) if valid_subtype(name) => {
                            spec.subtype = name.into();
                        }
                        Some(("subtype", name)) => {
                            return Err(format!(
                                "bad subtype {name:?}: use letters, digits, _ and -"
                            ))
                        }
                        _ => return Err(format!("unknown mount option {other:?}")),
                    }
                    continue;
                }
            };
            spec.flags = (spec.flags | set) - clear;
            words.push(option.clone());
        }
        if self.readonly {
            spec.flags |= MountFlags::RDONLY;
            words.push("ro".into());
        }
        if spec.acl != SessionACL::Owner {
            // The kernel knows only allow_other; fuser turns away others for allow_root.
            spec.kernel_options.push("allow_other");
            words.push("allow_other".into());
        }
        // fusermount3 takes the source and type as options; nodev and nosuid are its
        // default for users anyway.
        words.push(format!("fsname={}", spec.fsname.replace(',', "_")));
        words.push(format!("subtype={}", spec.subtype));
        spec.fusermount_options = words;
        Ok(spec)
    }
}

/// A subtype ends up in the filesystem type (`fuse.SUBTYPE`) and in mount(2)'s option
/// string, so it is kept to characters that cannot break either.
fn valid_subtype(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
