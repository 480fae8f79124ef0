//! Text formats of the CLI: `ls -l` lines, `stat` output, times, `df`.

use std::fmt::Write as _;

use lisafs_client::wire::{StatFS, Statx, StatxTimestamp};
use lisafs_client::FileType;

/// `ls -l`-style mode text, e.g. `drwxr-xr-x`.
pub(crate) fn mode_string(mode: u16) -> String {
    let mut out = String::from(FileType::from_mode(mode).ls_char());
    // (read bit, write bit, execute bit, special bit, char if special+exec, if special only)
    let triads = [
        (0o400, 0o200, 0o100, 0o4000, 's', 'S'),
        (0o040, 0o020, 0o010, 0o2000, 's', 'S'),
        (0o004, 0o002, 0o001, 0o1000, 't', 'T'),
    ];
    for (r, w, x, special, with_x, without_x) in triads {
        out.push(if mode & r != 0 { 'r' } else { '-' });
        out.push(if mode & w != 0 { 'w' } else { '-' });
        out.push(match (mode & special != 0, mode & x != 0) {
            (true, true) => with_x,
            (true, false) => without_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    out
}

/// The `stat(1)` name of a file type.
fn type_name(mode: u16) -> &'static str {
    match FileType::from_mode(mode) {
        FileType::Regular => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Socket => "socket",
        FileType::Fifo => "fifo",
        FileType::CharDevice => "character special file",
        FileType::BlockDevice => "block special file",
        FileType::Unknown => "unknown",
    }
}

/// A timestamp as `YYYY-MM-DD HH:MM:SS.nnnnnnnnn +0000` (UTC: the CLI has no time zone
/// database, and a server's clock is not ours anyway).
pub(crate) fn time(ts: &StatxTimestamp) -> String {
    let days = ts.sec.div_euclid(86_400);
    let secs = ts.sec.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:09} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ts.nsec
    )
}

/// A short `YYYY-MM-DD HH:MM` for `ls -l`.
pub(crate) fn short_time(ts: &StatxTimestamp) -> String {
    time(ts).get(..16).unwrap_or_default().to_owned()
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01, by the
/// standard era arithmetic (400-year eras of 146,097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(0),
        u32::try_from(day).unwrap_or(0),
    )
}

/// One `ls -l` line.
pub(crate) fn long_line(stat: &Statx, name: &str, link_target: Option<&str>) -> String {
    let mut line = format!(
        "{} {:>3} {:>5} {:>5} {:>10} {} {name}",
        mode_string(stat.mode),
        stat.nlink,
        stat.uid,
        stat.gid,
        stat.size,
        short_time(&stat.mtime),
    );
    if let Some(target) = link_target {
        let _ = write!(line, " -> {target}");
    }
    line
}

/// `stat(1)`-style output.
pub(crate) fn stat_text(stat: &Statx, name: &str, link_target: Option<&str>) -> String {
    let mut out = String::new();
    let shown = match link_target {
        Some(target) => format!("{name} -> {target}"),
        None => name.to_owned(),
    };
    let _ = writeln!(out, "  File: {shown}");
    let _ = writeln!(
        out,
        "  Size: {:<15} Blocks: {:<10} IO Block: {:<6} {}",
        stat.size,
        stat.blocks,
        stat.blksize,
        type_name(stat.mode)
    );
    let _ = writeln!(
        out,
        "Device: {},{:<13} Inode: {:<11} Links: {}",
        stat.dev_major, stat.dev_minor, stat.ino, stat.nlink
    );
    let _ = writeln!(
        out,
        "Access: ({:04o}/{})  Uid: {:>5}   Gid: {:>5}",
        stat.mode & 0o7777,
        mode_string(stat.mode),
        stat.uid,
        stat.gid
    );
    for (label, ts) in [
        ("Access", &stat.atime),
        ("Modify", &stat.mtime),
        ("Change", &stat.ctime),
        (" Birth", &stat.btime),
    ] {
        let _ = writeln!(out, "{label}: {}", time(ts));
    }
    out
}

/// `df`-style output in 1K blocks, plus inode counts.
pub(crate) fn df_text(fs: &StatFS) -> String {
    let bsize = u128::try_from(fs.block_size).unwrap_or(0);
    let kib = |blocks: u64| u128::from(blocks) * bsize / 1024;
    let total = kib(fs.blocks);
    let used = kib(fs.blocks.saturating_sub(fs.blocks_free));
    let avail = kib(fs.blocks_available);
    let percent = if used + avail == 0 {
        0
    } else {
        (used * 100).div_ceil(used + avail)
    };
    format!(
        "{:<10} {:>12} {:>12} {:>12} {:>4} {:>10} {:>10}\n{:<10} {total:>12} {used:>12} {avail:>12} {:>3}% {:>10} {:>10}\n",
        "Filesystem",
        "1K-blocks",
        "Used",
        "Available",
        "Use%",
        "Inodes",
        "IFree",
        "lisafs",
        percent,
        fs.files,
        fs.files_free,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_render_like_ls() {
        assert_eq!(mode_string(0o040_755), "drwxr-xr-x");
        assert_eq!(mode_string(0o100_644), "-rw-r--r--");
        assert_eq!(mode_string(0o104_755), "-rwsr-xr-x");
        assert_eq!(mode_string(0o041_777), "drwxrwxrwt");
        assert_eq!(mode_string(0o120_777), "lrwxrwxrwx");
    }

    #[test]
    fn times_are_utc_calendar_dates() {
        let ts = |sec| StatxTimestamp {
            sec,
            nsec: 5,
            _pad: 0,
        };
        assert_eq!(time(&ts(0)), "1970-01-01 00:00:00.000000005 +0000");
        assert_eq!(
            time(&ts(951_782_400)),
            "2000-02-29 00:00:00.000000005 +0000"
        );
        assert_eq!(time(&ts(-1)), "1969-12-31 23:59:59.000000005 +0000");
        assert_eq!(short_time(&ts(1_700_000_000)), "2023-11-14 22:13");
    }
}
