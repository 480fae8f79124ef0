//! The memory backend (`lisafs_gofer::memory`) through the real client and server, in
//! this process: gVisor's conformance cases, then the semantics a local filesystem has
//! that the memory backend implements itself (renames, links, unlinked files, directory
//! offsets, xattrs, the size limit, times), and a multi-threaded stress run.

use lisafs_gofer::memory::{MemoryBackend, MemoryOptions};

fn backend() -> MemoryBackend {
    MemoryBackend::new(MemoryOptions::default()).expect("memory backend")
}

/// Every gVisor case but UDS passes; UDS needs BindAt, which this backend refuses.
#[test]
fn every_conformance_test_but_uds_passes() {
    lisafs_tests::conformance::run_backend_in_process(backend, &["UDS"]);
}
