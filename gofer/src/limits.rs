//! File-descriptor budgets: `RLIMIT_NOFILE` and the per-connection FD cap that fits in it.
//!
//! Every FDID a client holds pins one host FD, so one connection's FDIDs, times
//! `--max-connections`, plus each connection's own FDs and a reserve for the process
//! (accepting, Mount, logging, temporaries of in-flight requests), must fit in the
//! open-file limit. Then no client can take the FDs others need, however greedy.

/// FDs the process keeps for itself: the listening socket, the `/proc` handles, the root,
/// the standard streams, and headroom for accepting and mounting under load.
pub const RESERVE: u64 = 256;

/// FDs a connection uses beyond its FDIDs: its socket, each channel's memfd and FD
/// socket, temporaries of up to five requests in flight, and the directories its walk
/// cache holds.
pub const PER_CONNECTION: u64 = 64 + lisafs_server::WALK_CACHE_CAPACITY as u64;

/// The open-file limit the gofer asks for: the kernel's default `fs.nr_open`, which root
/// may raise its hard limit to.
const WANTED_NOFILE: u64 = 1 << 20;

/// Why the FD budget cannot be met.
#[derive(Debug, thiserror::Error)]
#[error(
    "--max-fds {max_fds} with --max-connections {connections} needs {needed} open files; the \
     limit is {limit} (lower either flag)"
)]
pub struct BudgetError {
    /// `--max-fds`.
    pub max_fds: usize,
    /// `--max-connections`.
    pub connections: usize,
    /// What the two need.
    pub needed: u64,
    /// `RLIMIT_NOFILE`.
    pub limit: u64,
}

/// Raises `RLIMIT_NOFILE` as far as allowed (both soft and hard are set, explicitly) and
/// returns the per-connection FDID cap: `max_fds` if it fits, or by default all that fits.
pub fn plan(max_fds: Option<usize>, connections: usize) -> Result<usize, BudgetError> {
    budget(max_fds, connections, raise_nofile())
}

/// [`plan`] for a backend that holds host FDs of its own besides the FDIDs' (the memory
/// backend: one memfd per regular file): half the open-file limit is set aside for them,
/// and the connections share the other half. Returns the per-connection cap and the FDs
/// set aside, so that the backend can refuse files beyond them (`ENOSPC`) before the
/// gofer runs out of FDs for connections, channels and opens.
pub fn plan_with_files(
    max_fds: Option<usize>,
    connections: usize,
) -> Result<(usize, u64), BudgetError> {
    let limit = raise_nofile();
    let files = limit / 2;
    let cap = budget(max_fds, connections, limit - files)?;
    Ok((cap, files))
}

/// The per-connection cap that fits `connections` in `limit` FDs.
fn budget(max_fds: Option<usize>, connections: usize, limit: u64) -> Result<usize, BudgetError> {
    let connections_u64 = u64::try_from(connections.max(1)).unwrap_or(u64::MAX);
    let fits = limit.saturating_sub(RESERVE) / connections_u64;
    let fits = usize::try_from(fits.saturating_sub(PER_CONNECTION)).unwrap_or(usize::MAX);
    match max_fds {
        None => Ok(fits),
        Some(wanted) if wanted <= fits => Ok(wanted),
        Some(wanted) => Err(BudgetError {
            max_fds: wanted,
            connections,
            needed: needed(wanted, connections_u64),
            limit,
        }),
    }
}

fn needed(max_fds: usize, connections: u64) -> u64 {
    let per = u64::try_from(max_fds).unwrap_or(u64::MAX);
    per.saturating_add(PER_CONNECTION)
        .saturating_mul(connections)
        .saturating_add(RESERVE)
}

/// Sets the soft and hard open-file limits to [`WANTED_NOFILE`] if permitted (root), else
/// the soft limit to the hard one; returns the soft limit in force.
fn raise_nofile() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let wanted = Rlimit {
        current: Some(WANTED_NOFILE),
        maximum: Some(WANTED_NOFILE),
    };
    if setrlimit(Resource::Nofile, wanted).is_err() {
        let hard = getrlimit(Resource::Nofile).maximum;
        let fallback = Rlimit {
            current: hard,
            maximum: hard,
        };
        if let Err(err) = setrlimit(Resource::Nofile, fallback) {
            tracing::warn!("cannot raise the open-file limit: {err}");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // Tests fail by panicking.

    use super::*;

    #[test]
    fn needed_counts_every_connection_and_the_reserve() {
        assert_eq!(needed(100, 2), 2 * (100 + PER_CONNECTION) + RESERVE);
    }

    #[test]
    fn the_budget_divides_what_is_left_after_the_reserve() {
        // 1,000 FDs for 2 connections after the reserve; each keeps 96 for itself.
        assert_eq!(budget(None, 2, 1256).unwrap(), 500 - 96);
        assert_eq!(budget(Some(400), 2, 1256).unwrap(), 400);
        let err = budget(Some(450), 2, 1256).unwrap_err();
        assert_eq!((err.needed, err.limit), (2 * (450 + 96) + 256, 1256));
    }
}
