//! systemd's side of a service: socket activation (`LISTEN_FDS`) and readiness
//! notification (`NOTIFY_SOCKET`), both without libsystemd.

use std::io;
use std::os::fd::{OwnedFd, RawFd};

use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// The first FD systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The socket systemd passed to this process, if it passed one: `LISTEN_FDS` counts the
/// FDs from 3 up, and `LISTEN_PID` says which process they are for (an inherited
/// environment from some other service's activation is ignored). The gofer serves one
/// socket, so more than one is an error.
pub(crate) fn activation_fd() -> Result<Option<RawFd>, String> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        .is_some_and(|pid| pid == std::process::id());
    if !for_us {
        return Ok(None);
    }
    match std::env::var("LISTEN_FDS").ok().as_deref() {
        None | Some("0") => Ok(None),
        Some("1") => Ok(Some(LISTEN_FDS_START)),
        Some(count) => Err(format!(
            "LISTEN_FDS={count}: the gofer serves one socket; give each its own gofer"
        )),
    }
}

/// A connection to systemd's notification socket, made at start-up while its path (or
/// abstract name, in the host's network namespace) is still reachable.
#[derive(Debug)]
pub(crate) struct Notifier(OwnedFd);

impl Notifier {
    /// Connects to `NOTIFY_SOCKET` if it is set (a path, or `@name` for an abstract
    /// socket).
    pub(crate) fn from_env() -> io::Result<Option<Self>> {
        let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(None);
        };
        let target = target.as_encoded_bytes();
        let addr = match target.strip_prefix(b"@") {
            Some(name) => SocketAddrUnix::new_abstract_name(name)?,
            None => SocketAddrUnix::new(target)?,
        };
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&socket, &addr)?;
        Ok(Some(Self(socket)))
    }

    /// Sends `state` (`READY=1`, `STOPPING=1`, ...). A failure is logged, not fatal:
    /// serving matters more than telling systemd about it.
    pub(crate) fn notify(&self, state: &str) {
        // `write`, not `send`: the serving filter allows the former on any FD.
        if let Err(err) = rustix::io::write(&self.0, state.as_bytes()) {
            tracing::warn!("cannot notify systemd ({state}): {err}");
        }
    }
}
