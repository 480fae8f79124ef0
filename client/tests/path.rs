//! The path layer against the in-memory tree: one Walk per path, client-side symlink
//! resolution, directory listing, creation and removal, and no leaked FDIDs.
#![allow(clippy::unwrap_used)]

mod fake;

use fake::tree::{Kind, Tree};
use fake::{Fake, Mount, DIR, LNK, ROOT};
use lisafs_client::wire::{AnyRequest, Errno, Mid, WalkReq, WalkStatReq};
use lisafs_client::{Client, FileType, O_RDONLY, O_TRUNC, O_WRONLY};

fn sample() -> Tree {
    let mut tree = Tree::new();
    tree.add("a", Kind::Dir)
        .add("a/b", Kind::Dir)
        .add("a/b/c", Kind::File(b"hello".to_vec()))
        .add("a/real", Kind::Dir)
        .add("a/real/f", Kind::File(b"hi".to_vec()))
        .add("a/l", Kind::Symlink(b"real".to_vec()))
        .add("a/up", Kind::Symlink(b"../a/./real".to_vec()))
        .add("top", Kind::Symlink(b"/a/real".to_vec()))
        .add("loop", Kind::Symlink(b"loop".to_vec()));
    tree
}

fn start() -> (Client, Fake, std::sync::Arc<parking_lot::Mutex<Tree>>) {
    sample().serve(Mount::default())
}

fn walk(path: &[&str]) -> AnyRequest {
    AnyRequest::Walk(WalkReq {
        dir_fd: ROOT,
        path: path.iter().map(|&c| c.into()).collect(),
    })
}

/// Drops the client and checks that the server holds no FDID of it any more.
fn finish_without_leaks(
    client: Client,
    fake: Fake,
    tree: &parking_lot::Mutex<Tree>,
) -> Vec<AnyRequest> {
    drop(client);
    let log = fake.finish();
    assert_eq!(tree.lock().live_fds(), 0, "FDIDs left open");
    log
}

#[test]
fn open_walks_the_whole_path_in_one_rpc() {
    let (client, fake, tree) = start();

    let file = client.open("/a//b/c", O_RDONLY).unwrap();
    let mut buf = [0; 16];
    let n = file.read_at(&mut buf, 0).unwrap();
    drop(file);

    assert_eq!(&buf[..n], b"hello");
    let log = finish_without_leaks(client, fake, &tree);
    assert_eq!(log[1], walk(&["a", "b", "c"]));
    assert_eq!(
        fake::mids(&log),
        [Mid::Mount, Mid::Walk, Mid::OpenAt, Mid::PRead, Mid::Close]
    );
}

#[test]
fn metadata_is_one_walk_stat() {
    let (client, fake, tree) = start();

    let stat = client.metadata("a/b/c").unwrap();
    let root = client.metadata("/").unwrap();
    let missing = client.metadata("a/nope/c").unwrap_err();

    assert_eq!(FileType::from_mode(stat.mode), FileType::Regular);
    assert_eq!(stat.size, 5);
    assert_eq!(root.mode, DIR);
    assert_eq!(missing.errno(), Errno::ENOENT);
    let log = finish_without_leaks(client, fake, &tree);
    let stat_of = |path: &[&str]| {
        AnyRequest::WalkStat(WalkStatReq {
            dir_fd: ROOT,
            path: path.iter().map(|&c| c.into()).collect(),
        })
    };
    assert_eq!(
        log[1..4],
        [
            stat_of(&["a", "b", "c"]),
            stat_of(&[""]),
            stat_of(&["a", "nope", "c"])
        ]
    );
}

#[test]
fn dot_and_dotdot_are_einval_without_sending() {
    let (client, fake, _tree) = start();

    assert_eq!(client.metadata("a/./b").unwrap_err().errno(), Errno::EINVAL);
    assert_eq!(
        client.open("a/..", O_RDONLY).unwrap_err().errno(),
        Errno::EINVAL
    );
    assert_eq!(
        client.create_dir("..", 0o755).unwrap_err().errno(),
        Errno::EINVAL
    );

    assert!(fake.sent().is_empty());
}

#[test]
fn symlinks_on_the_way_are_resolved_client_side() {
    let (client, fake, tree) = start();

    let data = client.read("a/l/f").unwrap();

    assert_eq!(data, b"hi");
    let log = finish_without_leaks(client, fake, &tree);
    assert_eq!(log[1], walk(&["a", "l", "f"]));
    assert_eq!(log[2].mid(), Mid::ReadLinkAt);
    assert_eq!(log[3], walk(&["a", "real", "f"]));
}

#[test]
fn absolute_and_dotdot_targets_resolve_from_the_mount_root() {
    let (client, fake, tree) = start();

    assert_eq!(client.read("top/f").unwrap(), b"hi");
    assert_eq!(client.read("a/up/f").unwrap(), b"hi");

    finish_without_leaks(client, fake, &tree);
}

#[test]
fn a_final_symlink_is_followed_by_metadata_but_not_by_symlink_metadata() {
    let (client, fake, tree) = start();

    assert_eq!(client.metadata("a/l").unwrap().mode, DIR);
    assert_eq!(client.symlink_metadata("a/l").unwrap().mode, LNK);
    assert_eq!(client.read_link("a/l").unwrap(), b"real");

    finish_without_leaks(client, fake, &tree);
}

#[test]
fn a_symlink_loop_is_eloop() {
    let (client, fake, tree) = start();

    assert_eq!(client.metadata("loop").unwrap_err().errno(), Errno::ELOOP);
    assert_eq!(client.read("loop/x").unwrap_err().errno(), Errno::ELOOP);

    finish_without_leaks(client, fake, &tree);
}

#[test]
fn read_dir_rewinds_first_then_reads_until_empty_and_drops_dot_entries() {
    let (client, fake, tree) = start();

    let mut names: Vec<String> = client
        .read_dir("a")
        .unwrap()
        .iter()
        .map(|e| e.name_lossy().into_owned())
        .collect();
    names.sort();

    assert_eq!(names, ["b", "l", "real", "up"]);
    let log = finish_without_leaks(client, fake, &tree);
    let counts: Vec<i32> = log
        .iter()
        .filter_map(|req| match req {
            AnyRequest::Getdents64(g) => Some(g.count),
            _ => None,
        })
        .collect();
    // Six entries ("." and ".." included), two per reply, then the empty reply.
    assert_eq!(counts, [-65536, 65536, 65536, 65536]);
}

#[test]
fn create_dir_all_walks_once_then_creates_each_missing_component() {
    let (client, fake, tree) = start();

    client.create_dir_all("a/b/x/y", 0o755).unwrap();
    client.create_dir_all("a/b/x/y", 0o755).unwrap();
    let on_file = client.create_dir_all("a/b/c", 0o755).unwrap_err();

    assert_eq!(tree.lock().get("a/b/x/y"), Some(&Kind::Dir));
    assert_eq!(on_file.errno(), Errno::EEXIST);
    let log = finish_without_leaks(client, fake, &tree);
    assert_eq!(
        fake::mids(&log[1..5]),
        [Mid::Walk, Mid::MkdirAt, Mid::MkdirAt, Mid::Walk]
    );
}

#[test]
fn write_creates_or_truncates_and_read_reads_back() {
    let (client, fake, tree) = start();

    client.write("a/new", b"fresh").unwrap();
    client.write("a/b/c", b"HELLO").unwrap();

    assert_eq!(client.read("a/new").unwrap(), b"fresh");
    assert_eq!(client.read("a/b/c").unwrap(), b"HELLO");
    let log = finish_without_leaks(client, fake, &tree);
    let opens: Vec<u32> = log
        .iter()
        .filter_map(|req| match req {
            AnyRequest::OpenCreateAt(o) => Some(o.flags),
            AnyRequest::OpenAt(o) => Some(o.flags),
            _ => None,
        })
        .collect();
    assert_eq!(opens, [O_WRONLY, O_WRONLY | O_TRUNC, O_RDONLY, O_RDONLY]);
}

#[test]
fn remove_and_rename_act_on_the_parent_directory() {
    let (client, fake, tree) = start();

    assert_eq!(
        client.remove_file("a/b").unwrap_err().errno(),
        Errno::EISDIR
    );
    assert_eq!(
        client.remove_dir("a/b").unwrap_err().errno(),
        Errno::ENOTEMPTY
    );
    client.rename("a/b/c", "moved").unwrap();
    client.remove_dir("a/b").unwrap();
    client.symlink("moved", "a/s").unwrap();
    client.remove_file("a/s").unwrap();

    {
        let tree = tree.lock();
        assert_eq!(tree.get("moved"), Some(&Kind::File(b"hello".to_vec())));
        assert_eq!(tree.get("a/b"), None);
        assert_eq!(tree.get("a/s"), None);
    }
    finish_without_leaks(client, fake, &tree);
}

#[test]
fn remove_dir_all_empties_the_tree_below_depth_first() {
    let (client, fake, tree) = start();

    client.remove_dir_all("a").unwrap();

    assert_eq!(tree.lock().get("a"), None);
    assert!(client.read_dir("").unwrap().iter().all(|e| e.name != b"a"));
    finish_without_leaks(client, fake, &tree);
}

#[test]
fn operations_on_the_root_name_fail_cleanly() {
    let (client, fake, tree) = start();

    assert_eq!(
        client.create_dir("/", 0o755).unwrap_err().errno(),
        Errno::EEXIST
    );
    assert_eq!(client.remove_dir("").unwrap_err().errno(), Errno::EBUSY);
    client.create_dir_all("/", 0o755).unwrap();

    finish_without_leaks(client, fake, &tree);
}
