//! Getdents64: budgets counted as Linux record lengths, progress across calls, rewind,
//! no "." or "..", device numbers.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;

use common::*;
use lisafs_gofer::host::{FileKind, HostOpen};
use lisafs_gofer::wire::{Dirent64, DirentList, Errno};
use lisafs_server::Backend;

/// Linux's `dirent64` record length for a name of `len` bytes.
fn reclen(len: usize) -> usize {
    (19 + len + 1).next_multiple_of(8)
}

/// Reads the whole directory with `budget`-byte calls (the first one rewinding).
fn read_all(fx: &Fixture, dir: &HostOpen, budget: usize) -> DirentList {
    let mut all = DirentList::new();
    let mut rewind = true;
    for _ in 0..10_000 {
        let batch = fx.backend.getdents(dir, rewind, budget).unwrap();
        rewind = false;
        if batch.is_empty() {
            return all;
        }
        let used: usize = batch.iter().map(|e| reclen(e.name.len())).sum();
        assert!(
            used <= budget,
            "a batch of {used} bytes exceeds the budget of {budget}"
        );
        all.extend(&batch);
    }
    panic!("the listing never ended");
}

fn names(entries: &DirentList) -> Vec<String> {
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| String::from_utf8(e.name.to_vec()).unwrap())
        .collect();
    names.sort();
    names
}

fn populated(count: usize) -> (Fixture, Vec<String>) {
    populated_in(Fixture::new(), count)
}

fn populated_in(fx: Fixture, count: usize) -> (Fixture, Vec<String>) {
    let mut expected = Vec::new();
    for i in 0..count {
        // Names of varying length so record lengths differ.
        let name = format!("{}{i}", "n".repeat(i % 13 + 1));
        std::fs::write(fx.path(&name), b"").unwrap();
        expected.push(name);
    }
    std::fs::create_dir(fx.path("subdir")).unwrap();
    expected.push("subdir".into());
    expected.sort();
    (fx, expected)
}

#[test]
fn small_budgets_make_progress_and_cover_every_entry_once() {
    let (fx, expected) = populated(25);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    for budget in [40, 41, 64, 100, 1000, 65_536] {
        let all = read_all(&fx, &dir, budget);
        assert_eq!(names(&all), expected, "budget {budget}");
    }
}

/// tmpfs (directory offsets are its own cookies, not ext4 hashes) behaves the same.
#[test]
fn small_budgets_work_on_tmpfs_too() {
    let dir = tempfile::tempdir_in("/dev/shm").unwrap();
    let fx = Fixture::serve(dir, lisafs_gofer::host::HostOptions::default());
    let (fx, expected) = populated_in(fx, 25);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    for budget in [40, 64, 100, 65_536] {
        assert_eq!(
            names(&read_all(&fx, &dir, budget)),
            expected,
            "budget {budget}"
        );
    }
}

#[test]
fn a_40_byte_budget_returns_one_short_entry_per_call() {
    let (fx, _) = populated(5);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    let first = fx.backend.getdents(&dir, true, 40).unwrap();
    assert_eq!(first.len(), 1);
    let second = fx.backend.getdents(&dir, false, 40).unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(first.iter().next(), second.iter().next());
}

#[test]
fn rewind_starts_over_after_a_partial_listing() {
    let (fx, expected) = populated(10);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    let partial = fx.backend.getdents(&dir, true, 100).unwrap();
    assert!(!partial.is_empty() && partial.len() < expected.len());
    assert_eq!(names(&read_all(&fx, &dir, 64)), expected);
    // After the end, a call without rewind stays at the end.
    assert!(fx.backend.getdents(&dir, false, 65_536).unwrap().is_empty());
}

#[test]
fn dot_entries_are_never_returned() {
    let fx = Fixture::new();
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    assert!(read_all(&fx, &dir, 40).is_empty());
    std::fs::write(fx.path("only"), b"").unwrap();
    assert_eq!(names(&read_all(&fx, &dir, 40)), ["only"]);
}

#[test]
fn a_budget_too_small_for_the_next_entry_returns_nothing_and_loses_nothing() {
    let (fx, expected) = populated(3);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    assert!(fx.backend.getdents(&dir, true, 0).unwrap().is_empty());
    assert!(fx.backend.getdents(&dir, false, 8).unwrap().is_empty());
    let rest = read_all_without_rewind(&fx, &dir);
    assert_eq!(names(&rest), expected);
}

fn read_all_without_rewind(fx: &Fixture, dir: &HostOpen) -> DirentList {
    let mut all = DirentList::new();
    loop {
        let batch = fx.backend.getdents(dir, false, 64).unwrap();
        if batch.is_empty() {
            return all;
        }
        all.extend(&batch);
    }
}

#[test]
fn entries_carry_inode_type_and_the_directorys_device() {
    let (fx, _) = populated(3);
    std::os::unix::fs::symlink("x", fx.path("link")).unwrap();
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    let root = fx.stat(&fx.root);
    let all = read_all(&fx, &dir, 65_536);
    let by_name: BTreeMap<Vec<u8>, Dirent64<'_>> =
        all.iter().map(|e| (e.name.to_vec(), e)).collect();
    for (name, entry) in &by_name {
        let path = fx.dir.path().join(std::str::from_utf8(name).unwrap());
        let meta = lstat(&path);
        assert_eq!(entry.ino, meta.ino());
        assert_eq!(
            (entry.dev_major, entry.dev_minor),
            (root.dev_major, root.dev_minor)
        );
    }
    assert_eq!(by_name[&b"subdir"[..]].d_type, 4);
    assert_eq!(by_name[&b"link"[..]].d_type, 10);
    assert_eq!(by_name[&b"n0"[..]].d_type, 8);
}

#[test]
fn getdents_needs_a_directory() {
    let fx = Fixture::new();
    let f = fx.file(&fx.root, "f", b"");
    let open = fx.backend.open(&f.file, RDONLY).unwrap().open;
    assert_eq!(open.kind(), FileKind::Regular);
    assert_eq!(errno(fx.backend.getdents(&open, true, 100)), Errno::ENOTDIR);
}

#[test]
fn a_large_directory_is_listed_completely_with_the_gvisor_budget() {
    let (fx, expected) = populated(2000);
    let dir = fx.backend.open(&fx.root, RDONLY).unwrap().open;
    assert_eq!(names(&read_all(&fx, &dir, 65_536)), expected);
}
