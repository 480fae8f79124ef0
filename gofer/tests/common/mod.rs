//! Shared helpers for the host backend tests: a temp directory served by a `HostBackend`.
#![allow(dead_code, unreachable_pub)] // Each test binary uses a different subset.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use lisafs_gofer::host::{HostBackend, HostFile, HostOptions};
use lisafs_gofer::wire::{Errno, Gid, Statx, Uid};
use lisafs_server::{BResult, Backend, Create, Name, Node, OpenFlags};
use tempfile::TempDir;

/// A temp directory (the served root) and a backend serving it.
pub struct Fixture {
    pub dir: TempDir,
    pub backend: HostBackend,
    pub root: HostFile,
}

impl Fixture {
    /// The strict default policy.
    pub fn new() -> Self {
        Self::with(HostOptions::default())
    }

    pub fn with(options: HostOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::serve(dir, options)
    }

    /// Serves an existing temp directory.
    pub fn serve(dir: TempDir, options: HostOptions) -> Self {
        let backend = HostBackend::new(dir.path(), options).unwrap();
        let root = backend.mount().unwrap().root.file;
        Self { dir, backend, root }
    }

    /// The host path of `rel` inside the root.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn walk(&self, dir: &HostFile, name: &str) -> BResult<Node<HostFile>> {
        self.backend.walk(dir, n(name))
    }

    /// Walks a `/`-separated path from the root, one component at a time.
    pub fn walk_path(&self, path: &str) -> BResult<Node<HostFile>> {
        let mut parts = path.split('/');
        let first = parts.next().unwrap();
        let mut node = self.walk(&self.root, first)?;
        for part in parts {
            node = self.walk(&node.file, part)?;
        }
        Ok(node)
    }

    pub fn mkdir(&self, dir: &HostFile, name: &str, mode: u32) -> BResult<Node<HostFile>> {
        self.backend.mkdir(dir, n(name), attrs(mode))
    }

    /// Creates a regular file with `content` through the backend.
    pub fn file(&self, dir: &HostFile, name: &str, content: &[u8]) -> Node<HostFile> {
        let (node, opened) = self
            .backend
            .create(dir, n(name), attrs(0o644), RDWR)
            .unwrap();
        assert_eq!(
            self.backend.write(&opened.open, 0, content).unwrap(),
            content.len()
        );
        node
    }

    pub fn stat(&self, file: &HostFile) -> Statx {
        self.backend.stat(file).unwrap()
    }
}

/// A validated name (panics on an invalid one: tests only use good names here).
pub fn n(name: &str) -> Name<'_> {
    Name::new(name.as_bytes()).unwrap()
}

/// Create attributes with `mode` and no owner change.
pub fn attrs(mode: u32) -> Create {
    Create {
        mode,
        uid: Uid::NONE,
        gid: Gid::NONE,
    }
}

pub const RDONLY: OpenFlags = OpenFlags {
    read: true,
    write: false,
    truncate: false,
};
pub const WRONLY: OpenFlags = OpenFlags {
    read: false,
    write: true,
    truncate: false,
};
pub const RDWR: OpenFlags = OpenFlags {
    read: true,
    write: true,
    truncate: false,
};

/// The type bits of a mode.
pub fn file_type(mode: u16) -> u16 {
    mode & 0o170_000
}

/// Host `lstat` of a path.
pub fn lstat(path: &Path) -> std::fs::Metadata {
    std::fs::symlink_metadata(path).unwrap()
}

/// The error of a result that must have failed.
pub fn errno<T: std::fmt::Debug>(result: BResult<T>) -> Errno {
    result.unwrap_err()
}

/// The path the kernel shows for an FD (for "where does this FD point" checks).
pub fn fd_path(fd: &impl AsFd) -> PathBuf {
    let link = format!(
        "/proc/self/fd/{}",
        rustix::path::DecInt::from_fd(fd).as_str()
    );
    std::fs::read_link(link).unwrap()
}
