//! The lisafs client library a sandbox (or a tool) links to, with two programs built on
//! it: the `lisafs` CLI (feature `cli`) and the `lisafs-mount` FUSE bridge (feature
//! `mount`). Both features are on by default; a library user who needs neither sets
//! `default-features = false` and builds none of their dependencies (clap, fuser, ...).
//! `client/examples/` has small programs that use the library against a running gofer.
//!
//! Three layers, each on top of the previous:
//!
//! 1. [`Client`]: the connection. [`Client::connect`] / [`Client::from_fd`] mount
//!    (SPEC.md §5): they adopt the server's `max_message_size` and keep its supported-MID
//!    list. Every RPC goes through one request/response path that applies the client
//!    rules of SPEC.md §8.3: an unsupported MID fails with `EOPNOTSUPP` and an oversized
//!    request with `EIO` without being sent; an `ErrorResp` becomes its errno; a response
//!    under the wrong MID is `EINVAL`, an undecodable one `EIO`; a transport failure is
//!    `EIO` (`ETIMEDOUT` when a deadline set on the socket passed: [`Error::is_timeout`])
//!    and breaks the client for good. After Mount the client asks for shared-memory
//!    channels ([`ClientOptions::channels`]); an RPC takes an idle one if there is one, so
//!    threads sharing a `Client` run RPCs in parallel, and otherwise uses the socket.
//! 2. FD handles, one type per lisafs FD kind ([`ControlFd`], [`OpenFd`],
//!    [`BoundSocketFd`]), with a method per RPC and typed results ([`Inode`], `Statx`,
//!    `WalkStatus`, donated `OwnedFd`s). Dropping a handle queues its FDID; the queue is
//!    sent as one Close per [`CLOSE_BATCH`] IDs, on [`Client::flush_closes`], and when
//!    the `Client` is dropped. Reads and writes are split into chunks that fit the
//!    server's limit. [`File`] wraps an [`OpenFd`] with a position for `std::io`.
//! 3. A path layer on `Client`, shaped after `std::fs` ([`Client::open`],
//!    [`Client::read_dir`], [`Client::metadata`], [`Client::create_dir_all`], ...), that
//!    resolves a path with one multi-component Walk and follows symlinks client-side
//!    (the server never does); see [`MAX_SYMLINKS`] and the rules below.
//!
//! Paths are relative to the mount root: "" and "/" name the root, empty components are
//! skipped, and "." or ".." in a path fail with `EINVAL`. Symlink targets are resolved as
//! if the mount root were "/".
//!
//! Errors are one opaque [`Error`] carrying a Linux errno ([`Error::errno`]) and
//! displaying as the C library's text; it converts into `std::io::Error`.
#![forbid(unsafe_code)]

mod channels;
mod client;
mod control;
mod error;
mod fd;
mod file;
mod fs;
mod open;
mod path;
mod socket;
mod types;

pub use channels::ClientOptions;
pub use client::{Client, CLOSE_BATCH};
pub use error::{Error, ErrorKind, Result};
pub use fd::{BoundSocketFd, ControlFd, Inode, OpenFd, Opened, Owner};
pub use file::File;
pub use lisafs_protocol::transport::channel::SpinPolicy;
pub use lisafs_protocol::wire;
pub use lisafs_protocol::wire::{Errno, Mid, StatFS, Statx, WalkStatus};
pub use path::MAX_SYMLINKS;
pub use types::{
    DirEntry, FileType, SetStat, SetStatOutcome, AT_REMOVEDIR, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY,
    RENAME_EXCHANGE, RENAME_NOREPLACE, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, XATTR_CREATE,
    XATTR_REPLACE,
};
