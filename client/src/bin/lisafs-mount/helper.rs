//! `mount.fuse.lisafs`: the same program under mount(8)'s helper name (a symlink), so that
//! `mount -t fuse.lisafs SOURCE MOUNTPOINT -o OPTIONS` and fstab lines work. mount(8)
//! runs `mount.fuse.lisafs SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`;
//! this turns that into our own command line.
//!
//! SOURCE is `root=DIR` (start a gofer on DIR), `socket=PATH` (attach to a running
//! gofer), `memory` (start a `gofer --memory`: a tree in its memory), or a bare path: a directory is served with a gofer, anything else is taken
//! for a gofer's socket. Options that are ours rather than FUSE's: `log_level=LEVEL`,
//! `log_file=FILE`, `attr_timeout=S`, `entry_timeout=S`, `threads=N`, `gofer=PATH`,
//! `gofer_arg=ARG` (repeatable; ARG has no commas); `ro` also starts the gofer
//! read-only. fstab-only options (`defaults`, `noauto`, `nofail`, `_netdev`, `user`,
//! `x-*`, `comment=*`, …) are dropped.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The name mount(8) looks for.
pub(crate) const NAME: &str = "mount.fuse.lisafs";

/// Whether `argv0` is the helper's name (a symlink such as `/sbin/mount.fuse.lisafs`).
pub(crate) fn invoked_as_helper(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(NAME))
}

/// What the helper command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Helper {
    /// Our own arguments (without `argv[0]`).
    Mount(Vec<OsString>),
    /// mount(8)'s `-f`: pretend; nothing to do.
    Fake,
}

/// Translates mount(8)'s helper arguments (after `argv[0]`) into ours.
pub(crate) fn translate(args: &[OsString]) -> Result<Helper, String> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut fake = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.to_str() {
            Some("-o") => {
                let value = iter.next().ok_or("-o needs a value")?;
                let value = value.to_str().ok_or("options are not UTF-8")?;
                options.extend(value.split(',').filter(|o| !o.is_empty()).map(String::from));
            }
            Some("-t") => {
                iter.next();
            }
            Some("-N") => return Err("-N (mount in another namespace) is not supported".into()),
            Some(flags) if flags.starts_with('-') && flags.len() > 1 => {
                for flag in flags[1..].chars() {
                    match flag {
                        'f' => fake = true,
                        // sloppy, no mtab, verbose: nothing to do for them.
                        's' | 'n' | 'v' => {}
                        other => return Err(format!("unknown flag -{other}")),
                    }
                }
            }
            _ => positional.push(arg.clone()),
        }
    }
    let [source, mountpoint] = <[OsString; 2]>::try_from(positional)
        .map_err(|_| format!("usage: {NAME} SOURCE MOUNTPOINT [-o OPTIONS]"))?;
    let mut out: Vec<OsString> = source_args(&source)?;
    out.push(mountpoint);
    let mut fuse = Vec::new();
    for option in options {
        let (key, value) = match option.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (option.as_str(), None),
        };
        let flag = match key {
            "defaults" | "auto" | "noauto" | "user" | "nouser" | "users" | "owner" | "group"
            | "nofail" | "_netdev" | "comment" => continue,
            key if key.starts_with("x-") => continue,
            "ro" => {
                out.push("--readonly".into());
                continue;
            }
            "log_level" => "--log-level",
            "log_file" => "--log-file",
            "attr_timeout" => "--attr-timeout",
            "entry_timeout" => "--entry-timeout",
            "threads" => "--threads",
            "gofer" => "--gofer",
            "gofer_arg" => "--gofer-arg",
            _ => {
                fuse.push(option.clone());
                continue;
            }
        };
        let value = value.ok_or_else(|| format!("option {key} needs a value ({key}=…)"))?;
        // `--flag=value`: a gofer argument starts with `-`.
        out.push(format!("{flag}={value}").into());
    }
    if !fuse.is_empty() {
        out.push("-o".into());
        out.push(fuse.join(",").into());
    }
    Ok(if fake {
        Helper::Fake
    } else {
        Helper::Mount(out)
    })
}

fn source_args(source: &OsStr) -> Result<Vec<OsString>, String> {
    let text = source.to_string_lossy();
    // A tree in the gofer's memory (a directory called "memory" is root=memory).
    if text == "memory" {
        return Ok(vec!["--memory".into()]);
    }
    let (flag, path): (&str, OsString) = if let Some(dir) = text.strip_prefix("root=") {
        ("--root", dir.into())
    } else if let Some(socket) = text.strip_prefix("socket=") {
        ("--socket", socket.into())
    } else if Path::new(source).is_dir() {
        ("--root", source.into())
    } else if text.starts_with('/') {
        ("--socket", source.into())
    } else {
        return Err(format!(
            "source {text:?}: give root=DIR, socket=PATH, memory or an absolute path"
        ));
    };
    Ok(vec![flag.into(), path])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn fstab_options_are_split_between_fuse_and_our_flags() {
        let got = translate(&args(&[
            "root=/srv/share",
            "/mnt/share",
            "-o",
            "rw,noauto,x-systemd.automount,allow_other,ro,log_level=info,gofer_arg=--allow-setid",
        ]))
        .unwrap();
        let want = args(&[
            "--root",
            "/srv/share",
            "/mnt/share",
            "--readonly",
            "--log-level=info",
            "--gofer-arg=--allow-setid",
            "-o",
            "rw,allow_other",
        ]);
        assert_eq!(got, Helper::Mount(want));
    }

    #[test]
    fn socket_source_and_mount_flags() {
        let got = translate(&args(&[
            "socket=/run/g.sock",
            "/mnt",
            "-nv",
            "-t",
            "fuse.lisafs",
        ]));
        assert_eq!(
            got.unwrap(),
            Helper::Mount(args(&["--socket", "/run/g.sock", "/mnt"]))
        );
        assert_eq!(
            translate(&args(&["root=/x", "/mnt", "-f"])).unwrap(),
            Helper::Fake
        );
    }

    #[test]
    fn memory_source_starts_a_memory_gofer() {
        let got = translate(&args(&[
            "memory",
            "/mnt",
            "-o",
            "gofer_arg=--memory-size=64M,allow_other",
        ]));
        let want = args(&[
            "--memory",
            "/mnt",
            "--gofer-arg=--memory-size=64M",
            "-o",
            "allow_other",
        ]);
        assert_eq!(got.unwrap(), Helper::Mount(want));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(translate(&args(&["/mnt"])).is_err());
        assert!(translate(&args(&["relative", "/mnt"])).is_err());
        assert!(translate(&args(&["root=/x", "/mnt", "-o", "threads"])).is_err());
        assert!(translate(&args(&["root=/x", "/mnt", "-N", "1"])).is_err());
    }
}
