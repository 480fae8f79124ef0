//! Creating files as the client's owner: the calling thread's filesystem UID and GID are
//! switched around the one system call that creates, so the kernel gives the new inode its
//! owner as it makes it.
//!
//! Applying the owner afterwards (`chown` of the name looked up again) is a race: a host
//! process can swap another file in under the name between the create and the lookup, and
//! the gofer would chown that file instead. With the filesystem IDs switched there is no
//! second step to redirect.
//!
//! Linux keeps `fsuid`/`fsgid` per thread, so other threads serving other requests are not
//! affected. A change of `fsuid` from 0 to another ID makes the kernel clear the filesystem
//! capabilities (`CAP_DAC_OVERRIDE`, `CAP_FOWNER`, ...) from the thread's effective set;
//! they are raised again for the create, because the sandbox checks permissions itself and
//! the gofer keeps root-like access whoever the new file's owner is.

use std::marker::PhantomData;
use std::sync::OnceLock;

use lisafs_protocol::wire::{Gid, Uid};
use lisafs_server::BResult;
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::sys;

/// Runs `create` with the calling thread's filesystem IDs set to `uid` and `gid`, where the
/// client gave one (`NONE` leaves that ID) and the thread may change it (it holds
/// `CAP_SETUID` or `CAP_SETGID`; otherwise the gofer's own ID is used, as `chown` would not
/// have been possible either). Everything is restored before this returns or unwinds.
pub(super) fn create_as<T>(uid: Uid, gid: Gid, create: impl FnOnce() -> BResult<T>) -> BResult<T> {
    let _ids = FsIds::switch(uid, gid)?;
    create()
}

/// The thread's filesystem IDs switched for one create, and what to restore on drop.
///
/// Not `Send`: credentials belong to the thread that switched them.
#[derive(Debug)]
struct FsIds {
    /// The filesystem UID to put back, if it was changed.
    uid: Option<u32>,
    /// The filesystem GID to put back, if it was changed.
    gid: Option<u32>,
    /// The thread's capability sets before the switch.
    caps: CapabilitySets,
    _thread_bound: PhantomData<*const ()>,
}

impl FsIds {
    /// Switches what the client asked for and the thread may; `None` if nothing changes.
    /// An ID equal to the gofer's own needs no switch: that is what the thread creates
    /// with already (a root sandbox creating as root saves eleven system calls).
    fn switch(uid: Uid, gid: Gid) -> BResult<Option<Self>> {
        let (own_uid, own_gid) = own_ids();
        let uid = if uid.0 == own_uid { Uid::NONE } else { uid };
        let gid = if gid.0 == own_gid { Gid::NONE } else { gid };
        if uid == Uid::NONE && gid == Gid::NONE {
            return Ok(None);
        }
        let caps = rustix::thread::capabilities(None)?;
        let set_uid = uid != Uid::NONE && caps.effective.contains(CapabilitySet::SETUID);
        let set_gid = gid != Gid::NONE && caps.effective.contains(CapabilitySet::SETGID);
        if !set_uid && !set_gid {
            return Ok(None);
        }
        let mut ids = Self {
            uid: None,
            gid: None,
            caps,
            _thread_bound: PhantomData,
        };
        // From here on a failure drops `ids`, which undoes whatever was switched.
        if set_gid {
            ids.gid = Some(sys::setfsgid(gid.0)?);
        }
        if set_uid {
            ids.uid = Some(sys::setfsuid(uid.0)?);
            // The kernel cleared the filesystem capabilities if the ID left 0: the same
            // sets as before make the create's permission checks those of the gofer.
            rustix::thread::set_capabilities(None, ids.caps)?;
        }
        Ok(Some(ids))
    }
}

/// The gofer's effective UID and GID, which a thread's filesystem IDs are outside
/// [`create_as`]. They never change while it serves; the backend reads them first when it
/// is made, before the process confines itself.
pub(super) fn own_ids() -> (u32, u32) {
    static OWN: OnceLock<(u32, u32)> = OnceLock::new();
    *OWN.get_or_init(|| {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    })
}

impl Drop for FsIds {
    /// Restores the IDs, then the capability sets (a change of `fsuid` back to 0 would
    /// otherwise raise every permitted filesystem capability, not only those that were
    /// effective). A thread that cannot get its own credentials back must not serve
    /// another request with a client's: that aborts the process.
    fn drop(&mut self) {
        let uid = self.uid.map_or(Ok(0), sys::setfsuid);
        let gid = self.gid.map_or(Ok(0), sys::setfsgid);
        let caps = rustix::thread::set_capabilities(None, self.caps).map_err(Into::into);
        if let Err(err) = uid.and(gid).and(caps) {
            tracing::error!("cannot restore the gofer's credentials after a create: {err}");
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lisafs_protocol::wire::Errno;

    /// The `Uid:`/`Gid:` filesystem IDs (fourth field) and `CapEff:` of this thread.
    fn thread_creds() -> (String, String, String) {
        let status = std::fs::read_to_string("/proc/thread-self/status").unwrap_or_default();
        let field = |key: &str, index: usize| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().nth(index))
                .unwrap_or_default()
                .to_owned()
        };
        (field("Uid:", 3), field("Gid:", 3), field("CapEff:", 0))
    }

    #[test]
    fn the_ids_apply_inside_and_are_restored_after_an_error() {
        let before = thread_creds();
        let result: BResult<()> = create_as(Uid(1000), Gid(2000), || {
            let (uid, gid, caps) = thread_creds();
            assert_eq!((uid.as_str(), gid.as_str()), ("1000", "2000"));
            assert_eq!(caps, before.2, "the effective capabilities are kept");
            Err(Errno::EEXIST)
        });
        assert_eq!(result, Err(Errno::EEXIST));
        assert_eq!(thread_creds(), before);
    }

    #[test]
    fn the_ids_are_restored_when_the_create_panics() {
        let before = thread_creds();
        let unwound = std::panic::catch_unwind(|| {
            let _: BResult<()> = create_as(Uid(1000), Gid::NONE, || panic!("in the create"));
        });
        assert!(unwound.is_err());
        assert_eq!(thread_creds(), before);
    }

    #[test]
    fn none_changes_nothing() {
        let before = thread_creds();
        let inside = create_as(Uid::NONE, Gid::NONE, || Ok(thread_creds())).ok();
        assert_eq!(inside, Some(before));
    }
}
