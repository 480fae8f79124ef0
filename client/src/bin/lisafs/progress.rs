//! The progress bar of a large `put` or `get`: drawn on stderr only when stderr is a
//! terminal (never into a log or a pipe), and only with the `progress` feature.

use std::io::IsTerminal;

/// Transfers smaller than this finish before a bar would be worth reading.
const LARGE: u64 = 8 << 20;

/// A transfer's progress display; does nothing unless it decided to draw.
#[derive(Debug)]
pub(crate) struct Progress {
    #[cfg(feature = "progress")]
    bar: Option<indicatif::ProgressBar>,
    /// Bytes of a transfer of unknown size, until it is large enough for a bar.
    #[cfg(feature = "progress")]
    unsized_done: Option<u64>,
    label: String,
}

impl Progress {
    /// A display for copying `total` bytes (`None`: unknown, e.g. standard input),
    /// labelled `label` (e.g. "put notes.txt").
    pub(crate) fn new(label: String, total: Option<u64>) -> Self {
        let shown = std::io::stderr().is_terminal();
        #[cfg(feature = "progress")]
        {
            let bar = match total {
                Some(total) if shown && total >= LARGE => Some(sized_bar(&label, total)),
                _ => None,
            };
            let unsized_done = (shown && total.is_none()).then_some(0);
            Self {
                bar,
                unsized_done,
                label,
            }
        }
        #[cfg(not(feature = "progress"))]
        {
            let _ = (shown, total, LARGE);
            Self { label }
        }
    }

    /// Records `n` more bytes copied.
    pub(crate) fn advance(&mut self, n: usize) {
        #[cfg(feature = "progress")]
        {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            if let Some(bar) = &self.bar {
                bar.inc(n);
            } else if let Some(done) = &mut self.unsized_done {
                *done = done.saturating_add(n);
                if *done >= LARGE {
                    let bar = unsized_bar(&self.label);
                    bar.inc(*done);
                    self.bar = Some(bar);
                    self.unsized_done = None;
                }
            }
        }
        #[cfg(not(feature = "progress"))]
        let _ = (n, &self.label);
    }
}

impl Drop for Progress {
    /// Success or failure, the bar goes: the outcome is reported on its own line.
    fn drop(&mut self) {
        #[cfg(feature = "progress")]
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(feature = "progress")]
fn sized_bar(label: &str, total: u64) -> indicatif::ProgressBar {
    styled(
        indicatif::ProgressBar::new(total),
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        label,
    )
}

#[cfg(feature = "progress")]
fn unsized_bar(label: &str) -> indicatif::ProgressBar {
    styled(
        indicatif::ProgressBar::new_spinner(),
        "{msg} {spinner} {bytes} {bytes_per_sec}",
        label,
    )
}

#[cfg(feature = "progress")]
fn styled(bar: indicatif::ProgressBar, template: &str, label: &str) -> indicatif::ProgressBar {
    // The templates are constants; a bad one would only lose the styling.
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(label.to_owned());
    bar
}
