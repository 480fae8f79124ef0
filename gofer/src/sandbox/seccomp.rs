//! The seccomp allowlist (placeholder: installs nothing yet).

use crate::config::SeccompAction;

/// The optional features whose system calls the filter must allow.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Features {
    /// `--host-uds open|all`: connecting to host Unix sockets.
    pub(crate) uds_connect: bool,
    /// `--host-uds create|all`: binding, listening and accepting on host Unix sockets.
    pub(crate) uds_create: bool,
}

/// Installs the filter on every thread of the process.
pub(crate) fn install(_action: SeccompAction, _features: Features) -> std::io::Result<()> {
    Ok(())
}
