//! `lisafs`: a command-line client for a lisafs server, a thin layer over the client
//! library's path API. Paths are relative to the server's mount root.
//!
//! Errors are reported as `lisafs: CMD PATH: MESSAGE` on stderr; the exit status is 1 if
//! any operand failed, 2 for usage errors (from clap).

mod format;

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lisafs_client::{Client, Errno, Error, FileType, O_RDONLY};

/// Talk to a lisafs server (e.g. a gofer) over its Unix socket.
#[derive(Debug, Parser)]
#[command(name = "lisafs", version)]
struct Cli {
    /// The server's Unix socket.
    #[arg(long, short = 'S', value_name = "PATH")]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List a directory (default: the root).
    Ls {
        /// Long format: mode, links, owner, group, size, mtime.
        #[arg(short = 'l')]
        long: bool,
        #[arg(default_value = "/")]
        path: PathBuf,
    },
    /// Show a file's attributes (a symlink itself, not its target).
    Stat { path: PathBuf },
    /// Print files to standard output.
    Cat {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Copy a local file to the server.
    Put { local: PathBuf, remote: PathBuf },
    /// Copy a file from the server ("-" as LOCAL: standard output).
    Get { remote: PathBuf, local: PathBuf },
    /// Create directories.
    Mkdir {
        /// Create missing parents; no error if it exists.
        #[arg(short = 'p')]
        parents: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Remove files (and, with -r, directories and their contents).
    Rm {
        #[arg(short = 'r')]
        recursive: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Rename a file.
    Mv { from: PathBuf, to: PathBuf },
    /// Make a hard link (or, with -s, a symlink) LINK to TARGET.
    Ln {
        #[arg(short = 's')]
        symbolic: bool,
        target: PathBuf,
        link: PathBuf,
    },
    /// Print a symlink's target.
    Readlink { path: PathBuf },
    /// Show a directory tree (symlinks are not descended).
    Tree {
        #[arg(default_value = "/")]
        path: PathBuf,
    },
    /// Extended attributes.
    #[command(subcommand)]
    Xattr(XattrCommand),
    /// Show filesystem usage of the mount.
    Df,
}

#[derive(Debug, Subcommand)]
enum XattrCommand {
    /// Print one attribute's value.
    Get { path: PathBuf, name: String },
    /// Set an attribute.
    Set {
        path: PathBuf,
        name: String,
        value: String,
    },
    /// List attribute names.
    List { path: PathBuf },
    /// Remove an attribute.
    Rm { path: PathBuf, name: String },
}

/// One failed operand: what was being done, to what, and why.
struct Failure {
    what: String,
    err: Error,
}

type Outcome = Result<(), Failure>;

/// Attaches "CMD PATH" to an error.
fn on<T>(result: Result<T, impl Into<Error>>, cmd: &str, path: &Path) -> Result<T, Failure> {
    result.map_err(|err| Failure {
        what: format!("{cmd} {}", path.display()),
        err: err.into(),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match Client::connect(&cli.socket) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("lisafs: connect {}: {err}", cli.socket.display());
            return ExitCode::FAILURE;
        }
    };
    let failures: Vec<Failure> = run(&client, cli.command);
    for failure in &failures {
        eprintln!("lisafs: {}: {}", failure.what, failure.err);
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs `command`, continuing past a failed operand as coreutils do.
fn run(client: &Client, command: Command) -> Vec<Failure> {
    let mut out = io::stdout().lock();
    let results: Vec<Outcome> = match command {
        Command::Ls { long, path } => vec![ls(client, &mut out, &path, long)],
        Command::Stat { path } => vec![stat(client, &mut out, &path)],
        Command::Cat { paths } => paths.iter().map(|p| cat(client, &mut out, p)).collect(),
        Command::Put { local, remote } => vec![put(client, &local, &remote)],
        Command::Get { remote, local } => vec![get(client, &remote, &local)],
        Command::Mkdir { parents, paths } => paths
            .iter()
            .map(|p| match parents {
                true => on(client.create_dir_all(p, 0o755), "mkdir", p),
                false => on(client.create_dir(p, 0o755), "mkdir", p),
            })
            .collect(),
        Command::Rm { recursive, paths } => {
            paths.iter().map(|p| rm(client, p, recursive)).collect()
        }
        Command::Mv { from, to } => vec![on(client.rename(&from, &to), "mv", &from)],
        Command::Ln {
            symbolic,
            target,
            link,
        } => vec![match symbolic {
            true => on(client.symlink(&target, &link), "ln", &link),
            false => on(client.hard_link(&target, &link), "ln", &link),
        }],
        Command::Readlink { path } => vec![on(client.read_link(&path), "readlink", &path)
            .and_then(|target| line(&mut out, &target, &path))],
        Command::Tree { path } => vec![tree(client, &mut out, &path)],
        Command::Xattr(op) => vec![xattr(client, &mut out, op)],
        Command::Df => vec![on(client.statfs("/"), "df", Path::new("/"))
            .and_then(|fs| text(&mut out, &format::df_text(&fs), Path::new("/")))],
    };
    let flushed = on(out.flush(), "write", Path::new("stdout"));
    results
        .into_iter()
        .chain([flushed])
        .filter_map(Result::err)
        .collect()
}

fn text(out: &mut impl Write, text: &str, path: &Path) -> Outcome {
    on(out.write_all(text.as_bytes()), "write", path)
}

fn line(out: &mut impl Write, bytes: &[u8], path: &Path) -> Outcome {
    on(
        out.write_all(bytes).and_then(|()| out.write_all(b"\n")),
        "write",
        path,
    )
}

fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn child(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

fn ls(client: &Client, out: &mut impl Write, path: &Path, long: bool) -> Outcome {
    let stat = on(client.metadata(path), "ls", path)?;
    let mut entries = Vec::new();
    if FileType::from_mode(stat.mode).is_dir() {
        entries = on(client.read_dir(path), "ls", path)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
    }
    if entries.is_empty() && !FileType::from_mode(stat.mode).is_dir() {
        let name = path.as_os_str().as_bytes().to_vec();
        let st = on(client.symlink_metadata(path), "ls", path)?;
        return ls_line(client, out, path, &name, &st, long);
    }
    for entry in &entries {
        let full = child(path, &entry.name);
        if long {
            let st = on(client.symlink_metadata(&full), "ls", &full)?;
            ls_line(client, out, &full, &entry.name, &st, true)?;
        } else {
            line(out, &entry.name, &full)?;
        }
    }
    Ok(())
}

fn ls_line(
    client: &Client,
    out: &mut impl Write,
    full: &Path,
    name: &[u8],
    stat: &lisafs_client::Statx,
    long: bool,
) -> Outcome {
    if !long {
        return line(out, name, full);
    }
    let target = match FileType::from_mode(stat.mode) {
        FileType::Symlink => Some(display(&on(client.read_link(full), "ls", full)?)),
        _ => None,
    };
    let text = format::long_line(stat, &display(name), target.as_deref());
    line(out, text.as_bytes(), full)
}

fn stat(client: &Client, out: &mut impl Write, path: &Path) -> Outcome {
    let st = on(client.symlink_metadata(path), "stat", path)?;
    let target = match FileType::from_mode(st.mode) {
        FileType::Symlink => Some(display(&on(client.read_link(path), "stat", path)?)),
        _ => None,
    };
    let name = path.display().to_string();
    text(out, &format::stat_text(&st, &name, target.as_deref()), path)
}

/// Streams `remote` into `sink` one read-sized chunk at a time.
fn copy_out(client: &Client, remote: &Path, sink: &mut impl Write, cmd: &str) -> Outcome {
    let mut file = on(client.open(remote, O_RDONLY), cmd, remote)?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = on(file.read(&mut buf), cmd, remote)?;
        if n == 0 {
            return Ok(());
        }
        on(sink.write_all(&buf[..n]), "write", Path::new("output"))?;
    }
}

fn cat(client: &Client, out: &mut impl Write, path: &Path) -> Outcome {
    copy_out(client, path, out, "cat")
}

fn get(client: &Client, remote: &Path, local: &Path) -> Outcome {
    if local == Path::new("-") {
        return copy_out(client, remote, &mut io::stdout().lock(), "get");
    }
    let mut file = on(fs::File::create(local), "get", local)?;
    copy_out(client, remote, &mut file, "get")
}

fn put(client: &Client, local: &Path, remote: &Path) -> Outcome {
    let mut source = on(fs::File::open(local), "put", local)?;
    let perms = on(source.metadata(), "put", local)?.permissions().mode() & 0o7777;
    let mode = u16::try_from(perms).unwrap_or(0o644);
    let mut dest = on(client.create(remote, mode), "put", remote)?;
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = on(source.read(&mut buf), "put", local)?;
        if n == 0 {
            return Ok(());
        }
        on(dest.write_all(&buf[..n]), "put", remote)?;
    }
}

fn rm(client: &Client, path: &Path, recursive: bool) -> Outcome {
    let st = on(client.symlink_metadata(path), "rm", path)?;
    if !FileType::from_mode(st.mode).is_dir() {
        return on(client.remove_file(path), "rm", path);
    }
    if !recursive {
        return on(Err::<(), _>(Errno::EISDIR), "rm", path);
    }
    on(client.remove_dir_all(path), "rm", path)
}

fn tree(client: &Client, out: &mut impl Write, path: &Path) -> Outcome {
    line(out, path.as_os_str().as_bytes(), path)?;
    let (mut dirs, mut files) = (0, 0);
    tree_below(client, out, path, "", &mut dirs, &mut files)?;
    let summary = format!("\n{dirs} directories, {files} files\n");
    text(out, &summary, path)
}

fn tree_below(
    client: &Client,
    out: &mut impl Write,
    dir: &Path,
    indent: &str,
    dirs: &mut usize,
    files: &mut usize,
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
        line(out, shown.as_bytes(), &full)?;
        if entry.file_type.is_dir() {
            *dirs += 1;
            let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
            tree_below(client, out, &full, &deeper, dirs, files)?;
        } else {
            *files += 1;
        }
    }
    Ok(())
}

fn xattr(client: &Client, out: &mut impl Write, op: XattrCommand) -> Outcome {
    match op {
        XattrCommand::Get { path, name } => {
            let value = on(client.get_xattr(&path, &name), "xattr get", &path)?;
            line(out, &value, &path)
        }
        XattrCommand::Set { path, name, value } => on(
            client.set_xattr(&path, &name, &value, 0),
            "xattr set",
            &path,
        ),
        XattrCommand::List { path } => {
            for name in on(client.list_xattr(&path), "xattr list", &path)? {
                line(out, &name, &path)?;
            }
            Ok(())
        }
        XattrCommand::Rm { path, name } => on(client.remove_xattr(&path, &name), "xattr rm", &path),
    }
}
