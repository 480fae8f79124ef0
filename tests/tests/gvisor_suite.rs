//! gVisor's lisafs test cases against the real gofer: each on a fresh gofer process and
//! an empty directory, as gVisor runs them, once over the socket alone and once over
//! shared-memory channels; and again with a gofer started from a config file with rules
//! (none of which names the cases' files) and an audit log of every operation, so that
//! policy in the path changes nothing a client sees.

use lisafs_tests::{conformance, Gofer};

fn run(name: &str) {
    let test = conformance::TESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no conformance test {name}"));
    let binary = env!("CARGO_BIN_EXE_test-gofer");
    for (channels, config) in [(false, false), (true, false), (false, true), (true, true)] {
        // UDS needs permission to create host sockets; the rest run with default policy.
        let gofer = match config {
            false => Gofer::start(binary, &["--host-uds", "create"]),
            true => Gofer::start_config(binary, AUDIT, POLICY),
        };
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

/// An audit log of every operation, beside the root.
const AUDIT: &str = "[audit]\nfile = \"{dir}/audit.jsonl\"\nops = \"all\"";

/// Rules of every action, about names the cases do not use.
const POLICY: &str = r#"host_uds = "create"
[[mount.rule]]
path = "secrets/**"
action = "hide"
[[mount.rule]]
path = "ro/**"
action = "readonly"
[[mount.rule]]
path = "**/*.log"
ops = ["write", "remove", "rename", "setattr"]
action = "deny"
[[mount.rule]]
path = "**"
action = "allow""#;

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
