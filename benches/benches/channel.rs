//! A 64-byte ping-pong on a shared-memory channel between two threads of this process:
//! the channel's own cost (copies and turn-taking) without a second process, encoding or
//! a filesystem. The report binary measures the same between two processes.
#![allow(missing_docs)] // Reason: criterion's macros generate undocumented items.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use lisafs_benches::pingpong::{channel_pair, channel_ping, serve_echo, PING_SIZE};
use lisafs_protocol::transport::channel::SpinPolicy;

fn ping_pong(c: &mut Criterion, name: &str, spin: SpinPolicy) {
    let (mut client, server) = channel_pair(spin, spin).expect("channel pair");
    let stop = client.shutdown_handle();
    let peer = std::thread::spawn(move || serve_echo(server));
    client.connect().expect("handshake");
    let ping = [0x42u8; PING_SIZE];
    c.bench_function(name, |b| {
        b.iter(|| channel_ping(&mut client, &ping).expect("ping"))
    });
    stop.shutdown();
    peer.join().expect("echo thread").expect("echo loop");
}

fn channel(c: &mut Criterion) {
    ping_pong(
        c,
        "channel ping-pong 64 B, spin then futex",
        SpinPolicy::default(),
    );
    ping_pong(
        c,
        "channel ping-pong 64 B, futex only",
        SpinPolicy {
            max_spin: Duration::ZERO,
        },
    );
}

criterion_group! {
    name = benches;
    // Few, short samples so that `cargo bench` stays well under a minute.
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = channel
}
criterion_main!(benches);
