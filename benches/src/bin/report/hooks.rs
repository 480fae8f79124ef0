//! What the hook layer and the policy built on it cost: FStat, WalkStat of three
//! components and OpenAt + PRead + Close over a channel, against in-process servers of the
//! same tree: the host backend alone; wrapped in `Hooked` with a hook that does nothing;
//! with a hook that asks every operation for its path (`Op::path`, which the host backend
//! answers with three system calls); with the gofer's `[[mount.rule]]` hook (none, and a
//! realistic 100, hides included, that match nothing here, so every request pays for the
//! whole list); and with the audit log on as well. The opened file is donated in every row
//! (no rule restricts it), so the PRead is the client's own. In process, so the gofer's
//! confinement is not part of it; the other sections measure that.

use std::fmt::Write as _;
use std::path::Path;

use lisafs_benches::measure::{run, Budget, Summary};
use lisafs_benches::pingpong::BoxError;
use lisafs_client::{Client, ClientOptions, Errno};
use lisafs_gofer::audit::{Audit, AuditOps, AuditOptions, AuditTarget};
use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_gofer::rules::{Action, Rule, Rules};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_server::hooks::{Hook, Hooked, NoHook, Op, OpClass};
use lisafs_server::{Backend, Server, ServerOptions};
use rustix::fs::{Mode, OFlags};

use crate::ops::{Op as Measured, Remote};
use crate::{latency, progress, rate};

/// Asks for the path of every operation, as a path rule for every class would.
struct AsksPath;

impl Hook for AsksPath {
    fn before(&self, op: &Op<'_>) -> Result<(), Errno> {
        match op.path() {
            Some(path) if path.starts_with("denied") => Err(Errno::EACCES),
            _ => Ok(()),
        }
    }
}

/// The operations measured, in the table's order.
const OPS: [Measured; 3] = [
    Measured::FStat,
    Measured::WalkStat3,
    Measured::OpenReadClose,
];

/// One server configuration and its measurements, in the order of [`OPS`].
#[derive(Debug)]
pub(crate) struct Row {
    setup: &'static str,
    summaries: Vec<Summary>,
}

fn connect<B: Backend>(backend: B, options: ClientOptions) -> Result<Client, BoxError> {
    let server = Server::new(backend, ServerOptions::default());
    let (client_end, server_end) = FramedSocket::pair()?;
    // The thread ends when the client hangs up.
    server.spawn(server_end)?;
    Ok(Client::from_fd_with(client_end.into_inner(), options)?)
}

/// A hundred rules of the kinds a config file has (hide, readonly, per-class deny, deep
/// globs), none of which matches a file of the benchmark's tree.
fn hundred_rules() -> Vec<Rule> {
    let rule = |path: String, ops: &[OpClass], action| Rule {
        path,
        ops: ops.to_vec(),
        action,
    };
    let changes = [
        OpClass::Write,
        OpClass::Remove,
        OpClass::Rename,
        OpClass::SetAttr,
    ];
    (0..20)
        .flat_map(|i| {
            [
                rule(format!("secrets{i}/**"), &[], Action::Hide),
                rule(format!("ro{i}/**"), &[], Action::ReadOnly),
                rule(format!("**/*.{i}.log"), &changes, Action::Deny),
                rule(format!("private{i}/*.key"), &[], Action::Deny),
                rule(
                    format!("data/**/cache{i}/*"),
                    &[OpClass::Read],
                    Action::Deny,
                ),
            ]
        })
        .collect()
}

/// The mount root's FD a `Rules` hook keeps, to tell directories from files.
fn root_fd(root: &Path) -> Result<std::os::fd::OwnedFd, BoxError> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(root, flags, Mode::empty())?)
}

/// An audit log of every operation (not only mutations, which this benchmark has none
/// of), to a file in `scratch`.
fn audit_all(scratch: &Path) -> Result<Audit, BoxError> {
    let mut options = AuditOptions::new(AuditTarget::Path(scratch.join("audit.jsonl")));
    options.ops = AuditOps::All;
    let audit = Audit::open(options)?;
    audit.start()?;
    Ok(audit)
}

/// Measures each setup on `root`, which `populate` filled; the audit log goes to
/// `scratch`.
pub(crate) fn measure(
    root: &Path,
    scratch: &Path,
    options: ClientOptions,
    budget: &Budget,
) -> Result<Vec<Row>, BoxError> {
    let backend = || HostBackend::new(root, HostOptions::default());
    let rules = |list| -> Result<Rules, BoxError> { Ok(Rules::new(list, Some(root_fd(root)?))) };
    let audit = audit_all(scratch)?;
    let setups = [
        ("no hooks", connect(backend()?, options)?),
        (
            "no-op hook",
            connect(Hooked::new(backend()?, NoHook), options)?,
        ),
        (
            "hook asks every path",
            connect(Hooked::new(backend()?, AsksPath), options)?,
        ),
        (
            "rules: none",
            connect(Hooked::new(backend()?, rules(Vec::new())?), options)?,
        ),
        (
            "rules: 100",
            connect(Hooked::new(backend()?, rules(hundred_rules())?), options)?,
        ),
        (
            "rules: 100, audit log of every op",
            connect(
                Hooked::new(backend()?, (rules(hundred_rules())?, audit.hook("bench"))),
                options,
            )?,
        ),
    ];
    let mut rows = Vec::new();
    for (i, (setup, client)) in setups.iter().enumerate() {
        progress(&format!("hooks: {setup}"));
        let remote = Remote::open(client, &format!("hooks{i}"))?;
        let summaries = OPS
            .iter()
            .map(|&op| {
                let mut body = remote.body(op);
                run(budget, &mut *body)
            })
            .collect();
        rows.push(Row { setup, summaries });
    }
    Ok(rows)
}

/// Appends the section's table to `out`: each operation's rate and median, and its cost
/// over the backend alone.
pub(crate) fn render(out: &mut String, rows: &[Row]) {
    let _ = writeln!(out, "\n### Hooks and policy: channel, in process\n");
    let _ = write!(out, "| setup |");
    for op in OPS {
        let _ = write!(out, " {} ops/s | median | vs none |", op.name());
    }
    let _ = writeln!(out, "\n|---|{}", "---:|".repeat(3 * OPS.len()));
    let Some(base) = rows.first() else {
        return;
    };
    for row in rows {
        let _ = write!(out, "| {} |", row.setup);
        for (summary, reference) in row.summaries.iter().zip(&base.summaries) {
            let ratio = summary.ops_per_sec() / reference.ops_per_sec();
            let _ = write!(
                out,
                " {} | {} | {:.2} |",
                rate(summary.ops_per_sec()),
                latency(summary.median),
                ratio
            );
        }
        let _ = writeln!(out);
    }
}
