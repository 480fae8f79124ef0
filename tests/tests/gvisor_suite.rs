//! gVisor's lisafs test cases against the real gofer: each on a fresh gofer process and
//! an empty directory, as gVisor runs them, once over the socket alone and once over
//! shared-memory channels.

use lisafs_tests::{conformance, Gofer};

fn run(name: &str) {
    let test = conformance::TESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no conformance test {name}"));
    for channels in [false, true] {
        // UDS needs permission to create host sockets; the rest run with default policy.
        let gofer = Gofer::start(env!("CARGO_BIN_EXE_test-gofer"), &["--host-uds", "create"]);
        let client = if channels {
            gofer.client()
        } else {
            gofer.socket_client()
        };
        assert_eq!(client.idle_channels() > 0, channels);
        test(&client);
        gofer.assert_canary_untouched();
    }
}

macro_rules! gvisor_tests {
    ($($fn_name:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $fn_name() {
                run($name);
            }
        )*

        #[test]
        fn every_conformance_test_runs_here() {
            let here = [$($name),*];
            let all: Vec<&str> = conformance::TESTS.iter().map(|(n, _)| *n).collect();
            assert_eq!(here.to_vec(), all);
        }
    };
}

gvisor_tests! {
    stat => "Stat",
    regular_file_io => "RegularFileIO",
    regular_file_open => "RegularFileOpen",
    set_stat => "SetStat",
    allocate => "Allocate",
    statfs => "StatFS",
    unlink => "Unlink",
    symlink => "Symlink",
    hard_link => "HardLink",
    walk => "Walk",
    rename => "Rename",
    mknod => "Mknod",
    uds => "UDS",
    getdents => "Getdents",
}
