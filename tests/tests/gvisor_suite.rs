//! gVisor's lisafs test cases against the real gofer: each on a fresh gofer process and
//! an empty directory, as gVisor runs them, once over the socket alone and once over
//! shared-memory channels; and each again against `gofer --memory`, where UDS becomes
//! the check that BindAt is EOPNOTSUPP (a memory tree has no host socket to bind).

use lisafs_tests::{conformance, Gofer};

fn run(name: &str) {
    let test = conformance::TESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no conformance test {name}"));
    for (memory, channels) in [(false, false), (false, true), (true, false), (true, true)] {
        let gofer = match memory {
            // UDS needs permission to create host sockets; the rest run with default
            // policy.
            false => Gofer::start(env!("CARGO_BIN_EXE_test-gofer"), &["--host-uds", "create"]),
            true => Gofer::start_memory(env!("CARGO_BIN_EXE_test-gofer"), &[]),
        };
        let client = if channels {
            gofer.client()
        } else {
            gofer.socket_client()
        };
        assert_eq!(client.idle_channels() > 0, channels);
        match (memory, name) {
            (true, "UDS") => conformance::uds_unsupported(&client),
            _ => test(&client),
        }
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
