//! Turning a client path into server FDs: splitting, one multi-component Walk per
//! attempt, and client-side symlink resolution.
//!
//! Paths are relative to the mount root; a leading "/" changes nothing, "" and "/" name
//! the root, and empty components ("a//b") are skipped. "." and ".." are refused with
//! `EINVAL`: lisafs servers refuse them in names, and resolving them client-side would
//! give `a/..` a meaning that depends on whether `a` is a symlink.
//!
//! The server never follows symlinks: a Walk stops at one with `ComponentSymlink`. The
//! client then reads the link and walks again with the link replaced by its target, up to
//! 40 links (then `ELOOP`). Targets are resolved as if the mount root were `/` (a leading
//! "/" restarts at the root and ".." never climbs above it); their "." and ".."
//! components are applied lexically, which is exact because every component before the
//! link was just walked as a real directory.

use std::ops::Deref;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use lisafs_protocol::wire::{Errno, Statx, WalkStatus};

use crate::error::{Error, Result};
use crate::fd::ControlFd;
use crate::types::FileType;
use crate::Client;

/// Links followed in one resolution before giving up with `ELOOP` (Linux's limit).
pub const MAX_SYMLINKS: usize = 40;

/// The components of `path`.
pub(crate) fn split(path: &Path) -> Result<Vec<Vec<u8>>> {
    let mut components = Vec::new();
    for component in path.as_os_str().as_bytes().split(|&b| b == b'/') {
        match component {
            b"" => {}
            b"." | b".." => return Err(Error::local(Errno::EINVAL)),
            name => components.push(name.to_vec()),
        }
    }
    Ok(components)
}

/// A directory (or file) FD reached by a path: the client's root, borrowed, or one a walk
/// created, owned (and closed when dropped).
#[derive(Debug)]
pub(crate) enum Node<'a> {
    Root(&'a ControlFd),
    Walked(ControlFd),
}

impl Deref for Node<'_> {
    type Target = ControlFd;

    fn deref(&self) -> &ControlFd {
        match self {
            Node::Root(fd) => fd,
            Node::Walked(fd) => fd,
        }
    }
}

/// How far a path resolved.
#[derive(Debug)]
pub(crate) struct Resolved<'a> {
    /// The deepest file reached.
    pub(crate) node: Node<'a>,
    /// Its attributes from the walk; `None` for the root (no walk was needed).
    pub(crate) stat: Option<Statx>,
    /// The components after `node` that do not exist; empty when the path resolved.
    pub(crate) missing: Vec<Vec<u8>>,
}

impl Resolved<'_> {
    /// The node, or `ENOENT` if part of the path does not exist.
    pub(crate) fn existing(self) -> Result<Self> {
        if self.missing.is_empty() {
            Ok(self)
        } else {
            Err(Error::remote(Errno::ENOENT))
        }
    }

    /// The node's attributes, asking the server only for the root's.
    pub(crate) fn stat(&self) -> Result<Statx> {
        match self.stat {
            Some(stat) => Ok(stat),
            None => self.node.fstat(),
        }
    }
}

pub(crate) fn is_symlink(stat: &Statx) -> bool {
    FileType::from_mode(stat.mode).is_symlink()
}

impl Client {
    /// Resolves `components` from the root with one Walk (plus one Walk and one
    /// ReadLinkAt per symlink met). A final symlink is followed only if `follow_final`.
    /// Every FDID the walks create, other than the returned node, is released.
    pub(crate) fn resolve(
        &self,
        mut components: Vec<Vec<u8>>,
        follow_final: bool,
    ) -> Result<Resolved<'_>> {
        let mut links = 0;
        loop {
            if components.is_empty() {
                return Ok(Resolved {
                    node: Node::Root(self.root()),
                    stat: None,
                    missing: Vec::new(),
                });
            }
            let (status, mut inodes) = self.root().walk(&components)?;
            let walked = inodes.len();
            let follow = match status {
                WalkStatus::ComponentSymlink => true,
                WalkStatus::Success => {
                    follow_final && inodes.last().is_some_and(|i| is_symlink(&i.stat))
                }
                WalkStatus::ComponentDoesNotExist => false,
            };
            let Some(last) = inodes.pop() else {
                // Nothing walked: the first component is missing.
                return Ok(Resolved {
                    node: Node::Root(self.root()),
                    stat: None,
                    missing: components,
                });
            };
            if !follow {
                return Ok(Resolved {
                    node: Node::Walked(last.fd),
                    stat: Some(last.stat),
                    missing: components.split_off(walked),
                });
            }
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Error::local(Errno::ELOOP));
            }
            let target = last.fd.readlink_at()?;
            let rest = components.split_off(walked);
            components.truncate(walked - 1);
            components = substitute(components, &target, rest)?;
        }
    }

    /// The directory that holds the last component of `path`, and that component's
    /// name. `root_errno` is the error for a path naming the root itself, which has no
    /// parent.
    pub(crate) fn parent(&self, path: &Path, root_errno: Errno) -> Result<(Node<'_>, Vec<u8>)> {
        let mut components = split(path)?;
        let Some(name) = components.pop() else {
            return Err(Error::local(root_errno));
        };
        let dir = self.resolve(components, true)?.existing()?;
        Ok((dir.node, name))
    }
}

/// The path that replaces a symlink: `prefix` (the directories before it) joined with
/// `target`, then `rest` (the components after it).
fn substitute(prefix: Vec<Vec<u8>>, target: &[u8], rest: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>> {
    if target.is_empty() {
        // As on Linux, an empty symlink resolves to nothing.
        return Err(Error::remote(Errno::ENOENT));
    }
    let mut out = if target.starts_with(b"/") {
        Vec::new()
    } else {
        prefix
    };
    for component in target.split(|&b| b == b'/') {
        match component {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            name => out.push(name.to_vec()),
        }
    }
    out.extend(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn names(components: &[Vec<u8>]) -> Vec<&str> {
        components
            .iter()
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn split_skips_empty_components_and_leading_slash() {
        assert_eq!(
            names(&split(Path::new("/a//b/c/")).unwrap()),
            ["a", "b", "c"]
        );
        assert!(split(Path::new("")).unwrap().is_empty());
        assert!(split(Path::new("/")).unwrap().is_empty());
    }

    #[test]
    fn split_refuses_dot_and_dotdot_with_einval() {
        assert_eq!(
            split(Path::new("a/./b")).unwrap_err().errno(),
            Errno::EINVAL
        );
        assert_eq!(
            split(Path::new("a/../b")).unwrap_err().errno(),
            Errno::EINVAL
        );
    }

    #[test]
    fn relative_target_replaces_the_link_and_applies_dotdot() {
        let prefix = vec![b"a".to_vec(), b"b".to_vec()];
        let out = substitute(prefix, b"../x/./y", vec![b"z".to_vec()]).unwrap();
        assert_eq!(names(&out), ["a", "x", "y", "z"]);
    }

    #[test]
    fn absolute_target_restarts_at_the_root_and_dotdot_stops_there() {
        let prefix = vec![b"a".to_vec()];
        let out = substitute(prefix, b"/../../etc", vec![]).unwrap();
        assert_eq!(names(&out), ["etc"]);
    }

    #[test]
    fn empty_target_is_enoent() {
        assert_eq!(
            substitute(vec![], b"", vec![]).unwrap_err().errno(),
            Errno::ENOENT
        );
    }
}
