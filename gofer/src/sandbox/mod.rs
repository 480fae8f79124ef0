//! Self-confinement: what the gofer does to itself before it serves, so that a bug in it
//! cannot become a host compromise. The layers, each refusing what the others might miss:
//!
//! * [`share`]: the share as a detached bind mount, `nosuid,nodev` (and `ro` with
//!   `--readonly`), so the kernel enforces those through every FD;
//! * [`namespace`]: own mount, PID, IPC, UTS and network namespaces, the share as the
//!   root (`--sandbox namespace`), or a chroot into it (`--sandbox chroot`);
//! * [`privileges`]: only the capabilities the enabled features need, no supplementary
//!   groups, not dumpable, no core files;
//! * [`landlock`]: filesystem access only beneath the share;
//! * [`seccomp`]: a system-call allowlist;
//! * [`supervisor`]: with namespaces or a chroot, a parent outside that supervises the
//!   serving child, and cleans up after it.

pub(crate) mod landlock;
pub(crate) mod namespace;
pub(crate) mod privileges;
pub(crate) mod seccomp;
pub(crate) mod share;
pub(crate) mod supervisor;
