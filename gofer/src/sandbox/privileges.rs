//! Capabilities, groups, core dumps and resource limits: the gofer keeps only what its
//! enabled features need.

use std::io;

use rustix::process::{DumpableBehavior, Resource, Rlimit};
use rustix::thread::{CapabilitySet, CapabilitySets};

/// The highest capability number the kernel knows (`CAP_CHECKPOINT_RESTORE` in 6.x); higher
/// bits are tried too and `EINVAL` (unknown to this kernel) ends the loop.
const LAST_CAP: u32 = 63;

/// The capabilities the gofer serves with: `CHOWN` for SetStat's owner change,
/// `DAC_OVERRIDE`, `DAC_READ_SEARCH` and `FOWNER` because the client, not the host, checks
/// permissions (as with gVisor's gofer), and `SETUID`/`SETGID` for the per-thread
/// `setfsuid`/`setfsgid` that create files with the client's owner; `FSETID` only with
/// `--allow-setid`; `MKNOD` only when device nodes may be created.
pub(crate) fn needed(allow_setid: bool, mknod_devices: bool) -> CapabilitySet {
    let mut set = CapabilitySet::CHOWN
        | CapabilitySet::DAC_OVERRIDE
        | CapabilitySet::DAC_READ_SEARCH
        | CapabilitySet::FOWNER
        | CapabilitySet::SETUID
        | CapabilitySet::SETGID;
    if allow_setid {
        set |= CapabilitySet::FSETID;
    }
    if mknod_devices {
        set |= CapabilitySet::MKNOD;
    }
    set
}

/// Drops supplementary groups, every capability not in `keep` from the bounding,
/// permitted, effective, inheritable and ambient sets, and makes the process non-dumpable
/// with no core files. Capabilities are per thread: call it while the process has one
/// thread, so every later thread inherits the result.
pub(crate) fn restrict(keep: CapabilitySet) -> io::Result<()> {
    match rustix::thread::set_thread_groups(&[]) {
        // In a user namespace with setgroups denied there are none to drop.
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(err) => return Err(err.into()),
    }
    for bit in 0..=LAST_CAP {
        let cap = CapabilitySet::from_bits_retain(1 << bit);
        if keep.contains(cap) {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(cap) {
            Ok(()) => {}
            Err(rustix::io::Errno::INVAL) => break,
            Err(err) => return Err(err.into()),
        }
    }
    rustix::thread::clear_ambient_capability_set()?;
    let current = rustix::thread::capabilities(None)?;
    let kept = current.permitted & keep;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: kept,
            permitted: kept,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)?;
    let none = Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(Resource::Core, none)?;
    Ok(())
}
