//! `lisafs`: a command-line client for a lisafs server, a thin layer over the client
//! library's path API. Paths are relative to the server's mount root.
//!
//! Errors are reported as `lisafs: CMD PATH: MESSAGE` on stderr; the exit status is 1 if
//! any operand failed, 2 for usage errors (from clap), 141 if standard output was closed.

mod args;
mod format;
mod listing;
mod paths;
mod progress;
mod report;
mod transfer;

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use lisafs_client::{Client, ClientOptions, Errno, Error, ErrorKind, FileType};

use crate::args::{Cli, Command, XattrCommand};
use crate::paths::{clean, into_dir};
use crate::report::{on, report, stdout_write, Failure, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match connect(&cli.socket, cli.timeout) {
        Ok(client) => client,
        Err(err) => {
            // Before Mount is answered a lost connection is the gofer refusing us, most
            // often at its --max-connections, which its log names.
            let message = match err.kind() {
                ErrorKind::Transport if !err.is_timeout() => {
                    "the gofer closed the connection before answering Mount (its log says why, \
                     e.g. --max-connections reached)"
                        .to_owned()
                }
                _ => report::message(&err, cli.timeout),
            };
            eprintln!("lisafs: connect {}: {message}", cli.socket.display());
            return ExitCode::FAILURE;
        }
    };
    let failures = run(&client, cli.command);
    report(&failures, cli.timeout)
}

/// Connects and mounts. With a `timeout`, every socket call gets that deadline and no
/// channels are opened: a channel waits on a futex, which no socket deadline bounds.
fn connect(socket: &Path, timeout: Option<Duration>) -> Result<Client, Error> {
    let stream = UnixStream::connect(socket)?;
    let mut options = ClientOptions::default();
    if let Some(timeout) = timeout {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        options.channels = 0;
    }
    Client::from_fd_with(OwnedFd::from(stream), options)
}

/// Runs `command`, continuing past a failed operand as coreutils do, unless nothing
/// more can work (the connection is gone, or nobody reads standard output).
fn run(client: &Client, command: Command) -> Vec<Failure> {
    let mut out = io::stdout().lock();
    let mut failures = Vec::new();
    let mut each = |paths: &[std::path::PathBuf], op: &mut dyn FnMut(&Path) -> Outcome| {
        for path in paths {
            if let Err(failure) = op(path) {
                let stop = failure.is_final();
                failures.push(failure);
                if stop {
                    return;
                }
            }
        }
    };
    match command {
        Command::Ls { long, all, path } => {
            each(&[path], &mut |p| {
                listing::ls(client, &mut out, p, long, all)
            });
        }
        Command::Stat { path } => each(&[path], &mut |p| listing::stat(client, &mut out, p)),
        Command::Cat { paths } => each(&paths, &mut |p| transfer::cat(client, &mut out, p)),
        Command::Put { local, remote } => {
            each(&[local], &mut |local| transfer::put(client, local, &remote));
        }
        Command::Get { remote, local } => {
            each(&[remote], &mut |remote| {
                transfer::get(client, remote, &local)
            });
        }
        Command::Mkdir { parents, paths } => each(&paths, &mut |p| {
            let cleaned = on(clean(client, p), "mkdir", p)?;
            match parents {
                true => on(client.create_dir_all(&cleaned, 0o755), "mkdir", p),
                false => on(client.create_dir(&cleaned, 0o755), "mkdir", p),
            }
        }),
        Command::Rm { recursive, paths } => each(&paths, &mut |p| rm(client, p, recursive)),
        Command::Mv { from, to } => each(&[from], &mut |from| mv(client, from, &to)),
        Command::Ln {
            symbolic,
            target,
            link,
        } => each(&[link], &mut |link| {
            let cleaned = on(clean(client, link), "ln", link)?;
            match symbolic {
                // A symlink's text is stored as given: it is resolved when followed.
                true => on(client.symlink(&target, &cleaned), "ln", link),
                false => {
                    let original = on(clean(client, &target), "ln", &target)?;
                    on(client.hard_link(&original, &cleaned), "ln", link)
                }
            }
        }),
        Command::Readlink { path } => each(&[path], &mut |p| {
            let cleaned = on(clean(client, p), "readlink", p)?;
            let target = on(client.read_link(&cleaned), "readlink", p)?;
            listing::line(&mut out, &target)
        }),
        Command::Tree { path } => each(&[path], &mut |p| listing::tree(client, &mut out, p)),
        Command::Xattr(op) => {
            let path = match &op {
                XattrCommand::Get { path, .. }
                | XattrCommand::Set { path, .. }
                | XattrCommand::List { path }
                | XattrCommand::Rm { path, .. } => path.clone(),
            };
            each(&[path], &mut |p| xattr(client, &mut out, p, &op));
        }
        Command::Df => each(&["/".into()], &mut |p| {
            let fs = on(client.statfs(p), "df", p)?;
            stdout_write(out.write_all(format::df_text(&fs).as_bytes()))
        }),
    }
    if !failures.iter().any(Failure::is_final) {
        if let Err(failure) = stdout_write(out.flush()) {
            failures.push(failure);
        }
    }
    failures
}

/// `mv FROM TO`: into TO if it is a directory.
fn mv(client: &Client, from: &Path, to: &Path) -> Outcome {
    let source = on(clean(client, from), "mv", from)?;
    let cleaned = on(clean(client, to), "mv", to)?;
    let dest = on(into_dir(client, &source, &cleaned, to), "mv", to)?;
    on(client.rename(&source, &dest), "mv", from)
}

fn rm(client: &Client, path: &Path, recursive: bool) -> Outcome {
    let cleaned = on(clean(client, path), "rm", path)?;
    let st = on(client.symlink_metadata(&cleaned), "rm", path)?;
    if !FileType::from_mode(st.mode).is_dir() {
        return on(client.remove_file(&cleaned), "rm", path);
    }
    if !recursive {
        return on(Err::<(), _>(Errno::EISDIR), "rm", path);
    }
    on(client.remove_dir_all(&cleaned), "rm", path)
}

fn xattr(client: &Client, out: &mut impl Write, path: &Path, op: &XattrCommand) -> Outcome {
    let cmd = match op {
        XattrCommand::Get { .. } => "xattr get",
        XattrCommand::Set { .. } => "xattr set",
        XattrCommand::List { .. } => "xattr list",
        XattrCommand::Rm { .. } => "xattr rm",
    };
    let cleaned = on(clean(client, path), cmd, path)?;
    match op {
        XattrCommand::Get { name, .. } => {
            let value = on(client.get_xattr(&cleaned, name), cmd, path)?;
            listing::line(out, &value)
        }
        XattrCommand::Set { name, value, .. } => {
            on(client.set_xattr(&cleaned, name, value, 0), cmd, path)
        }
        XattrCommand::List { .. } => {
            for name in on(client.list_xattr(&cleaned), cmd, path)? {
                listing::line(out, &name)?;
            }
            Ok(())
        }
        XattrCommand::Rm { name, .. } => on(client.remove_xattr(&cleaned, name), cmd, path),
    }
}
