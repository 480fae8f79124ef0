//! Remote path operands as a shell user writes them: "." and ".." components (which the
//! client library refuses), and a destination that is an existing directory.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use lisafs_client::{Client, Errno, Error, FileType, MAX_SYMLINKS};

/// `path` without "." and ".." components, resolved as in a chroot at the server's root:
/// ".." at the root stays there, and ".." after a symlink leaves the symlink's target,
/// not the directory holding the link (as the kernel does). A path without ".." costs no
/// RPC; otherwise every component up to the last ".." is looked at (one WalkStat each,
/// plus a ReadLinkAt per symlink).
pub(crate) fn clean(client: &Client, path: &Path) -> Result<PathBuf, Error> {
    let mut pending: VecDeque<Vec<u8>> = components(path.as_os_str().as_bytes()).collect();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    // Every name in `done` was seen to be a real directory, so ".." pops it exactly.
    while pending.iter().any(|c| c == b"..") {
        let Some(component) = pending.pop_front() else {
            break;
        };
        if component == b".." {
            done.pop();
            continue;
        }
        let here = join(done.iter().chain([&component]));
        let stat = client.symlink_metadata(&here)?;
        match FileType::from_mode(stat.mode) {
            FileType::Directory => done.push(component),
            FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP.into());
                }
                let target = client.read_link(&here)?;
                if target.is_empty() {
                    return Err(Errno::ENOENT.into());
                }
                if target.starts_with(b"/") {
                    done.clear();
                }
                let parts: Vec<Vec<u8>> = components(&target).collect();
                for part in parts.into_iter().rev() {
                    pending.push_front(part);
                }
            }
            // Something follows it (at least the ".."), so it had to be a directory.
            _ => return Err(Errno::ENOTDIR.into()),
        }
    }
    Ok(join(done.iter().chain(&pending)))
}

/// The components of `path`, without empty ones and ".".
fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !matches!(*c, b"" | b"."))
        .map(<[u8]>::to_vec)
}

/// "/" followed by `components` joined with "/".
fn join<'a>(components: impl IntoIterator<Item = &'a Vec<u8>>) -> PathBuf {
    let mut out = Vec::from(&b"/"[..]);
    for component in components {
        if out.len() > 1 {
            out.push(b'/');
        }
        out.extend_from_slice(component);
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

/// Where a file named like `source` goes when the operand `dest` names it: inside `dest`
/// if that is an existing directory (symlinks followed, as `cp` and `mv(1)` do), else
/// `dest` itself. `dest` is already [`clean`]ed; `given` is how the user wrote it, whose
/// trailing "/" promises a directory.
pub(crate) fn into_dir(
    client: &Client,
    source: &Path,
    dest: &Path,
    given: &Path,
) -> Result<PathBuf, Error> {
    let is_dir = match client.metadata(dest) {
        Ok(stat) => FileType::from_mode(stat.mode).is_dir(),
        Err(err) if err.errno() == Errno::ENOENT => false,
        Err(err) => return Err(err),
    };
    if is_dir {
        let name = file_name(source).ok_or(Errno::EISDIR)?;
        Ok(dest.join(name))
    } else if given.as_os_str().as_bytes().ends_with(b"/") {
        Err(Errno::ENOTDIR.into())
    } else {
        Ok(dest.to_path_buf())
    }
}

/// The last component of `path` (after `clean`ing away "." and ".."); `None` for the
/// root, "-" and paths ending in "..".
pub(crate) fn file_name(path: &Path) -> Option<&OsStr> {
    if path == Path::new("-") {
        return None;
    }
    path.file_name()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn components_drop_empty_and_dot() {
        let parts: Vec<Vec<u8>> = components(b"./a//./b/").collect();
        assert_eq!(parts, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn join_is_absolute_from_the_root() {
        assert_eq!(join(&[]), PathBuf::from("/"));
        assert_eq!(join(&[b"a".to_vec(), b"b".to_vec()]), PathBuf::from("/a/b"));
    }
}
