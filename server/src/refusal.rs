//! Refusals that look like attacks, logged at warn without letting a client flood the log.
//!
//! A well-behaved client (gVisor's sentry, `lisafs`) never sends a name with a "/" or
//! "..", never walks out of the share, and never asks for what policy refuses often enough
//! to matter; a malicious one may do nothing else. So each such refusal is worth a warning,
//! but at most [`BURST`] per [`WINDOW`] per [`Refusal`] kind: the rest are only counted,
//! and the next warning that gets through says how many were suppressed. Every refusal is
//! still answered with its errno, and logged at debug like any failed request.
//!
//! [`refused!`](crate::refused) is the way to log one.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The kinds of refusal, each limited on its own so that one flood does not hide another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A name that is not one component ("..", "/", NUL), or a walk that would leave the
    /// share (through a symlink, a mount, or a file moved out).
    Escape,
    /// A special file (FIFO, socket, device) or a set-ID bit that policy refuses.
    SpecialFile,
    /// An extended attribute outside `--xattr`.
    Xattr,
    /// A walk into a pseudo-filesystem (procfs, sysfs, ...).
    PseudoFs,
}

impl Refusal {
    /// The kind's name in log lines.
    pub fn name(self) -> &'static str {
        match self {
            Self::Escape => "escape",
            Self::SpecialFile => "special-file",
            Self::Xattr => "xattr",
            Self::PseudoFs => "pseudo-fs",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Warnings of one kind allowed per [`WINDOW`].
pub const BURST: u32 = 10;

/// The window [`BURST`] counts over.
pub const WINDOW: Duration = Duration::from_secs(10);

const KINDS: usize = 4;

/// Per kind: when the current window began, warnings in it, and refusals suppressed since
/// the last warning.
struct Window {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

static WINDOWS: Mutex<[Window; KINDS]> = Mutex::new(
    [const {
        Window {
            start: None,
            logged: 0,
            suppressed: 0,
        }
    }; KINDS],
);

/// Whether a refusal of `kind` may be logged now. `Some(n)`: yes, and `n` were suppressed
/// before it; `None`: no (it is counted).
pub fn admit(kind: Refusal) -> Option<u64> {
    admit_at(kind, Instant::now(), &mut WINDOWS.lock())
}

fn admit_at(kind: Refusal, now: Instant, windows: &mut [Window; KINDS]) -> Option<u64> {
    let window = &mut windows[kind.index()];
    if window
        .start
        .is_none_or(|start| now.duration_since(start) >= WINDOW)
    {
        window.start = Some(now);
        window.logged = 0;
    }
    if window.logged >= BURST {
        window.suppressed += 1;
        return None;
    }
    window.logged += 1;
    Some(std::mem::take(&mut window.suppressed))
}

/// Logs a refusal at warn, rate-limited per kind ([`admit`]): `refused!(Refusal::Xattr,
/// name = %name, "refused an xattr")`. The line carries `refusal` (the kind) and
/// `suppressed` (how many of that kind were not logged since the last line).
#[macro_export]
macro_rules! refused {
    ($kind:expr, $($rest:tt)+) => {
        if let Some(suppressed) = $crate::refusal::admit($kind) {
            ::tracing::warn!(refusal = $kind.name(), suppressed, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> [Window; KINDS] {
        std::array::from_fn(|_| Window {
            start: None,
            logged: 0,
            suppressed: 0,
        })
    }

    #[test]
    fn a_burst_passes_then_the_rest_is_counted_until_the_window_ends() {
        let mut windows = fresh();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(admit_at(Refusal::Escape, t0, &mut windows), Some(0));
        }
        for _ in 0..5 {
            assert_eq!(admit_at(Refusal::Escape, t0, &mut windows), None);
        }
        // Another kind has its own budget.
        assert_eq!(admit_at(Refusal::Xattr, t0, &mut windows), Some(0));
        // The next window's first line reports what was suppressed.
        let later = t0 + WINDOW;
        assert_eq!(admit_at(Refusal::Escape, later, &mut windows), Some(5));
        assert_eq!(admit_at(Refusal::Escape, later, &mut windows), Some(0));
    }
}
