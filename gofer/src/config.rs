//! The `gofer` command line. Without the `cli` feature only the option enums remain.

#[cfg(feature = "cli")]
use std::path::PathBuf;

#[cfg(feature = "cli")]
use clap::{ArgGroup, Parser, ValueEnum};
#[cfg(feature = "cli")]
use lisafs_server::ServerOptions;

#[cfg(feature = "cli")]
use crate::host::{HostOptions, MknodKind, MknodKinds, XattrPolicy};

/// Serve a host directory to lisafs clients (gVisor's sentry or `lisafs`).
///
/// Every name a client sends is resolved one component at a time beneath --root; host
/// symlinks are never followed. Special files (FIFOs, host Unix sockets, devices) and
/// set-ID bits are refused unless enabled below.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Parser)]
#[command(name = "gofer", version)]
#[command(group(ArgGroup::new("connection").args(["socket", "fd"])))]
#[command(after_help = AFTER_HELP)]
pub struct Config {
    /// Directory to serve. It is opened once at startup; later changes to the path (a
    /// rename, a symlink swap) do not change what is served.
    #[arg(long, value_name = "DIR", required_unless_present_any = ["config", "memory"])]
    // `requires = "memory"` on the memory flags lets them through: a `bool` flag counts as
    // present with its default. Conflicting here is what refuses them beside --root.
    #[arg(conflicts_with_all = ["memory_size", "memory_from"])]
    pub root: Option<PathBuf>,

    /// Serve a tree held in the gofer's memory instead of a host directory: nothing is
    /// read from or written to the host disk (but --memory-from), and everything is gone
    /// when the gofer exits. Regular files are memfds, donated as host files are.
    /// BindAt, Listen, Accept and Connect are EOPNOTSUPP. Confinement is the same, with
    /// an empty read-only tmpfs as the process root. Not with --config.
    #[arg(long, conflicts_with_all = NOT_WITH_MEMORY)]
    pub memory: bool,

    /// With --memory: the most bytes of file data, symlink targets and extended
    /// attributes the tree may hold (file sizes rounded up to 4 KiB blocks), with a
    /// suffix K, M, G or T for KiB, MiB, GiB, TiB (64M, 1G); ENOSPC beyond it, and
    /// StatFS reports it. The tree may hold one file per KiB of it, and no more than half
    /// the open-file limit (each regular file is a memfd). By default half the physical
    /// memory, as tmpfs.
    #[arg(long, value_name = "SIZE", requires = "memory", value_parser = parse_size)]
    pub memory_size: Option<u64>,

    /// With --memory: copy the host directory DIR into the tree at start (read only, by
    /// FDs; symlinks are copied as links and never followed; modes, owners and times are
    /// kept, extended attributes are not). Later changes on either side do not reach the
    /// other.
    #[arg(long, value_name = "DIR", requires = "memory")]
    pub memory_from: Option<PathBuf>,

    /// Serve every mount of a TOML config file (README.md has the schema) from this one
    /// process, instead of the one mount --root and the other flags describe.
    #[arg(long, value_name = "FILE", conflicts_with_all = MOUNT_FLAGS)]
    pub config: Option<PathBuf>,

    /// Only check the configuration (flags or --config): print the effective settings,
    /// or the first error with its file, line and key, and exit.
    #[arg(long)]
    pub check: bool,

    /// Listen on a Unix socket at PATH and serve each connection as one mount. A stale
    /// socket file at PATH (nothing listens on it) is replaced; a live one, or any other
    /// file, is an error. The file is removed when the gofer stops.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Serve the socket inherited as file descriptor N: a connected one is served until
    /// the client closes it; a listening one like --socket.
    #[arg(long, value_name = "N")]
    pub fd: Option<i32>,

    /// Refuse every change to the served tree (EROFS).
    #[arg(long)]
    pub readonly: bool,

    /// Donate a fresh read-only directory FD of the root with Mount and with OpenAt of the
    /// mount point, as gVisor's sentry needs with --directfs=true (no other directory is
    /// ever donated). Its holder reaches the whole share directly, under its own
    /// credentials and outside the gofer's policy (only nosuid, nodev and --readonly
    /// hold): only for trusted clients. ".." from it stays at the root of the gofer's
    /// detached mount, except in the unprivileged --sandbox none fallback.
    #[arg(long)]
    pub donate_mount_fd: bool,

    /// Host Unix sockets: "open" allows connecting to socket files, "create" allows
    /// binding new ones (with listen and accept), "all" both.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = HostUds::None)]
    pub host_uds: HostUds,

    /// Host FIFOs: "open" allows opening them (without ever blocking the gofer).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = HostFifo::None)]
    pub host_fifo: HostFifo,

    /// Walk onto other filesystems mounted below the root (by default EXDEV).
    #[arg(long)]
    pub allow_submounts: bool,

    /// Keep set-user-ID, set-group-ID and sticky bits clients ask for (by default they
    /// are removed, and the gofer drops CAP_FSETID so writes clear them too).
    #[arg(long)]
    pub allow_setid: bool,

    /// Extended attributes clients may read, set, remove and list: "user" only the
    /// user.* namespace, "all" also security.*, trusted.* and system.*, "none" nothing
    /// (EOPNOTSUPP).
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = XattrPolicy::User)]
    pub xattr: XattrPolicy,

    /// Special files MknodAt may create, a comma-separated subset of fifo,socket,char,block
    /// (by default none: only regular files and the 0:0 whiteout). The nodes stay inert
    /// for the gofer: opening them is still governed by --host-fifo and --host-uds, and
    /// devices are never opened (the share is mounted nodev).
    #[arg(long, value_enum, value_name = "KINDS", value_delimiter = ',')]
    pub mknod: Vec<MknodKind>,

    /// How the gofer confines itself before serving: "namespace" (its own mount, PID,
    /// IPC, UTS and network namespaces, with the share as its root), "chroot" (only a
    /// chroot into the share, for runtimes that set up namespaces themselves), "none"
    /// (unconfined; logged as a warning).
    #[arg(long, value_enum, value_name = "MODE", default_value_t = SandboxMode::Namespace)]
    pub sandbox: SandboxMode,

    /// The seccomp filter: "kill" ends the gofer on a system call outside its allowlist,
    /// "log" only logs it (for finding a missing rule), "none" installs no filter.
    #[arg(long, value_enum, value_name = "ACTION", default_value_t = SeccompAction::Kill)]
    pub seccomp: SeccompAction,

    /// Most connections served at once; a connection beyond it is closed at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Most FDs one connection may hold at once (EMFILE beyond). By default as many as
    /// fit: the open-file limit, less a reserve, shared by --max-connections (with --fd,
    /// by the one connection).
    #[arg(long, value_name = "N")]
    pub max_fds: Option<usize>,

    /// Most shared-memory channels one connection may create (ENOMEM beyond). 0 keeps
    /// lisafs-rs clients on the socket, but gVisor's client cannot mount without a
    /// channel: keep at least 1 for gVisor sandboxes.
    #[arg(long, value_name = "N", default_value_t = ServerOptions::default().max_channels)]
    pub max_channels: usize,

    /// Longest a channel thread spins on its window before it sleeps in FUTEX_WAIT, in
    /// microseconds. The actual spin adapts to recent response times up to this cap; 0
    /// never spins (lowest CPU use, slowest round trips).
    #[arg(long, value_name = "MICROS", default_value_t = crate::plan::DEFAULT_SPIN_US)]
    pub spin_us: u64,

    /// Log level: connections and start-up at info, refusals that look like attacks
    /// (escape attempts, refused special files or xattrs) at warn, every failed request at
    /// debug. Logs go to standard error. RUST_LOG, if set, overrides it (for example
    /// RUST_LOG=lisafs_server=debug).
    #[arg(long, value_enum, value_name = "LEVEL", default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,

    /// Serve metrics (request counts and latencies by message, errors by errno, bytes,
    /// open FDs, connections, channels) in the Prometheus text format over HTTP on a Unix
    /// socket at PATH: `curl --unix-socket PATH http://gofer/metrics`. Mode 0600.
    #[arg(long, value_name = "PATH")]
    pub metrics_socket: Option<PathBuf>,

    /// Log format: "text" (one readable line per event) or "json" (one JSON object per
    /// line, for log collectors).
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The flags that describe the one mount of the command line: `--config` describes its
/// mounts itself. (Process-wide flags, `--log-level` say, are in the file too.)
#[cfg(feature = "cli")]
const MOUNT_FLAGS: [&str; 23] = [
    "root",
    "memory",
    "memory_size",
    "memory_from",
    "socket",
    "fd",
    "readonly",
    "donate_mount_fd",
    "host_uds",
    "host_fifo",
    "allow_submounts",
    "allow_setid",
    "xattr",
    "mknod",
    "sandbox",
    "seccomp",
    "max_connections",
    "max_fds",
    "max_channels",
    "spin_us",
    "log_level",
    "log_format",
    "metrics_socket",
];

/// The flags `--memory` excludes: a host root, the host backend's own policy (the memory
/// tree keeps xattrs of every namespace, set-ID bits as set, and every kind of node, all
/// inert for the host), and `--config`.
#[cfg(feature = "cli")]
const NOT_WITH_MEMORY: [&str; 9] = [
    "root",
    "donate_mount_fd",
    "host_uds",
    "host_fifo",
    "allow_submounts",
    "allow_setid",
    "xattr",
    "mknod",
    "config",
];

/// `--memory-size`: a byte count with an optional binary suffix (K, M, G, T), above 0.
#[cfg(feature = "cli")]
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.char_indices().last() {
        Some((at, suffix)) if suffix.is_ascii_alphabetic() => {
            let shift = match suffix.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown suffix {suffix:?}: use K, M, G or T")),
            };
            (&text[..at], shift)
        }
        _ => (text, 0),
    };
    let count: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 4096, 64M or 1G"))?;
    let bytes = count
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes == 0 {
        return Err("the size must be above 0".into());
    }
    Ok(bytes)
}

/// The part of `--help` after the options: what the flags do not say.
#[cfg(feature = "cli")]
const AFTER_HELP: &str = "\
Connections: one of --socket and --fd, or a socket passed by systemd socket activation
(LISTEN_FDS=1 and LISTEN_PID, as a .socket unit sets them). With NOTIFY_SOCKET set
(Type=notify), the gofer sends READY=1 once it serves, and STOPPING=1 when it stops.

Stopping: SIGTERM, SIGINT or SIGHUP stop the gofer gracefully: it stops accepting, lets
requests in flight finish (up to 5 s), removes its socket file and exits 0. SIGQUIT, or a
second signal, ends it at once. With --config, SIGHUP reloads the rules and reopens the
audit file instead, and every connection goes on.";

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// JSON lines.
    Json,
}

/// `--host-uds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum HostUds {
    /// No host Unix sockets.
    None,
    /// Connect to existing socket files.
    Open,
    /// Create (bind) socket files, listen and accept.
    Create,
    /// Both.
    All,
}

/// `--host-fifo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum HostFifo {
    /// FIFOs cannot be opened.
    None,
    /// FIFOs can be opened.
    Open,
}

/// `--sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum SandboxMode {
    /// Own namespaces and the share as the root.
    Namespace,
    /// A chroot into the share only.
    Chroot,
    /// No confinement.
    None,
}

/// `--seccomp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum SeccompAction {
    /// Kill the process on a system call outside the allowlist.
    Kill,
    /// Log such calls and let them run.
    Log,
    /// No filter.
    None,
}

/// Default `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 16;

/// `--log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(ValueEnum))]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warn,
    /// Also startup and connection events.
    Info,
    /// Also per-request failures.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The `tracing` level.
    pub fn level(self) -> tracing::Level {
        match self {
            Self::Error => tracing::Level::ERROR,
            Self::Warn => tracing::Level::WARN,
            Self::Info => tracing::Level::INFO,
            Self::Debug => tracing::Level::DEBUG,
            Self::Trace => tracing::Level::TRACE,
        }
    }
}

#[cfg(feature = "cli")]
impl Config {
    /// The host backend's policy.
    pub fn host_options(&self) -> HostOptions {
        HostOptions {
            allow_submounts: self.allow_submounts,
            uds_connect: matches!(self.host_uds, HostUds::Open | HostUds::All),
            uds_create: matches!(self.host_uds, HostUds::Create | HostUds::All),
            fifo_open: self.host_fifo == HostFifo::Open,
            allow_setid: self.allow_setid,
            donate_mount_fd: self.donate_mount_fd,
            xattr: self.xattr,
            mknod: MknodKinds::from_list(&self.mknod),
        }
    }
}

#[cfg(all(test, feature = "cli"))]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("gofer").chain(args.iter().copied()))
    }

    #[test]
    fn command_definition_is_consistent() {
        Config::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_strict_policy() {
        let config = parse(&["--root", "/srv", "--socket", "/run/g.sock"]).unwrap();
        assert_eq!(config.host_options(), HostOptions::default());
        assert!(!config.readonly);
        assert_eq!(config.max_fds, None);
        assert_eq!(config.log_level, LogLevel::Info);
    }

    #[test]
    fn every_flag_maps_to_its_option() {
        let args = [
            "--root",
            "/srv",
            "--fd",
            "3",
            "--readonly",
            "--donate-mount-fd",
            "--host-uds",
            "all",
            "--host-fifo",
            "open",
            "--allow-submounts",
            "--allow-setid",
            "--xattr",
            "all",
            "--mknod",
            "fifo,char",
            "--max-fds",
            "7",
            "--log-level",
            "debug",
        ];
        let config = parse(&args).unwrap();
        let expected = HostOptions {
            allow_submounts: true,
            uds_connect: true,
            uds_create: true,
            fifo_open: true,
            allow_setid: true,
            donate_mount_fd: true,
            xattr: XattrPolicy::All,
            mknod: MknodKinds {
                fifo: true,
                socket: false,
                char: true,
                block: false,
            },
        };
        assert_eq!(config.host_options(), expected);
        assert_eq!(config.fd, Some(3));
        assert!(config.readonly);
        assert_eq!(config.max_fds, Some(7));
        assert_eq!(config.log_level.level(), tracing::Level::DEBUG);
    }

    #[test]
    fn host_uds_open_and_create_are_separate() {
        let open = parse(&["--root", "/", "--fd", "3", "--host-uds", "open"]).unwrap();
        assert!(open.host_options().uds_connect && !open.host_options().uds_create);
        let create = parse(&["--root", "/", "--fd", "3", "--host-uds", "create"]).unwrap();
        assert!(!create.host_options().uds_connect && create.host_options().uds_create);
    }

    #[test]
    fn socket_and_fd_exclude_each_other() {
        // Neither parses: systemd may pass the socket (checked at start, `cli::run`).
        assert!(parse(&["--root", "/srv"]).is_ok());
        assert!(parse(&["--root", "/srv", "--socket", "/s", "--fd", "3"]).is_err());
    }

    #[test]
    fn memory_sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        for bad in [
            "",
            "0",
            "0M",
            "M",
            "1.5G",
            "-1",
            "12Q",
            "1GB",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_replaces_the_root_and_the_host_policy() {
        let config = parse(&["--memory", "--memory-size", "1G", "--fd", "3"]).unwrap();
        assert!(config.memory && config.root.is_none());
        assert_eq!(config.memory_size, Some(1 << 30));
        assert!(parse(&[
            "--memory",
            "--memory-from",
            "/srv",
            "--readonly",
            "--fd",
            "3"
        ])
        .is_ok());
        assert!(parse(&["--memory", "--root", "/srv", "--fd", "3"]).is_err());
        assert!(parse(&["--memory", "--mknod", "fifo", "--fd", "3"]).is_err());
        assert!(parse(&["--memory", "--config", "/g.toml"]).is_err());
        // The memory flags need --memory, and never go with a root.
        assert!(parse(&["--memory-size", "1G", "--fd", "3"]).is_err());
        assert!(parse(&["--root", "/srv", "--memory-from", "/x", "--fd", "3"]).is_err());
        assert!(parse(&["--root", "/srv", "--memory-size", "1M", "--fd", "3"]).is_err());
    }

    #[test]
    fn log_format_is_text_or_json() {
        let json = parse(&["--root", "/", "--fd", "3", "--log-format", "json"]).unwrap();
        assert_eq!(json.log_format, LogFormat::Json);
        assert!(parse(&["--root", "/", "--fd", "3", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn unknown_policy_values_are_rejected() {
        assert!(parse(&["--root", "/", "--fd", "3", "--host-uds", "maybe"]).is_err());
        assert!(parse(&["--root", "/", "--fd", "3", "--log-level", "loud"]).is_err());
    }
}
