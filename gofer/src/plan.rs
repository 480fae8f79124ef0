//! What one gofer process serves: the process-wide settings and one or more mounts, from the
//! command line (one mount) or from a `--config` file (any number).
//!
//! The config file is TOML; its schema is in README.md ("One gofer, many mounts"). Every
//! error names the file, the line and the key. Keys the gofer does not know, and the parts
//! are refused, never ignored: a policy that silently does not apply is worse than none.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::ValueEnum;
use lisafs_server::{IdMap, IdRange, ServerOptions, SpinPolicy};
use serde::Deserialize;
use toml::Spanned;

use crate::audit::{AuditOps, OnFull};
use crate::config::DEFAULT_MAX_CONNECTIONS;
use crate::config::{Config, HostFifo, HostUds, LogFormat, LogLevel, SandboxMode, SeccompAction};
use crate::host::{HostOptions, MknodKind, MknodKinds, XattrPolicy};
use crate::memory::MemoryOptions;
use crate::rules::{Action, Rule};
use lisafs_server::hooks::OpClass;

/// Everything one gofer process serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How the process confines itself.
    pub sandbox: SandboxMode,
    /// The seccomp filter's action.
    pub seccomp: SeccompAction,
    /// The log level (`RUST_LOG` overrides it).
    pub log_level: LogLevel,
    /// The log format.
    pub log_format: LogFormat,
    /// Where to serve metrics, if anywhere.
    pub metrics_socket: Option<PathBuf>,
    /// The mounts, at least one, with distinct names and connection sources.
    pub mounts: Vec<MountPlan>,
    /// The audit log, if any (config file only).
    pub audit: Option<AuditPlan>,
    /// The config file it was read from; `None` for the command line.
    pub file: Option<PathBuf>,
}

/// `[audit]`: where and what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPlan {
    /// The file (appended to), or `None` for standard error ("-").
    pub file: Option<PathBuf>,
    /// Which operations are logged.
    pub ops: AuditOps,
    /// What a request does when the writer falls behind.
    pub on_full: OnFull,
}

/// One served directory.
#[derive(Debug, Clone, PartialEq)]
pub struct MountPlan {
    /// Its name in logs and errors ("root" for the command line's one mount).
    pub name: String,
    /// The directory (empty when the mount is served from memory).
    pub root: PathBuf,
    /// Serve a tree in memory instead of `root` (`--memory`, command line only).
    pub memory: Option<MemoryPlan>,
    /// Where its connections come from.
    pub connection: Connection,
    /// Most connections served at once (a connected `fd` is one).
    pub max_connections: usize,
    /// The host backend's policy.
    pub host: HostOptions,
    /// Refuse every change (`EROFS`).
    pub readonly: bool,
    /// The explicit FD cap per connection, if one was given (otherwise as many as fit).
    pub max_fds: Option<usize>,
    /// Most channels per connection.
    pub max_channels: usize,
    /// Longest a channel thread spins, in microseconds.
    pub spin_us: u64,
    /// User and group ID translation, if any.
    pub ids: Option<IdMap>,
    /// Path rules, first match wins.
    pub rules: Vec<Rule>,
    /// Whether opened files' host FDs may be given to the client (`donate = false`: every
    /// read and write is an RPC the gofer sees, and the rules and audit log with it).
    pub donate: bool,
}

impl MountPlan {
    /// The server's options, with the per-connection FD cap `max_fds` that fits.
    pub fn server_options(&self, max_fds: usize, metrics: bool) -> ServerOptions {
        ServerOptions {
            readonly: self.readonly,
            max_fds,
            max_channels: self.max_channels,
            metrics,
            spin: SpinPolicy {
                max_spin: std::time::Duration::from_micros(self.spin_us),
            },
            ids: self.ids.clone().map(Arc::new),
        }
    }
}

/// `--memory`: a tree in the gofer's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryPlan {
    /// The size limit in bytes (`--memory-size`, or half the physical memory).
    pub size: u64,
    /// The host directory to copy in at start (`--memory-from`).
    pub from: Option<PathBuf>,
}

impl MemoryPlan {
    /// The backend's limits: `size` bytes, and one file per KiB of it but no more than
    /// `file_fds`, the FDs set aside for files (every regular file holds a memfd).
    /// With `read_only`, its files are created sealable (see [`MemoryOptions::read_only`]).
    pub fn options(&self, file_fds: u64, read_only: bool) -> MemoryOptions {
        MemoryOptions {
            max_bytes: Some(self.size),
            max_inodes: Some((self.size / 1024).clamp(1, file_fds.max(1))),
            read_only,
        }
    }
}

/// The default `--memory-size`: half the physical memory, as tmpfs (at least 1 MiB).
pub fn default_memory_size() -> u64 {
    let info = rustix::system::sysinfo();
    // `totalram` is a C `unsigned long`: already `u64` here, but not on 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let total = u64::from(info.totalram).saturating_mul(u64::from(info.mem_unit.max(1)));
    (total / 2).max(1 << 20)
}

/// Default `spin_us`.
pub const DEFAULT_SPIN_US: u64 = 200;

/// Where a mount's connections come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// A new listening socket at this path.
    Socket(PathBuf),
    /// An inherited socket, connected or listening.
    Fd(i32),
    /// Not given: systemd socket activation, or an error (command line only).
    Unset,
}

/// A config file that cannot be served, naming where.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// The line, when the error has a place.
    pub line: Option<usize>,
    /// What is wrong (with the key).
    pub message: String,
}

impl Plan {
    /// The one mount the command line describes.
    pub fn from_flags(config: &Config) -> Self {
        let connection = match (&config.socket, config.fd) {
            (Some(path), _) => Connection::Socket(path.clone()),
            (None, Some(fd)) => Connection::Fd(fd),
            (None, None) => Connection::Unset,
        };
        Self {
            sandbox: config.sandbox,
            seccomp: config.seccomp,
            log_level: config.log_level,
            log_format: config.log_format,
            metrics_socket: config.metrics_socket.clone(),
            audit: None,
            file: None,
            mounts: vec![MountPlan {
                name: "root".into(),
                root: config.root.clone().unwrap_or_default(),
                memory: config.memory.then(|| MemoryPlan {
                    size: config.memory_size.unwrap_or_else(default_memory_size),
                    from: config.memory_from.clone(),
                }),
                connection,
                max_connections: config.max_connections,
                host: config.host_options(),
                readonly: config.readonly,
                max_fds: config.max_fds,
                max_channels: config.max_channels,
                spin_us: config.spin_us,
                ids: None,
                rules: Vec::new(),
                donate: true,
            }],
        }
    }

    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: err.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Validates `text`, the contents of the config file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let at = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
            file: path.to_path_buf(),
            line: span.map(|span| line_of(text, span.start)),
            message,
        };
        let file: FileConfig =
            toml::from_str(text).map_err(|err| at(err.span(), err.message().to_string()))?;
        let mut mounts = Vec::new();
        for entry in file.mount {
            let mount = entry
                .into_plan(file.spin_us)
                .map_err(|(span, msg)| at(span, msg))?;
            if let Some(other) = mounts.iter().find(|m: &&MountPlan| m.name == mount.name) {
                return Err(at(None, format!("two mounts are named {:?}", other.name)));
            }
            if mount.connection != Connection::Unset
                && mounts.iter().any(|m| m.connection == mount.connection)
            {
                return Err(at(
                    None,
                    format!(
                        "mount {:?}: its socket or fd is another mount's",
                        mount.name
                    ),
                ));
            }
            mounts.push(mount);
        }
        if mounts.is_empty() {
            return Err(at(None, "no [[mount]]: nothing to serve".into()));
        }
        Ok(Self {
            sandbox: choice(file.sandbox, "sandbox")
                .map_err(|(span, msg)| at(span, msg))?
                .unwrap_or(SandboxMode::Namespace),
            seccomp: choice(file.seccomp, "seccomp")
                .map_err(|(span, msg)| at(span, msg))?
                .unwrap_or(SeccompAction::Kill),
            log_level: choice(file.log_level, "log_level")
                .map_err(|(span, msg)| at(span, msg))?
                .unwrap_or(LogLevel::Info),
            log_format: choice(file.log_format, "log_format")
                .map_err(|(span, msg)| at(span, msg))?
                .unwrap_or(LogFormat::Text),
            metrics_socket: file.metrics_socket,
            audit: match file.audit {
                Some(audit) => Some(audit.into_plan().map_err(|(span, msg)| at(span, msg))?),
                None => None,
            },
            mounts,
            file: Some(path.to_path_buf()),
        })
    }

    /// Whether any mount asks for metrics (they are shared by all).
    pub fn metrics(&self) -> bool {
        self.metrics_socket.is_some()
    }
}

/// The line (from 1) of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A place in the file and a message.
type Located = (Option<std::ops::Range<usize>>, String);

/// `value` as one of `T`'s names (the same names as the command line's).
fn choice<T: ValueEnum>(value: Option<Spanned<String>>, key: &str) -> Result<Option<T>, Located> {
    let Some(value) = value else {
        return Ok(None);
    };
    T::from_str(value.get_ref(), false).map(Some).map_err(|_| {
        let names: Vec<_> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        (
            Some(value.span()),
            format!(
                "{key}: {:?} is not one of {}",
                value.get_ref(),
                names.join(", ")
            ),
        )
    })
}

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    sandbox: Option<Spanned<String>>,
    seccomp: Option<Spanned<String>>,
    log_level: Option<Spanned<String>>,
    log_format: Option<Spanned<String>>,
    metrics_socket: Option<PathBuf>,
    spin_us: Option<u64>,
    audit: Option<AuditConfig>,
    #[serde(default)]
    mount: Vec<MountConfig>,
}

/// `[audit]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditConfig {
    file: PathBuf,
    ops: Option<Spanned<String>>,
    on_full: Option<Spanned<String>>,
}

impl AuditConfig {
    fn into_plan(self) -> Result<AuditPlan, Located> {
        let pick = |value: Option<Spanned<String>>, key: &str, names: [&str; 2]| match value {
            None => Ok(false),
            Some(v) if v.get_ref() == names[0] => Ok(false),
            Some(v) if v.get_ref() == names[1] => Ok(true),
            Some(v) => Err((
                Some(v.span()),
                format!(
                    "audit.{key}: {:?} is not one of {}, {}",
                    v.get_ref(),
                    names[0],
                    names[1]
                ),
            )),
        };
        let all = pick(self.ops, "ops", ["mutations", "all"])?;
        let block = pick(self.on_full, "on_full", ["drop", "block"])?;
        Ok(AuditPlan {
            file: (self.file != Path::new("-")).then_some(self.file),
            ops: if all {
                AuditOps::All
            } else {
                AuditOps::Mutations
            },
            on_full: if block { OnFull::Block } else { OnFull::Drop },
        })
    }
}

/// One `[[mount]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MountConfig {
    name: Spanned<String>,
    root: PathBuf,
    socket: Option<PathBuf>,
    fd: Option<i32>,
    #[serde(default)]
    readonly: bool,
    donate: Option<bool>,
    #[serde(default)]
    donate_mount_fd: bool,
    host_uds: Option<Spanned<String>>,
    host_fifo: Option<Spanned<String>>,
    xattr: Option<Spanned<String>>,
    #[serde(default)]
    mknod: Vec<Spanned<String>>,
    #[serde(default)]
    allow_submounts: bool,
    #[serde(default)]
    allow_setid: bool,
    max_connections: Option<usize>,
    max_fds: Option<usize>,
    max_channels: Option<usize>,
    ids: Option<IdsConfig>,
    #[serde(default)]
    rule: Vec<RuleConfig>,
}

/// One `[[mount.rule]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleConfig {
    path: Spanned<String>,
    #[serde(default)]
    ops: Vec<Spanned<String>>,
    action: Spanned<String>,
}

impl RuleConfig {
    fn into_rule(self) -> Result<Rule, Located> {
        let action = Action::from_name(self.action.get_ref()).ok_or_else(|| {
            (
                Some(self.action.span()),
                format!(
                    "rule action {:?} is not one of allow, deny, readonly, hide",
                    self.action.get_ref()
                ),
            )
        })?;
        let mut ops = Vec::new();
        for op in self.ops {
            if op.get_ref() == "all" {
                continue;
            }
            ops.push(OpClass::from_name(op.get_ref()).ok_or_else(|| {
                (
                    Some(op.span()),
                    format!(
                        "rule ops: {:?} is not one of stat, read, write, create, remove, \
                         rename, setattr, connect, all",
                        op.get_ref()
                    ),
                )
            })?);
        }
        let rule = Rule {
            path: self.path.get_ref().clone(),
            ops,
            action,
        };
        rule.validate()
            .map_err(|msg| (Some(self.path.span()), msg))?;
        Ok(rule)
    }
}

/// `[mount.ids]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsConfig {
    uid: Option<Vec<RangeConfig>>,
    gid: Option<Vec<RangeConfig>>,
    /// What happens to a client's ID outside every range: only "deny" (EPERM) so far.
    unmapped: Option<Spanned<String>>,
}

/// One ID range as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeConfig {
    inside: u32,
    outside: u32,
    count: u32,
}

impl IdsConfig {
    fn into_map(self, span: std::ops::Range<usize>) -> Result<IdMap, Located> {
        if let Some(unmapped) = &self.unmapped {
            if unmapped.get_ref() != "deny" {
                return Err((
                    Some(unmapped.span()),
                    format!("ids.unmapped: {:?} is not \"deny\"", unmapped.get_ref()),
                ));
            }
        }
        let ranges = |list: Option<Vec<RangeConfig>>| {
            list.map(|list| {
                list.into_iter()
                    .map(|r| IdRange {
                        inside: r.inside,
                        outside: r.outside,
                        count: r.count,
                    })
                    .collect()
            })
        };
        IdMap::new(ranges(self.uid), ranges(self.gid))
            .map_err(|err| (Some(span), format!("ids: {err}")))
    }
}

impl MountConfig {
    fn into_plan(self, spin_us: Option<u64>) -> Result<MountPlan, Located> {
        let name = self.name.get_ref().clone();
        let in_mount = |(span, msg): Located| (span, format!("mount {name:?}: {msg}"));
        let connection = match (self.socket, self.fd) {
            (Some(path), None) => Connection::Socket(path),
            (None, Some(fd)) => Connection::Fd(fd),
            _ => {
                return Err(in_mount((
                    Some(self.name.span()),
                    "give exactly one of socket and fd".into(),
                )))
            }
        };
        if name.is_empty() {
            return Err(in_mount((Some(self.name.span()), "an empty name".into())));
        }
        let host_uds = choice(self.host_uds, "host_uds")
            .map_err(in_mount)?
            .unwrap_or(HostUds::None);
        let host_fifo = choice(self.host_fifo, "host_fifo")
            .map_err(in_mount)?
            .unwrap_or(HostFifo::None);
        let xattr = choice(self.xattr, "xattr")
            .map_err(in_mount)?
            .unwrap_or(XattrPolicy::User);
        let mut kinds = Vec::new();
        for kind in self.mknod {
            kinds.extend(choice::<MknodKind>(Some(kind), "mknod").map_err(in_mount)?);
        }
        Ok(MountPlan {
            name: name.clone(),
            root: self.root,
            memory: None,
            connection,
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            host: HostOptions {
                allow_submounts: self.allow_submounts,
                uds_connect: matches!(host_uds, HostUds::Open | HostUds::All),
                uds_create: matches!(host_uds, HostUds::Create | HostUds::All),
                fifo_open: host_fifo == HostFifo::Open,
                allow_setid: self.allow_setid,
                donate_mount_fd: self.donate_mount_fd,
                xattr,
                mknod: MknodKinds::from_list(&kinds),
            },
            readonly: self.readonly,
            max_fds: self.max_fds,
            max_channels: self
                .max_channels
                .unwrap_or(ServerOptions::default().max_channels),
            spin_us: spin_us.unwrap_or(DEFAULT_SPIN_US),
            donate: self.donate.unwrap_or(true),
            rules: {
                let rules = self
                    .rule
                    .into_iter()
                    .map(RuleConfig::into_rule)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(in_mount)?;
                if !rules.is_empty() && self.donate_mount_fd {
                    return Err(in_mount((
                        Some(self.name.span()),
                        "donate_mount_fd gives the client the whole share past the rules".into(),
                    )));
                }
                rules
            },
            ids: match self.ids {
                Some(ids) => Some(ids.into_map(self.name.span()).map_err(in_mount)?),
                None => None,
            },
        })
    }
}

impl fmt::Display for Plan {
    /// The effective configuration, as a config file that would give it (`--check`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |v: &dyn Fn() -> Option<clap::builder::PossibleValue>| {
            v().map(|p| p.get_name().to_string()).unwrap_or_default()
        };
        writeln!(
            f,
            "sandbox = {:?}",
            name(&|| self.sandbox.to_possible_value())
        )?;
        writeln!(
            f,
            "seccomp = {:?}",
            name(&|| self.seccomp.to_possible_value())
        )?;
        writeln!(
            f,
            "log_level = {:?}",
            name(&|| self.log_level.to_possible_value())
        )?;
        writeln!(
            f,
            "log_format = {:?}",
            name(&|| self.log_format.to_possible_value())
        )?;
        if let Some(path) = &self.metrics_socket {
            writeln!(f, "metrics_socket = {:?}", path.display().to_string())?;
        }
        if let Some(audit) = &self.audit {
            let file = audit
                .file
                .as_ref()
                .map_or("-".into(), |p| p.display().to_string());
            writeln!(f, "\n[audit]\nfile = {file:?}")?;
            let ops = if audit.ops == AuditOps::All {
                "all"
            } else {
                "mutations"
            };
            writeln!(f, "ops = {ops:?}")?;
            let full = if audit.on_full == OnFull::Block {
                "block"
            } else {
                "drop"
            };
            writeln!(f, "on_full = {full:?}")?;
        }
        for mount in &self.mounts {
            let mut out = String::new();
            writeln!(out, "\n[[mount]]")?;
            writeln!(out, "name = {:?}", mount.name)?;
            match &mount.memory {
                // The config file has no memory mounts: said as comments.
                Some(memory) => {
                    writeln!(out, "# memory (command line only): {} bytes", memory.size)?;
                    if let Some(from) = &memory.from {
                        writeln!(out, "# memory copied from {:?}", from.display().to_string())?;
                    }
                }
                None => writeln!(out, "root = {:?}", mount.root.display().to_string())?,
            }
            match &mount.connection {
                Connection::Socket(path) => {
                    writeln!(out, "socket = {:?}", path.display().to_string())?;
                }
                Connection::Fd(fd) => writeln!(out, "fd = {fd}")?,
                Connection::Unset => writeln!(out, "# socket: from systemd (LISTEN_FDS)")?,
            }
            let host = &mount.host;
            let uds = match (host.uds_connect, host.uds_create) {
                (false, false) => "none",
                (true, false) => "open",
                (false, true) => "create",
                (true, true) => "all",
            };
            let mknod: Vec<_> = [
                (host.mknod.fifo, "fifo"),
                (host.mknod.socket, "socket"),
                (host.mknod.char, "char"),
                (host.mknod.block, "block"),
            ]
            .into_iter()
            .filter_map(|(on, kind)| on.then_some(kind))
            .collect();
            writeln!(out, "readonly = {}", mount.readonly)?;
            writeln!(out, "donate = {}", mount.donate)?;
            // The host backend's policy, which a memory mount does not have.
            if mount.memory.is_none() {
                writeln!(out, "donate_mount_fd = {}", host.donate_mount_fd)?;
                writeln!(out, "host_uds = {uds:?}")?;
                writeln!(
                    out,
                    "host_fifo = {:?}",
                    if host.fifo_open { "open" } else { "none" }
                )?;
                writeln!(
                    out,
                    "xattr = {:?}",
                    name(&|| host.xattr.to_possible_value())
                )?;
                writeln!(out, "mknod = {mknod:?}")?;
                writeln!(out, "allow_submounts = {}", host.allow_submounts)?;
                writeln!(out, "allow_setid = {}", host.allow_setid)?;
            }
            writeln!(out, "max_connections = {}", mount.max_connections)?;
            match mount.max_fds {
                Some(max) => writeln!(out, "max_fds = {max}")?,
                None => writeln!(out, "# max_fds: as many as fit")?,
            }
            writeln!(out, "max_channels = {}", mount.max_channels)?;
            for rule in &mount.rules {
                writeln!(out, "[[mount.rule]]")?;
                writeln!(out, "path = {:?}", rule.path)?;
                if !rule.ops.is_empty() {
                    let ops: Vec<_> = rule.ops.iter().map(|op| op.name()).collect();
                    writeln!(out, "ops = {ops:?}")?;
                }
                writeln!(out, "action = {:?}", rule.action.name())?;
            }
            if let Some(ids) = &mount.ids {
                writeln!(out, "[mount.ids]")?;
                for (key, ranges) in [("uid", ids.uid_ranges()), ("gid", ids.gid_ranges())] {
                    let Some(ranges) = ranges else { continue };
                    let ranges: Vec<_> = ranges
                        .iter()
                        .map(|r| {
                            format!(
                                "{{ inside = {}, outside = {}, count = {} }}",
                                r.inside, r.outside, r.count
                            )
                        })
                        .collect();
                    writeln!(out, "{key} = [{}]", ranges.join(", "))?;
                }
                writeln!(out, "unmapped = \"deny\"")?;
            }
            f.write_str(&out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail by panicking.

    use super::*;

    fn parse(text: &str) -> Result<Plan, ConfigError> {
        Plan::parse(Path::new("g.toml"), text)
    }

    #[test]
    fn two_mounts_with_their_own_policies() {
        let plan = parse(
            r#"
            sandbox = "chroot"
            [audit]
            file = "/var/log/a.jsonl"
            on_full = "block"
            [[mount]]
            name = "data"
            root = "/srv/data"
            socket = "/run/data.sock"
            xattr = "all"
            mknod = ["fifo"]
            [[mount]]
            name = "ro"
            root = "/srv/ro"
            fd = 3
            readonly = true
            max_connections = 1
            [mount.ids]
            uid = [{ inside = 0, outside = 100000, count = 65536 }]
            unmapped = "deny"
            "#,
        )
        .unwrap();
        assert_eq!(plan.sandbox, SandboxMode::Chroot);
        let audit = plan.audit.as_ref().unwrap();
        assert_eq!(audit.file.as_deref(), Some(Path::new("/var/log/a.jsonl")));
        assert_eq!(
            (audit.ops, audit.on_full),
            (AuditOps::Mutations, OnFull::Block)
        );
        assert_eq!(plan.mounts.len(), 2);
        let (data, ro) = (&plan.mounts[0], &plan.mounts[1]);
        assert_eq!(data.connection, Connection::Socket("/run/data.sock".into()));
        assert_eq!(data.host.xattr, XattrPolicy::All);
        assert!(data.host.mknod.fifo && !data.host.mknod.char);
        assert!(!data.readonly);
        assert_eq!(ro.connection, Connection::Fd(3));
        assert!(ro.readonly);
        assert_eq!(ro.max_connections, 1);
        let ids = ro.ids.as_ref().unwrap();
        assert_eq!(ids.uid_ranges().unwrap()[0].outside, 100_000);
        assert!(ids.gid_ranges().is_none() && data.ids.is_none());
        // What --check prints parses back to the same plan.
        assert_eq!(parse(&plan.to_string()).unwrap(), plan);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let err =
            parse("[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\nxattr = \"most\"\n")
                .unwrap_err();
        assert_eq!(err.line, Some(5));
        assert!(err.message.contains("xattr"), "{err}");
        assert!(err.to_string().starts_with("g.toml:5: "), "{err}");
        let err = parse("[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\nrootz = 1\n")
            .unwrap_err();
        assert_eq!(err.line, Some(5));
        assert!(err.message.contains("rootz"), "{err}");
    }

    #[test]
    fn bad_id_ranges_are_refused_with_their_line() {
        let text = "[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\n[mount.ids]\n\
                    uid = [{ inside = 0, outside = 0, count = 0 }]\n";
        let err = parse(text).unwrap_err();
        assert!(err.message.contains("count 0"), "{err}");
        let text = "[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\n[mount.ids]\n\
                    unmapped = \"nobody\"\n";
        assert_eq!(parse(text).unwrap_err().line, Some(6));
    }

    #[test]
    fn rules_parse_and_print_back() {
        let text = "[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\n\
                    [[mount.rule]]\npath = \"secrets/**\"\naction = \"hide\"\n\
                    [[mount.rule]]\npath = \"**/*.log\"\nops = [\"write\", \"remove\"]\n\
                    action = \"deny\"\n";
        let plan = parse(text).unwrap();
        let rules = &plan.mounts[0].rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].ops, [OpClass::Write, OpClass::Remove]);
        assert_eq!(parse(&plan.to_string()).unwrap(), plan);
        let bad = text.replace("\"hide\"", "\"shred\"");
        assert_eq!(parse(&bad).unwrap_err().line, Some(7));
        let with_donation = text.replace(
            "socket = \"/s\"\n",
            "socket = \"/s\"\ndonate_mount_fd = true\n",
        );
        assert!(parse(&with_donation).is_err());
    }

    #[test]
    fn mounts_need_distinct_names_and_sources_and_one_source_each() {
        let one = "[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\n";
        assert!(parse(&format!("{one}{one}")).is_err());
        let same_socket = "[[mount]]\nname = \"b\"\nroot = \"/\"\nsocket = \"/s\"\n";
        assert!(parse(&format!("{one}{same_socket}")).is_err());
        assert!(parse("[[mount]]\nname = \"a\"\nroot = \"/\"\n").is_err());
        assert!(parse("[[mount]]\nname = \"a\"\nroot = \"/\"\nsocket = \"/s\"\nfd = 3\n").is_err());
        assert!(parse("sandbox = \"none\"\n").is_err());
    }
}
