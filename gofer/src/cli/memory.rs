//! `gofer --memory`: serving a tree held in memory, with the same start-up and confinement
//! as a host share, around an empty root instead of the share.
//!
//! The tree is filled (`--memory-from`) while the host is still reachable; then the
//! process makes a new empty, read-only tmpfs its root (pivot or chroot, as `--sandbox`
//! says), keeps no capability (nothing it does needs one: memfds are its own files,
//! reopened through its own `/proc/self/fd`), lets Landlock allow only reading that empty
//! root, and installs the same seccomp allowlist as for a host share. Reopening a memfd
//! through the `/proc/self/fd` handle passes Landlock without a rule: memfds live on the
//! kernel's internal shmem mount, which Landlock leaves alone (as it does `pipe:` and
//! `socket:` files), so no Landlock or seccomp exception is needed.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::thread::CapabilitySet;

use super::{
    confine_root, finish, os_reason, restrict_process, sandbox_error, start_metrics, Describe,
    Mounts, Restrictions, StartError, Started,
};
use crate::config::SandboxMode;
use crate::memory::MemoryBackend;
use crate::plan::{MemoryPlan, Plan};
use crate::sandbox::{seccomp, share};
use crate::service::serve;

impl Describe for MemoryBackend {
    fn describe(&self) -> String {
        format!(
            "memory, at most {} bytes and {} files",
            self.max_bytes(),
            self.max_inodes()
        )
    }
}

/// Serves `plan`'s one mount from memory as `memory` describes, once [`super::start`]
/// has done the shared start-up.
pub(super) fn serve(plan: &Plan, memory: &MemoryPlan, started: Started) -> Result<(), StartError> {
    let Started {
        sources,
        metrics_listener,
        mut readiness,
        signals,
        limits,
        max_fds,
        file_fds,
        // The command line has neither an audit log nor a file to reload.
        audit: _,
        reload_paths: _,
    } = started;
    let files = file_fds.first().copied().flatten().unwrap_or(u64::MAX);
    let read_only = plan.mounts[0].readonly;
    let backend = MemoryBackend::new(memory.options(files, read_only))
        .map_err(|err| sandbox_error("the /proc/self/fd handle", &err))?;
    if let Some(from) = &memory.from {
        // Before the pivot: the host tree is out of reach after it.
        backend
            .populate_from(from)
            .map_err(|err| StartError::Root {
                subject: "--memory-from".into(),
                path: from.clone(),
                reason: os_reason(&err),
            })?;
        tracing::info!(
            from = %from.display(),
            files = backend.used_inodes(),
            bytes = backend.used_bytes(),
            "copied the host tree in"
        );
    }
    if read_only {
        // The server refuses every change; the seals make the kernel refuse writes through
        // donated FDs reopened for writing, as the `ro` mount of a host share does.
        backend
            .seal_read_only()
            .map_err(|err| sandbox_error("sealing the read-only tree", &err))?;
    }
    let empty = match plan.sandbox {
        SandboxMode::None => None,
        _ => Some(share::empty_root().map_err(|err| sandbox_error("the empty root", &err))?),
    };
    let mut layers = Vec::new();
    // The pivot attaches the root over "/" of this private mount namespace: any mount
    // point will do, and "/" is the one that is always there.
    let root = empty.as_ref().map(|fd| (fd.as_fd(), Path::new("/")));
    confine_root(plan.sandbox, root, "an empty read-only tmpfs", &mut layers)?;
    let restrictions = Restrictions {
        keep: CapabilitySet::empty(),
        landlock_roots: empty.iter().map(|fd| (fd.as_fd(), true)).collect(),
        features: seccomp::Features::default(),
    };
    restrict_process(plan, restrictions, &mut layers)?;
    tracing::info!(confinement = layers.join("; "), "confined");
    let metrics = start_metrics(plan, metrics_listener, None)?;
    let mounts = Mounts {
        plan,
        backends: vec![backend],
        sources,
        limits,
        max_fds,
        metrics,
    };
    let serving = serve::serve(
        mounts.servers(|backend, _, _| backend),
        signals,
        || {},
        || readiness.ready(),
    );
    finish(serving, &mut readiness)
}
