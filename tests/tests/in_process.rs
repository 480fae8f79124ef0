//! The conformance suite is not tied to the gofer process: any `Backend` served by a
//! `Server` over a socketpair can run it. Here the host backend does, in this process.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use lisafs_client::Client;
use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_server::{Server, ServerOptions};
use lisafs_tests::conformance;

#[test]
fn every_conformance_test_passes_against_an_in_process_host_backend() {
    for (name, test) in conformance::TESTS {
        let dir = tempfile::tempdir().unwrap();
        let options = HostOptions {
            uds_create: true,
            ..HostOptions::default()
        };
        let backend = HostBackend::new(dir.path(), options).unwrap();
        let server = Server::new(backend, ServerOptions::default());
        let (client_end, server_end) = FramedSocket::pair().unwrap();
        let serving = server.spawn(server_end).unwrap();

        let client = Client::from_fd(client_end.into_inner()).unwrap();
        test(&client);
        drop(client);
        serving
            .join()
            .unwrap_or_else(|_| panic!("{name}: the server thread panicked"));
    }
}
