//! Hooks: policy and observation around any [`Backend`](crate::Backend).
//!
//! [`Hooked`] wraps a backend and implements [`Backend`](crate::Backend) itself, so it is served like any
//! other (`Server::new(Hooked::new(backend, hook), options)`). Every backend call becomes
//! an [`Op`]: its name, its [`OpClass`], the paths it concerns and, for I/O, a byte
//! count. Around the call a [`Hook`]
//!
//! * may refuse it first with an errno ([`Hook::before`]),
//! * observes its outcome, refusals included ([`Hook::after`]; [`Deferred`] moves that to
//!   a worker thread),
//! * may replace the bytes of a PWrite ([`Hook::write_data`]),
//! * may hide directory entries ([`Hook::hides`]): Getdents64 leaves them out, and Walk
//!   (and WalkStat) onto one ends as if it did not exist,
//! * may keep an opened regular file's host FD from the client ([`Hook::donate`]).
//!
//! # Where hooks sit
//!
//! Between the server and the backend. By the time a hook runs, the server has done its
//! own checks (FDIDs and FD kinds, name validation, flag masking, size limits, read-only
//! connections) and taken its locks; a request those refuse never reaches a hook. The
//! wire does not change: a refusal is an ordinary `ErrorResp` with the hook's errno.
//!
//! # Paths are current, and lazy
//!
//! A path in an [`Op`] is where the file is *now*, relative to the served root ("" is the
//! root), asked of the backend ([`Backend::path`](crate::Backend::path)) at the moment of the request, not
//! remembered from the walk that found the file. A hook that decides by path therefore
//! sees a file the client (or a host process) renamed under its new name, and a file
//! moved out of the share as `None`, even through an FD held across the rename.
//!
//! Naming a file costs the host backend three system calls, so no path is computed until
//! a hook asks for it ([`Op::path`], [`Op::new_path`]), and then once per request: a hook
//! that only cares about some classes of operation costs nothing on the others. For an
//! operation on a name in a directory (every `*At` creation, UnlinkAt, RenameAt, Walk)
//! the path is the directory's joined with the name, whether or not the name exists.
//!
//! # What hooks cannot see
//!
//! A host FD the backend donates is used by the client directly: reads and writes on it
//! never reach the gofer, so [`Hook::before`] decides at OpenAt time and
//! [`Hook::write_data`] sees only writes that come as PWrite RPCs. A hook that must see
//! every write of a file refuses donation for it ([`Hook::donate`]); the client then does
//! its I/O over RPC. A rename after the open does not take back an FD already donated.
//! Likewise a donated mount-point FD (`--donate-mount-fd`) gives the client the whole
//! share without RPCs; policy and that option do not mix.
//!
//! # Operations and their classes
//!
//! | op name | class | [`Op::path`] | [`Op::new_path`] | [`Op::count`] |
//! |---|---|---|---|---|
//! | Mount, FStat (and WalkStat's own stat), FStatFS | stat | the file | | |
//! | Walk (and each WalkStat step) | stat | directory/name | | |
//! | OpenAt | read, or write if opened for writing or with `O_TRUNC` | the file | | |
//! | PRead | read | the file | | bytes asked |
//! | ReadLinkAt, FGetXattr, FListXattr, FSync | read | the file | | |
//! | Getdents64 | read | the directory | | |
//! | PWrite | write | the file | | bytes sent |
//! | FAllocate | write | the file | | length |
//! | SetStat | write if it sets the size, then setattr if it sets anything else | the file | | |
//! | FSetXattr, FRemoveXattr | setattr | the file | | |
//! | OpenCreateAt, MkdirAt, MknodAt, SymlinkAt, BindAt | create | directory/name | | |
//! | LinkAt | create | the existing file | directory/name | |
//! | UnlinkAt | remove | directory/name | | |
//! | RenameAt (RenameAt2) | rename | old directory/name | new directory/name | |
//! | Connect (ConnectWithCreds), Listen, Accept | connect | the socket file | | |
//!
//! A SetStat that both truncates and changes other attributes is checked twice, once per
//! class, so neither rule can be dodged by combining them.
//!
//! A hook that hides an entry should also refuse (with `ENOENT`) every operation whose
//! path is hidden: [`Hook::hides`] covers lookups and listings, but a client may hold an
//! FD of a file that was renamed into a hidden place.

mod deferred;
mod hooked;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lisafs_protocol::wire::Errno;

pub use deferred::{Deferred, OwnedOp};
pub use hooked::{Hooked, HookedFile, HookedOpen, HookedSocket};

/// The class of an operation, the unit policy rules are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpClass {
    /// Attributes and lookups: FStat, FStatFS, Walk, WalkStat, Mount.
    Stat,
    /// Contents: OpenAt for reading, PRead, Getdents64, ReadLinkAt, xattr reads, FSync.
    Read,
    /// Changes of contents: OpenAt for writing or with `O_TRUNC`, PWrite, FAllocate, a
    /// SetStat of the size.
    Write,
    /// New names: OpenCreateAt, MkdirAt, MknodAt, SymlinkAt, LinkAt, BindAt.
    Create,
    /// UnlinkAt.
    Remove,
    /// RenameAt and RenameAt2, for both the old and the new path.
    Rename,
    /// Attributes: SetStat (other than the size), FSetXattr, FRemoveXattr.
    SetAttr,
    /// Unix sockets: Connect, ConnectWithCreds, Listen, Accept.
    Connect,
}

impl OpClass {
    /// Every class, in declaration order.
    pub const ALL: [OpClass; 8] = [
        Self::Stat,
        Self::Read,
        Self::Write,
        Self::Create,
        Self::Remove,
        Self::Rename,
        Self::SetAttr,
        Self::Connect,
    ];

    /// The class's name in configuration and logs: `stat`, `read`, `write`, `create`,
    /// `remove`, `rename`, `setattr`, `connect`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stat => "stat",
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Remove => "remove",
            Self::Rename => "rename",
            Self::SetAttr => "setattr",
            Self::Connect => "connect",
        }
    }

    /// The class named `name` (as [`OpClass::name`] spells it).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|class| class.name() == name)
    }
}

impl fmt::Display for OpClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A path computed on first use, then kept for the rest of the request.
struct LazyPath<'a> {
    source: Option<&'a (dyn Fn() -> Option<PathBuf> + 'a)>,
    value: OnceCell<Option<PathBuf>>,
}

impl<'a> LazyPath<'a> {
    fn lazy(source: &'a (dyn Fn() -> Option<PathBuf> + 'a)) -> Self {
        Self {
            source: Some(source),
            value: OnceCell::new(),
        }
    }

    fn fixed(path: Option<PathBuf>) -> Self {
        Self {
            source: None,
            value: OnceCell::from(path),
        }
    }

    fn get(&self) -> Option<&Path> {
        self.value
            .get_or_init(|| self.source.and_then(|source| source()))
            .as_deref()
    }

    /// The path if it was computed, without computing it.
    fn peek(&self) -> Option<Option<&Path>> {
        self.value.get().map(Option::as_deref)
    }
}

/// One backend operation, as hooks see it. See the module documentation for what each
/// operation's paths and count are.
pub struct Op<'a> {
    name: &'static str,
    class: OpClass,
    path: LazyPath<'a>,
    new_path: Option<LazyPath<'a>>,
    count: Option<u64>,
}

impl<'a> Op<'a> {
    /// An operation with paths already known, for testing a hook outside a server (and for
    /// [`OwnedOp`]); `path` and `new_path` are as [`Op::path`] and [`Op::new_path`] say.
    pub fn new(
        name: &'static str,
        class: OpClass,
        path: Option<PathBuf>,
        new_path: Option<PathBuf>,
        count: Option<u64>,
    ) -> Self {
        Self {
            name,
            class,
            path: LazyPath::fixed(path),
            new_path: new_path.map(|path| LazyPath::fixed(Some(path))),
            count,
        }
    }

    /// An operation whose path `source` computes if asked.
    pub(crate) fn lazy(
        name: &'static str,
        class: OpClass,
        source: &'a (dyn Fn() -> Option<PathBuf> + 'a),
    ) -> Self {
        Self {
            name,
            class,
            path: LazyPath::lazy(source),
            new_path: None,
            count: None,
        }
    }

    /// Adds the second path, computed by `source` if asked.
    pub(crate) fn with_new_path(mut self, source: &'a (dyn Fn() -> Option<PathBuf> + 'a)) -> Self {
        self.new_path = Some(LazyPath::lazy(source));
        self
    }

    /// Adds the byte count.
    pub(crate) fn with_count(mut self, count: u64) -> Self {
        self.count = Some(count);
        self
    }

    /// Changes the class (SetStat is checked once per class it touches).
    pub(crate) fn set_class(&mut self, class: OpClass) {
        self.class = class;
    }

    /// The operation's name: the lisafs message that caused it ("OpenAt", "PWrite", ...;
    /// see the module documentation for the few backend calls several messages share).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The operation's class.
    pub fn class(&self) -> OpClass {
        self.class
    }

    /// The path the operation acts on, relative to the served root ("" for the root), as
    /// it is now; `None` if the backend cannot tell or the file is outside the share (a
    /// policy should then refuse whatever it would refuse for an unknown path). Computed
    /// on the first call (the host backend: three system calls), cached afterwards.
    pub fn path(&self) -> Option<&Path> {
        self.path.get()
    }

    /// The second path of a RenameAt (the new name) or a LinkAt (the new link), computed
    /// like [`Op::path`]; `None` for other operations, or if it cannot be told.
    pub fn new_path(&self) -> Option<&Path> {
        self.new_path.as_ref().and_then(LazyPath::get)
    }

    /// Whether the operation has a second path ([`Op::new_path`]), without computing it.
    pub fn has_new_path(&self) -> bool {
        self.new_path.is_some()
    }

    /// Bytes asked for (PRead), sent (PWrite) or allocated (FAllocate).
    pub fn count(&self) -> Option<u64> {
        self.count
    }
}

impl fmt::Debug for Op<'_> {
    /// Shows paths only if a hook already computed them: formatting never costs a lookup.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Op");
        s.field("name", &self.name).field("class", &self.class);
        if let Some(path) = self.path.peek() {
            s.field("path", &path);
        }
        if let Some(path) = self.new_path.as_ref().and_then(LazyPath::peek) {
            s.field("new_path", &path);
        }
        if let Some(count) = self.count {
            s.field("count", &count);
        }
        s.finish_non_exhaustive()
    }
}

/// Policy and observation around backend calls. Every method has a default that lets
/// everything through unchanged, so a hook implements only what it needs.
///
/// Methods are called on the thread serving the request, concurrently for different
/// requests, with the server's locks for the request held: they should be quick, and must
/// not call back into the server.
pub trait Hook: Send + Sync + 'static {
    /// Decides whether `op` may run: an `Err` refuses it with that errno, and the backend
    /// is not called.
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        let _ = op;
        Ok(())
    }

    /// Observes the outcome of `op`: `Ok` if the backend succeeded, otherwise the errno
    /// the client gets, whether a hook refused the operation or the backend failed.
    /// Called once for every operation [`Hook::before`] saw, and for walks onto hidden
    /// entries (with `ENOENT`). See [`Deferred`] to run it on a worker thread.
    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        let _ = (op, outcome);
    }

    /// The bytes a PWrite writes instead of `data`, called after [`Hook::before`] allowed
    /// it; an `Err` refuses the write. Only writes that come over RPC pass here (see
    /// [`Hook::donate`]). If the replacement is written whole, the client is told all of
    /// `data` was; otherwise the count the backend reports, at most `data.len()`.
    fn write_data<'d>(&self, op: &Op<'_>, data: &'d [u8]) -> Result<Cow<'d, [u8]>, Errno> {
        let _ = op;
        Ok(Cow::Borrowed(data))
    }

    /// Whether the entry `name` of the directory `dir` (its Getdents64 or Walk operation)
    /// is hidden: left out of listings, and `ENOENT` to a walk onto it.
    fn hides(&self, dir: &Op<'_>, name: &[u8]) -> bool {
        let _ = (dir, name);
        false
    }

    /// Whether the host FD of a regular file that `op` (an OpenAt or OpenCreateAt) just
    /// opened may be donated to the client. `false` keeps the client's I/O on PRead and
    /// PWrite, where [`Hook::before`] and [`Hook::write_data`] see every call. FDs whose
    /// donation the protocol needs (FIFOs, a donated mount point) are not asked about.
    fn donate(&self, op: &Op<'_>) -> bool {
        let _ = op;
        true
    }
}

/// Two hooks in turn: both must allow an operation (the first refusal wins, and the second
/// is then not asked), both observe it, the second rewrites what the first wrote, an
/// entry either hides is hidden, and a file is donated only if both agree.
impl<A: Hook, B: Hook> Hook for (A, B) {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        self.0.before(op)?;
        self.1.before(op)
    }

    fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
        self.0.after(op, outcome);
        self.1.after(op, outcome);
    }

    fn write_data<'d>(&self, op: &Op<'_>, data: &'d [u8]) -> Result<Cow<'d, [u8]>, Errno> {
        match self.0.write_data(op, data)? {
            Cow::Borrowed(data) => self.1.write_data(op, data),
            Cow::Owned(data) => Ok(Cow::Owned(self.1.write_data(op, &data)?.into_owned())),
        }
    }

    fn hides(&self, dir: &Op<'_>, name: &[u8]) -> bool {
        self.0.hides(dir, name) || self.1.hides(dir, name)
    }

    fn donate(&self, op: &Op<'_>) -> bool {
        self.0.donate(op) && self.1.donate(op)
    }
}

macro_rules! forward_hook {
    ($($wrapper:ty),*) => {$(
        /// Forwards to the hook inside, so a hook chosen at run time or shared with other
        /// code can be used.
        impl<H: Hook + ?Sized> Hook for $wrapper {
            fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
                (**self).before(op)
            }

            fn after(&self, op: &Op<'_>, outcome: Result<(), Errno>) {
                (**self).after(op, outcome)
            }

            fn write_data<'d>(
                &self,
                op: &Op<'_>,
                data: &'d [u8],
            ) -> Result<Cow<'d, [u8]>, Errno> {
                (**self).write_data(op, data)
            }

            fn hides(&self, dir: &Op<'_>, name: &[u8]) -> bool {
                (**self).hides(dir, name)
            }

            fn donate(&self, op: &Op<'_>) -> bool {
                (**self).donate(op)
            }
        }
    )*};
}

forward_hook!(Box<H>, Arc<H>);

/// The hook that does nothing: every default. Useful to measure the layer's own cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

impl Hook for NoHook {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for class in OpClass::ALL {
            assert_eq!(OpClass::from_name(class.name()), Some(class));
        }
        assert_eq!(OpClass::from_name("delete"), None);
    }

    #[test]
    fn a_lazy_path_is_computed_once_and_only_when_asked() {
        let calls = std::cell::Cell::new(0);
        let source = || {
            calls.set(calls.get() + 1);
            Some(PathBuf::from("a/b"))
        };
        let op = Op::lazy("FStat", OpClass::Stat, &source);
        assert!(!format!("{op:?}").contains("a/b"));
        assert_eq!(calls.get(), 0);
        assert_eq!(op.path(), Some(Path::new("a/b")));
        assert_eq!(op.path(), Some(Path::new("a/b")));
        assert_eq!(calls.get(), 1);
        assert!(format!("{op:?}").contains("a/b"));
        assert_eq!(op.new_path(), None);
    }

    struct Upper;

    impl Hook for Upper {
        fn write_data<'d>(&self, _: &Op<'_>, data: &'d [u8]) -> Result<Cow<'d, [u8]>, Errno> {
            Ok(Cow::Owned(data.to_ascii_uppercase()))
        }

        fn hides(&self, _: &Op<'_>, name: &[u8]) -> bool {
            name == b"x"
        }
    }

    struct Refuse;

    impl Hook for Refuse {
        fn before(&self, _: &Op<'_>) -> Result<(), Errno> {
            Err(Errno::EACCES)
        }

        fn write_data<'d>(&self, _: &Op<'_>, data: &'d [u8]) -> Result<Cow<'d, [u8]>, Errno> {
            Ok(Cow::Owned([data, b"!"].concat()))
        }

        fn donate(&self, _: &Op<'_>) -> bool {
            false
        }
    }

    #[test]
    fn a_pair_chains_both_hooks() {
        let op = Op::new("PWrite", OpClass::Write, None, None, Some(2));
        let pair = (Upper, Refuse);
        assert_eq!(pair.before(&op), Err(Errno::EACCES));
        assert_eq!(pair.write_data(&op, b"ab").unwrap().as_ref(), b"AB!");
        assert!(pair.hides(&op, b"x"));
        assert!(!pair.hides(&op, b"y"));
        assert!(!pair.donate(&op));
        let boxed: Box<dyn Hook> = Box::new(Upper);
        assert!(boxed.donate(&op));
        assert_eq!(boxed.write_data(&op, b"q").unwrap().as_ref(), b"Q");
    }
}
