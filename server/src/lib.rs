//! The lisafs server framework: connections, the FD table, dispatch of every MID with
//! lisafs's errno policy, and the [`Backend`] trait a filesystem implements.
//!
//! It knows nothing about the host filesystem; the gofer crate provides the host backend.
//! A [`Server`] serves any number of connections, one thread each, plus one thread per
//! shared-memory channel a client creates; each connection is one mount with its own FD
//! table. [`metrics`] counts what the connections do, when enabled. See ARCHITECTURE.md
//! for the request lifecycle.

mod backend;
mod channels;
mod connection;
pub mod context;
mod dirent_batch;
mod fd_table;
mod handlers;
pub mod hooks;
pub mod idmap;
pub mod metrics;
mod name;
mod node_lock;
pub mod refusal;
mod server;
mod walk_cache;

pub use backend::{BResult, Backend, Create, Created, Mounted, Node, OpenFlags, Opened, SharedFd};
pub use context::RequestContext;
pub use dirent_batch::DirentBatch;
pub use hooks::{Hook, Hooked, Op, OpClass};
pub use idmap::{IdMap, IdRange};
pub use metrics::Metrics;
pub use name::Name;
pub use refusal::Refusal;
pub use server::{ServeError, Server, ServerOptions};
pub use walk_cache::WALK_CACHE_CAPACITY;

pub use lisafs_protocol::transport::channel::SpinPolicy;
pub use lisafs_protocol::wire;
