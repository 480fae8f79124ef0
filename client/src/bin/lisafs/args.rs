//! The command line: every option, subcommand and positional, with the text `--help`
//! shows for it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Talk to a lisafs server (e.g. a gofer) over its Unix socket.
///
/// Remote paths are relative to the server's root: "/", "" and "." name it, "." and ".."
/// components work as in a shell, and ".." never climbs above the root (as in a chroot).
/// Errors are one line on stderr (`lisafs: CMD PATH: MESSAGE`); the exit status is 1 if
/// any operand failed, 2 for a usage error, and 141 when the reader of standard output
/// went away (as for a program killed by SIGPIPE).
#[derive(Debug, Parser)]
#[command(name = "lisafs", version)]
pub(crate) struct Cli {
    /// The server's Unix socket.
    #[arg(long, short = 'S', value_name = "PATH", env = "LISAFS_SOCKET")]
    pub(crate) socket: PathBuf,
    /// Give up on a call the server has not answered within SECS seconds (fractions
    /// allowed) and exit with an error; by default a call waits as long as it takes. With
    /// a timeout every call goes over the socket (shared-memory channels have no
    /// deadline).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub(crate) timeout: Option<Duration>,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// A `--timeout` value: a positive, finite number of seconds.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    // A zero SO_RCVTIMEO would mean "no timeout", the opposite of what was asked.
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("{text:?} is not a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|err| err.to_string())
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List a directory (default: the root); names starting with "." only with -a.
    Ls {
        /// Long format: mode, links, owner, group, size, mtime.
        #[arg(short = 'l')]
        long: bool,
        /// Also list names starting with ".", and "." and ".." themselves.
        #[arg(short = 'a')]
        all: bool,
        /// The directory (or file) to list.
        #[arg(default_value = "/")]
        path: PathBuf,
    },
    /// Show a file's attributes (a symlink itself, not its target).
    Stat {
        /// The remote file.
        path: PathBuf,
    },
    /// Print files to standard output.
    Cat {
        /// The remote files, printed in order.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Copy a local file to the server, keeping its permission bits.
    ///
    /// The data goes to a temporary file next to REMOTE that is renamed over it only once
    /// it is complete, so a failed copy leaves REMOTE as it was.
    Put {
        /// The local regular file, or "-" for standard input (created with mode 0644).
        local: PathBuf,
        /// The remote destination; an existing directory receives LOCAL's file name.
        remote: PathBuf,
    },
    /// Copy a file from the server, keeping its permission bits (rwx only).
    ///
    /// The data goes to a temporary file next to LOCAL that is renamed over it only once
    /// it is complete, so a failed copy leaves LOCAL as it was.
    Get {
        /// The remote regular file.
        remote: PathBuf,
        /// The local destination; an existing directory receives REMOTE's file name, "-"
        /// is standard output.
        local: PathBuf,
    },
    /// Create directories (mode 0755).
    Mkdir {
        /// Create missing parents; no error if the directory exists.
        #[arg(short = 'p')]
        parents: bool,
        /// The directories to create.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Remove files (and, with -r, directories and their contents).
    Rm {
        /// Remove directories and everything below them.
        #[arg(short = 'r')]
        recursive: bool,
        /// The files to remove (a symlink itself, not its target).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Rename a file, replacing TO if it exists (as rename(2)).
    Mv {
        /// The file to rename.
        from: PathBuf,
        /// Its new name; an existing directory receives FROM under its own name.
        to: PathBuf,
    },
    /// Make a hard link (or, with -s, a symlink) LINK to TARGET.
    Ln {
        /// Make a symlink holding TARGET as given, instead of a hard link.
        #[arg(short = 's')]
        symbolic: bool,
        /// The existing file (for -s: the link's text, not checked).
        target: PathBuf,
        /// The new name.
        link: PathBuf,
    },
    /// Print a symlink's target.
    Readlink {
        /// The remote symlink.
        path: PathBuf,
    },
    /// Show a directory tree (symlinks are not descended).
    Tree {
        /// The directory at the top.
        #[arg(default_value = "/")]
        path: PathBuf,
    },
    /// Extended attributes.
    #[command(subcommand)]
    Xattr(XattrCommand),
    /// Show filesystem usage of the mount.
    Df,
}

/// The `xattr` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum XattrCommand {
    /// Print one attribute's value.
    Get {
        /// The remote file (symlinks followed).
        path: PathBuf,
        /// The attribute, with its namespace (e.g. user.comment).
        name: String,
    },
    /// Set an attribute.
    Set {
        /// The remote file (symlinks followed).
        path: PathBuf,
        /// The attribute, with its namespace (e.g. user.comment).
        name: String,
        /// The new value.
        value: String,
    },
    /// List attribute names.
    List {
        /// The remote file (symlinks followed).
        path: PathBuf,
    },
    /// Remove an attribute.
    Rm {
        /// The remote file (symlinks followed).
        path: PathBuf,
        /// The attribute, with its namespace (e.g. user.comment).
        name: String,
    },
}
