//! Batched Close: one RPC per 100 released FDIDs, on demand, and on drop.
#![allow(clippy::unwrap_used)]

mod fake;

use fake::{closes, inode, Fake, Mount, Reply, DIR, ROOT};
use lisafs_client::wire::{AnyRequest, AnyResponse, WalkResp, WalkStatus};
use lisafs_client::{Client, CLOSE_BATCH};

/// A fake whose Walk returns one directory inode per component, with FDIDs counting up
/// from 2 across walks.
fn walking_fake() -> (Client, Fake) {
    counting_walk_fake(Mount::default())
}

fn counting_walk_fake(mount: Mount) -> (Client, Fake) {
    let mut next = 2;
    Fake::start(mount, move |req| match req {
        AnyRequest::Walk(walk) => {
            let inodes = (0..walk.path.len())
                .map(|_| {
                    next += 1;
                    inode(next - 1, DIR)
                })
                .collect();
            Reply::Resp(AnyResponse::Walk(WalkResp {
                status: WalkStatus::Success,
                inodes,
            }))
        }
        other => Reply::empty(other),
    })
}

fn path(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("d{i}")).collect()
}

#[test]
fn the_hundredth_release_sends_exactly_one_close_with_all_hundred_ids() {
    let (client, fake) = walking_fake();
    let (_, inodes) = client.root().walk(&path(150)).unwrap();
    let mut inodes = inodes.into_iter();

    for inode in inodes.by_ref().take(CLOSE_BATCH - 1) {
        drop(inode);
    }
    assert!(closes(&fake.log()).is_empty());
    assert_eq!(client.pending_closes(), 99);

    drop(inodes.next());

    let expected: Vec<u64> = (2..102).collect();
    assert_eq!(closes(&fake.log()), [expected]);
    assert_eq!(client.pending_closes(), 0);
    drop(inodes);
    assert_eq!(closes(&fake.log()).len(), 1);
    assert_eq!(client.pending_closes(), 50);
}

#[test]
fn flush_closes_sends_the_queue_at_once() {
    let (client, fake) = walking_fake();
    let (_, inodes) = client.root().walk(&path(3)).unwrap();
    drop(inodes);

    client.flush_closes().unwrap();
    client.flush_closes().unwrap();

    // The second flush had nothing to send.
    assert_eq!(closes(&fake.log()), [vec![2, 3, 4]]);
}

#[test]
fn dropping_the_client_closes_the_queue_and_the_root_in_one_rpc() {
    let (client, fake) = walking_fake();
    let (_, inodes) = client.root().walk(&path(2)).unwrap();
    drop(inodes);

    drop(client);

    assert_eq!(closes(&fake.finish()), [vec![2, 3, ROOT.0]]);
}

#[test]
fn handles_that_outlive_the_client_are_closed_when_the_last_one_drops() {
    let (client, fake) = walking_fake();
    let (_, inodes) = client.root().walk(&path(2)).unwrap();

    drop(client);
    assert_eq!(closes(&fake.log()), [vec![ROOT.0]]);
    // The connection is still usable through the surviving handles.
    let (_, more) = inodes[0].fd.walk(&path(1)).unwrap();
    drop(more);
    drop(inodes);

    assert_eq!(closes(&fake.finish()), [vec![ROOT.0], vec![4, 2, 3]]);
}

#[test]
fn explicit_close_is_the_same_as_drop() {
    let (client, fake) = walking_fake();
    let (_, mut inodes) = client.root().walk(&path(1)).unwrap();

    inodes.pop().unwrap().fd.close();
    client.flush_closes().unwrap();

    assert_eq!(closes(&fake.log()), [vec![2]]);
}

#[test]
fn a_batch_larger_than_the_message_limit_is_split_across_closes() {
    // 500 bytes hold a Close of at most (500 - 2) / 8 = 62 IDs.
    let mount = Mount {
        max_message_size: 500,
        ..Mount::default()
    };
    let (client, fake) = counting_walk_fake(mount);
    let mut held = Vec::new();
    for _ in 0..34 {
        // (500 - 3) / 152 = 3 inodes fit one Walk response.
        held.extend(client.root().walk(&path(3)).unwrap().1);
    }

    drop(held);
    client.flush_closes().unwrap();

    let sizes: Vec<usize> = closes(&fake.log()).iter().map(Vec::len).collect();
    assert_eq!(sizes, [62, 38, 2]);
}
