//! Command line and mount options.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use fuser::{Config, MountOption, SessionACL};

use crate::fs::Timeouts;

/// Mount a lisafs share through FUSE.
///
/// With --root, starts a `gofer` serving DIR over a socketpair; with --socket, attaches to
/// a running gofer. Files are created with the calling process's uid and gid. The mount
/// goes away on SIGINT/SIGTERM, on `umount`, and when the gofer exits.
#[derive(Debug, Parser)]
#[command(name = "lisafs-mount", version)]
pub(crate) struct Args {
    /// Directory to serve: starts a gofer child on it.
    #[arg(long, value_name = "DIR", required_unless_present = "socket")]
    pub(crate) root: Option<PathBuf>,

    /// Unix socket of a running gofer (`gofer --socket PATH`).
    #[arg(long, value_name = "PATH", conflicts_with = "root")]
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
    /// auto_unmount, ro, rw, dev, nodev, suid, nosuid, exec, noexec, atime, noatime,
    /// sync, async, dirsync, fsname=NAME, subtype=NAME.
    #[arg(short = 'o', value_name = "OPTIONS", value_delimiter = ',')]
    pub(crate) options: Vec<String>,

    /// Seconds the kernel may cache attributes. 0 (the default): every stat reaches the
    /// gofer, so host changes show at once.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub(crate) attr_timeout: f64,

    /// Seconds the kernel may cache name lookups (0: every lookup reaches the gofer).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pub(crate) entry_timeout: f64,

    /// Threads serving FUSE requests.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub(crate) threads: usize,

    /// The gofer binary for --root (default: `gofer` next to this program, else on PATH).
    #[arg(long, value_name = "PATH")]
    pub(crate) gofer: Option<PathBuf>,

    /// An extra argument for the gofer started by --root (repeatable), e.g.
    /// --gofer-arg=--allow-setid.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    pub(crate) gofer_arg: Vec<String>,

    /// Log level (error, warn, info, debug, trace); logs go to standard error.
    #[arg(long, value_name = "LEVEL", default_value = "warn")]
    pub(crate) log_level: String,

    /// Internal: this is the background copy; report readiness on standard output.
    #[arg(long, hide = true)]
    pub(crate) daemon_child: bool,
}

impl Args {
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

    /// The fuser session configuration from -o, --readonly and --threads.
    pub(crate) fn config(&self, source: String) -> Result<Config, String> {
        let mut config = Config::default();
        let mut options = vec![
            MountOption::FSName(source),
            MountOption::Subtype("lisafs".into()),
        ];
        for option in self.options.iter().filter(|option| !option.is_empty()) {
            let parsed = match option.as_str() {
                "allow_other" => {
                    config.acl = SessionACL::All;
                    continue;
                }
                "allow_root" => {
                    config.acl = SessionACL::RootAndOwner;
                    continue;
                }
                "default_permissions" => MountOption::DefaultPermissions,
                "auto_unmount" => MountOption::AutoUnmount,
                "ro" => MountOption::RO,
                "rw" => MountOption::RW,
                "dev" => MountOption::Dev,
                "nodev" => MountOption::NoDev,
                "suid" => MountOption::Suid,
                "nosuid" => MountOption::NoSuid,
                "exec" => MountOption::Exec,
                "noexec" => MountOption::NoExec,
                "atime" => MountOption::Atime,
                "noatime" => MountOption::NoAtime,
                "sync" => MountOption::Sync,
                "async" => MountOption::Async,
                "dirsync" => MountOption::DirSync,
                other => match other.split_once('=') {
                    Some(("fsname", name)) => MountOption::FSName(name.into()),
                    Some(("subtype", name)) => MountOption::Subtype(name.into()),
                    _ => return Err(format!("unknown mount option {other:?}")),
                },
            };
            // A later fsname/subtype replaces the default one.
            options.retain(|known| {
                !matches!(
                    (known, &parsed),
                    (MountOption::FSName(_), MountOption::FSName(_))
                        | (MountOption::Subtype(_), MountOption::Subtype(_))
                )
            });
            options.push(parsed);
        }
        if self.readonly && !options.contains(&MountOption::RO) {
            options.push(MountOption::RO);
        }
        config.mount_options = options;
        config.n_threads = Some(self.threads.max(1));
        config.clone_fd = self.threads > 1;
        Ok(config)
    }
}
