//! The Landlock layer: filesystem access only beneath the share.
//!
//! Namespaces and the pivot already leave the share as the only tree the gofer can name
//! by path; Landlock makes the kernel refuse access outside it even through an FD or a
//! magic link the gofer still holds (the `/proc/self/fd` handle, or a file a host process
//! moved out of the share), as a layer that does not depend on the gofer's own checks.

use std::os::fd::BorrowedFd;

use landlock::{
    Access, AccessFs, PathBeneath, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetError,
    RulesetStatus, ABI,
};

/// The newest Landlock ABI this code asks for; older kernels enforce what they know.
const ABI_WANTED: ABI = ABI::V6;

/// Restricts the process (every thread created afterwards, and this one) to `root`: all
/// access beneath it, or only reading with `readonly`; nothing elsewhere. Best effort:
/// returns what the kernel enforces. Sets `no_new_privs`.
pub(crate) fn restrict_to(
    root: BorrowedFd<'_>,
    readonly: bool,
) -> Result<RulesetStatus, RulesetError> {
    let handled = AccessFs::from_all(ABI_WANTED);
    let allowed = match readonly {
        true => AccessFs::from_read(ABI_WANTED),
        false => handled,
    };
    let status = Ruleset::default()
        .handle_access(handled)?
        .create()?
        .add_rule(PathBeneath::new(root, allowed))?
        .restrict_self()?;
    Ok(status.ruleset)
}
