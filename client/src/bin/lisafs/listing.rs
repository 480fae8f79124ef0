//! `ls`, `stat` and `tree`: reading directories and attributes and printing them.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use lisafs_client::{Client, FileType, Statx};

use crate::format;
use crate::paths::clean;
use crate::report::{on, stdout_write, Outcome};

/// Writes `bytes` and a newline to standard output.
pub(crate) fn line(out: &mut impl Write, bytes: &[u8]) -> Outcome {
    stdout_write(out.write_all(bytes).and_then(|()| out.write_all(b"\n")))
}

fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn child(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// `ls [-l] [-a] PATH`. Names starting with "." are hidden unless `all`, which also
/// lists "." and ".." first, as `ls -a` does.
pub(crate) fn ls(
    client: &Client,
    out: &mut impl Write,
    path: &Path,
    long: bool,
    all: bool,
) -> Outcome {
    let cleaned = on(clean(client, path), "ls", path)?;
    let stat = on(client.metadata(&cleaned), "ls", path)?;
    if !FileType::from_mode(stat.mode).is_dir() {
        let st = on(client.symlink_metadata(&cleaned), "ls", path)?;
        let name = path.as_os_str().as_bytes();
        return ls_line(client, out, &cleaned, name, &st, long);
    }
    let mut entries = on(client.read_dir(&cleaned), "ls", path)?;
    entries.retain(|entry| all || !entry.name.starts_with(b"."));
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    if all {
        let parent = on(clean(client, &cleaned.join("..")), "ls", path)?;
        for (name, dir) in [(&b"."[..], &cleaned), (&b".."[..], &parent)] {
            // Follows symlinks: "." is the directory listed, whatever named it.
            let st = on(client.metadata(dir), "ls", path)?;
            ls_line(client, out, dir, name, &st, long)?;
        }
    }
    for entry in &entries {
        if long {
            let (full, shown) = (child(&cleaned, &entry.name), child(path, &entry.name));
            let st = on(client.symlink_metadata(&full), "ls", &shown)?;
            ls_line(client, out, &full, &entry.name, &st, true)?;
        } else {
            line(out, &entry.name)?;
        }
    }
    Ok(())
}

fn ls_line(
    client: &Client,
    out: &mut impl Write,
    full: &Path,
    name: &[u8],
    stat: &Statx,
    long: bool,
) -> Outcome {
    if !long {
        return line(out, name);
    }
    let target = match FileType::from_mode(stat.mode) {
        FileType::Symlink => Some(display(&on(client.read_link(full), "ls", full)?)),
        _ => None,
    };
    let text = format::long_line(stat, &display(name), target.as_deref());
    line(out, text.as_bytes())
}

/// `stat PATH`: a symlink itself, not its target.
pub(crate) fn stat(client: &Client, out: &mut impl Write, path: &Path) -> Outcome {
    let cleaned = on(clean(client, path), "stat", path)?;
    let st = on(client.symlink_metadata(&cleaned), "stat", path)?;
    let target = match FileType::from_mode(st.mode) {
        FileType::Symlink => Some(display(&on(client.read_link(&cleaned), "stat", path)?)),
        _ => None,
    };
    let name = path.display().to_string();
    let text = format::stat_text(&st, &name, target.as_deref());
    stdout_write(out.write_all(text.as_bytes()))
}

/// `tree PATH`, with the `tree(1)` summary line.
pub(crate) fn tree(client: &Client, out: &mut impl Write, path: &Path) -> Outcome {
    let cleaned = on(clean(client, path), "tree", path)?;
    line(out, path.as_os_str().as_bytes())?;
    let mut counts = (0, 0);
    tree_below(client, out, &cleaned, "", &mut counts)?;
    let (dirs, files) = counts;
    let summary = format!("\n{dirs} directories, {files} files\n");
    stdout_write(out.write_all(summary.as_bytes()))
}

/// The entries below `dir`; `counts` is (directories, files) so far.
fn tree_below(
    client: &Client,
    out: &mut impl Write,
    dir: &Path,
    indent: &str,
    counts: &mut (usize, usize),
) -> Outcome {
    let mut entries = on(client.read_dir(dir), "tree", dir)?;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let count = entries.len();
    for (i, entry) in entries.iter().enumerate() {
        let last = i + 1 == count;
        let full = child(dir, &entry.name);
        let mut shown = format!(
            "{indent}{}{}",
            if last { "└── " } else { "├── " },
            entry.name_lossy()
        );
        if entry.file_type.is_symlink() {
            let target = on(client.read_link(&full), "tree", &full)?;
            shown.push_str(&format!(" -> {}", display(&target)));
        }
        line(out, shown.as_bytes())?;
        if entry.file_type.is_dir() {
            counts.0 += 1;
            let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
            tree_below(client, out, &full, &deeper, counts)?;
        } else {
            counts.1 += 1;
        }
    }
    Ok(())
}
