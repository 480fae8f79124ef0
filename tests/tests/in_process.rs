//! The conformance suite is not tied to the gofer process: any `Backend` served by a
//! `Server` over a socketpair can run it. Here the host backend does, in this process.

#[test]
fn every_conformance_test_passes_against_an_in_process_host_backend() {
    lisafs_tests::conformance::run_in_process(|backend| backend);
}
