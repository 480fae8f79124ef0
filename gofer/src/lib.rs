//! The gofer: a trusted process that serves one host directory over lisafs, resolving
//! every name one component at a time with `openat2` so it never leaves its root.
//!
//! * [`host`]: the [`HostBackend`](host::HostBackend), the `lisafs_server::Backend` that
//!   does the host work and applies the host-side policy (SPEC.md §7.11).
//! * [`memory`]: the [`MemoryBackend`](memory::MemoryBackend), the other `Backend`: a
//!   whole tree in the gofer's memory (`gofer --memory`), regular files in memfds.
//! * [`config`]: the `gofer` command line, and the option enums it parses into.
//! * [`cli`]: the program: start-up in order (namespaces, the share as a detached mount,
//!   the pivot, capabilities, Landlock, seccomp; SPEC.md §13) and the serving loops, for
//!   either backend.
//! * [`limits`]: the open-file limit and the per-connection FD cap that fits in it.
//! * [`plan`]: what one process serves, from the flags or a `--config` file.
//! * [`metrics_endpoint`]: `--metrics-socket`, the server's metrics over HTTP on a Unix
//!   socket.
//! * `sandbox` (private): the confinement layers `cli` applies, and the supervising parent.
//! * `service` (private): the connection source (`--socket`, `--fd`, systemd socket
//!   activation), readiness notification, and serving until a stop signal.
//!
//! It contains no protocol parsing: that is `lisafs-protocol` and `lisafs-server`.
//!
//! The program (`cli`, `sandbox`, `service`, the parser in `config` and the `gofer`
//! binary) is the default feature `cli`, with its dependencies (clap, tracing-subscriber,
//! Landlock, seccompiler, signal-hook). A library user who only wants the host backend
//! sets `default-features = false`.

#[cfg(feature = "cli")]
pub mod audit;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod host;
pub mod limits;
pub mod memory;
pub mod metrics_endpoint;
#[cfg(feature = "cli")]
pub mod plan;
#[cfg(feature = "cli")]
pub mod rules;
#[cfg(feature = "cli")]
mod sandbox;
#[cfg(feature = "cli")]
mod service;
// Without `cli`, only the metrics endpoint listens; nothing removes a socket file.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod socket_file;
// Without `cli`, the start-up helpers (fork, unshare, mount attributes, inherited FDs) have
// no caller; the host backend uses only the xattr and fsuid calls.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
mod sys;

pub use lisafs_protocol::wire;
