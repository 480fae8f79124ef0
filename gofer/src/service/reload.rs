//! SIGHUP with `--config`: the rules are read again and the audit file is reopened, while
//! every connection goes on being served.
//!
//! Only `[[mount.rule]]` lists change: everything else in the file (mounts, sockets,
//! options, the sandbox) was fixed when the process confined itself, so a change there is
//! logged as waiting for the next start. A file that does not parse changes nothing; the
//! error is logged with its file, line and key.
//!
//! A confined gofer cannot reach either path any more (they are outside its root, and
//! Landlock and seccomp would refuse the opens anyway), so the supervising parent opens
//! both and passes the open files to the child ([`Reopened`]); unconfined, the gofer opens
//! them itself. Either way the files are found by their names in the directories they were
//! in at start, held open since ([`ReloadPaths`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::audit::{self, AuditSwitch};
use crate::plan::Plan;
use crate::rules::Rules;

/// The longest config file a reload reads.
const MAX_CONFIG: u64 = 1 << 20;

/// A file a reload opens again by its name, in the directory it was in at start. The
/// directory is held open rather than named by its path, because the path may lead
/// elsewhere by then: `--sandbox namespace` moves the root of the supervising parent too
/// (it shares the child's mount namespace, in which the share becomes `/`).
#[derive(Debug)]
struct Place {
    /// The directory, `O_PATH`.
    dir: OwnedFd,
    /// The file's name in it.
    name: OsString,
    /// The path it was given, for messages.
    shown: PathBuf,
}

impl Place {
    fn new(path: &Path) -> io::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other("names no file"))?
            .to_owned();
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        Ok(Self {
            dir: rustix::fs::open(dir, flags, Mode::empty())?,
            name,
            shown: path.to_owned(),
        })
    }

    fn open(&self, flags: OFlags, mode: Mode) -> io::Result<File> {
        let flags = flags | OFlags::CLOEXEC | OFlags::NOCTTY;
        Ok(rustix::fs::openat(&self.dir, self.name.as_os_str(), flags, mode)?.into())
    }
}

/// Where a reload finds its files: the config file, and the audit file if the log has one.
#[derive(Debug)]
pub(crate) struct ReloadPaths {
    config: Place,
    audit: Option<Place>,
}

/// What a reload reads from: the config file and the reopened audit file, open.
#[derive(Debug)]
pub(crate) struct Reopened {
    /// The config file, open for reading.
    pub(crate) config: File,
    /// The audit file, opened again for appending (a new file if it was rotated away).
    pub(crate) audit: Option<File>,
}

impl ReloadPaths {
    /// Holds the directories of `config` and `audit` open, to find the files in later.
    pub(crate) fn new(config: &Path, audit: Option<&Path>) -> io::Result<Self> {
        Ok(Self {
            config: Place::new(config)?,
            audit: audit.map(Place::new).transpose()?,
        })
    }

    /// Opens both files, logging what fails; `None` if the config file cannot be opened
    /// (the audit file is then not reopened either: nothing changes).
    pub(crate) fn open(&self) -> Option<Reopened> {
        let config = match self.config.open(OFlags::RDONLY, Mode::empty()) {
            Ok(file) => file,
            Err(err) => {
                let path = self.config.shown.display();
                tracing::error!("reload: {path}: {err}; nothing changed");
                return None;
            }
        };
        let append = OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE;
        let audit =
            self.audit
                .as_ref()
                .and_then(|place| match place.open(append, audit::LOG_MODE) {
                    Ok(file) => Some(file),
                    Err(err) => {
                        let path = place.shown.display();
                        tracing::error!(
                            "reload: audit file {path}: {err}; still writing to the old one"
                        );
                        None
                    }
                });
        Some(Reopened { config, audit })
    }
}

/// What a reload changes in the serving process.
pub(crate) struct Reload {
    /// The plan the process started with, against which a new file is compared.
    started: Plan,
    /// The config file's path, for messages.
    path: PathBuf,
    /// Each mount's rules, by the mount's index in `started`.
    rules: Vec<Rules>,
    /// The audit log's writer, to give it the reopened file.
    audit: Option<AuditSwitch>,
}

impl Reload {
    /// A reload of `started` (read from the file `path`), changing `rules` (one per mount)
    /// and the audit log's file through `audit`.
    pub(crate) fn new(
        started: &Plan,
        path: PathBuf,
        rules: Vec<Rules>,
        audit: Option<AuditSwitch>,
    ) -> Self {
        Self {
            started: started.clone(),
            path,
            rules,
            audit,
        }
    }

    /// Applies the files a reload opened: the audit log moves to the reopened file, and
    /// if the config file parses, each mount's rules become the file's.
    pub(crate) fn apply(&self, reopened: Reopened) {
        if let (Some(file), Some(switch)) = (reopened.audit, &self.audit) {
            switch.replace(file);
        }
        let mut text = String::new();
        if let Err(err) = reopened.config.take(MAX_CONFIG).read_to_string(&mut text) {
            tracing::error!("reload: {}: {err}; rules unchanged", self.path.display());
            return;
        }
        let plan = match Plan::parse(&self.path, &text) {
            Ok(plan) => plan,
            Err(err) => {
                tracing::error!("reload: {err}; rules unchanged");
                return;
            }
        };
        let mut count = 0;
        for (mount, rules) in self.started.mounts.iter().zip(&self.rules) {
            match plan.mounts.iter().find(|new| new.name == mount.name) {
                Some(new) => {
                    count += new.rules.len();
                    rules.replace(new.rules.clone());
                }
                None => tracing::warn!(
                    mount = mount.name,
                    "reload: the mount is gone from the file; it is served with its old \
                     rules until the next start"
                ),
            }
        }
        if without_rules(&plan) != without_rules(&self.started) {
            tracing::warn!(
                "reload: only the rules were reloaded; the other changes in {} take effect \
                 at the next start",
                self.path.display()
            );
        }
        tracing::info!(rules = count, "reloaded");
    }
}

/// `plan` with every mount's rules (and the file's name) left out: what a reload cannot
/// change.
fn without_rules(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    plan.file = None;
    for mount in &mut plan.mounts {
        mount.rules.clear();
    }
    plan
}
