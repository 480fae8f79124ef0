//! The request being served on this thread: which connection it came from, and who is at
//! the other end.
//!
//! A [`Hook`](crate::Hook) sees an [`Op`](crate::Op), which says what is done but not for
//! whom; an audit record needs both. The server sets the [`RequestContext`] around every
//! request it handles, on whichever thread handles it (the connection's or one of its
//! channels'), and clears it after, so [`current`] called from a hook on that thread
//! answers for the request the hook runs in. It costs a request two thread-local writes.
//!
//! The context also carries one slot for hooks to talk to each other: a policy hook that
//! decides an operation names the rule that decided it ([`set_rule`]), and an observer
//! running after it (an audit log) reads it ([`take_rule`]). The slot is emptied when a
//! request starts and when it ends, so a rule never outlives its request.
//!
//! Only the thread serving the request sees its context: a hook that moves its work to
//! another thread ([`Deferred`](crate::hooks::Deferred)) must read it before.

use std::cell::Cell;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The credentials of the process at the other end of a connection's socket, as
/// `SO_PEERCRED` tells them: those of the process that connected (or made the socket
/// pair), at that time, seen from this process's namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Its process ID; 0 when it is outside this process's PID namespace (as a confined
    /// gofer's clients are).
    pub pid: i32,
    /// Its effective user ID (the overflow ID, 65534, if unmapped here).
    pub uid: u32,
    /// Its effective group ID (likewise).
    pub gid: u32,
}

impl Peer {
    /// The peer of the Unix socket `socket`; `None` if the kernel will not tell (not a
    /// Unix socket).
    pub fn of(socket: impl AsFd) -> Option<Self> {
        // nix, not rustix: rustix's `UCred` holds the PID as a non-zero type, and the
        // kernel reports 0 for a peer outside our PID namespace.
        let creds = nix::sys::socket::getsockopt(
            &socket.as_fd(),
            nix::sys::socket::sockopt::PeerCredentials,
        );
        match creds {
            Ok(creds) => Some(Self {
                pid: creds.pid(),
                uid: creds.uid(),
                gid: creds.gid(),
            }),
            Err(err) => {
                tracing::debug!("SO_PEERCRED: {err}");
                None
            }
        }
    }
}

/// Who a request is served for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestContext {
    /// The connection's ID: unique in this process, counted from 1 in the order
    /// connections started.
    pub connection: u64,
    /// The connection's peer, read once when it started; `None` unless the server reads
    /// peers ([`Server::read_peer_credentials`](crate::Server::read_peer_credentials)), or
    /// if the kernel would not tell.
    pub peer: Option<Peer>,
}

impl RequestContext {
    /// A context for a new connection, with the next ID.
    pub(crate) fn new_connection(peer: Option<Peer>) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            connection: NEXT.fetch_add(1, Ordering::Relaxed),
            peer,
        }
    }
}

thread_local! {
    static CURRENT: Cell<Option<RequestContext>> = const { Cell::new(None) };
    static RULE: Cell<Option<Arc<str>>> = const { Cell::new(None) };
}

/// The context of the request this thread is serving; `None` outside a request (a hook
/// called by a test, or on a thread of its own).
pub fn current() -> Option<RequestContext> {
    CURRENT.with(Cell::get)
}

/// Names the rule that decided the current operation, for an observer to read with
/// [`take_rule`]. A policy hook calls it in [`Hook::before`](crate::Hook::before); a later
/// call for the same operation (SetStat is checked once per class) replaces the name.
pub fn set_rule(rule: Arc<str>) {
    RULE.with(|slot| slot.set(Some(rule)));
}

/// The rule [`set_rule`] named since the last call, emptying the slot: an observer calls
/// it in [`Hook::after`](crate::Hook::after) for every operation, whether or not it records
/// it, so that a rule never passes to the next operation.
pub fn take_rule() -> Option<Arc<str>> {
    RULE.with(Cell::take)
}

/// Sets `context` as this thread's until the returned guard is dropped.
pub(crate) fn enter(context: RequestContext) -> Entered {
    CURRENT.with(|current| current.set(Some(context)));
    RULE.with(|slot| drop(slot.take()));
    Entered(())
}

/// Clears the thread's context when dropped (the request is done, or its handler panicked).
#[must_use]
pub(crate) struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(None));
        RULE.with(|slot| drop(slot.take()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_lasts_as_long_as_its_guard() {
        let context = RequestContext::new_connection(None);
        assert_eq!(current(), None);
        let entered = enter(context);
        assert_eq!(current(), Some(context));
        set_rule("r1".into());
        assert_eq!(take_rule().as_deref(), Some("r1"));
        assert_eq!(take_rule(), None);
        set_rule("r2".into());
        drop(entered);
        assert_eq!(current(), None);
        assert_eq!(take_rule(), None, "a rule does not outlive its request");
    }

    #[test]
    fn connection_ids_differ() {
        let a = RequestContext::new_connection(None);
        let b = RequestContext::new_connection(None);
        assert_ne!(a.connection, b.connection);
    }

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process() {
        let (a, _b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let peer = Peer::of(&a).expect("SO_PEERCRED");
        assert_eq!(u32::try_from(peer.pid), Ok(std::process::id()));
    }
}
