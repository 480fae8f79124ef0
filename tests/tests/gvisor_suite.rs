//! gVisor's lisafs test cases against the real gofer: each on a fresh gofer process and
//! an empty directory, as gVisor runs them, once over the socket alone and once over
//! shared-memory channels; and again with a gofer started from a config file with rules
//! (none of which names the cases' files) and an audit log of every operation, so that
//! policy in the path changes nothing a client sees; and again against `gofer --memory`,
//! where UDS becomes the check that BindAt is EOPNOTSUPP (a memory tree has no host
//! socket to bind).

use lisafs_tests::{conformance, Gofer};

fn run(name: &str) {
    let test = conformance::TESTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no conformance test {name}"));
    let binary = env!("CARGO_BIN_EXE_test-gofer");
    for channels in [false, true] {
        for served in [Served::Flags, Served::Config, Served::Memory] {
            one(name, test, binary, channels, served);
        }
    }
}

/// How the gofer of one run is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Served {
    /// `--root` with flags.
    Flags,
    /// `--config` with rules and an audit log.
    Config,
    /// `--memory`.
    Memory,
}

fn one(
    name: &str,
    test: conformance::ConformanceTest,
    binary: &str,
    channels: bool,
    served: Served,
) {
    {
        // UDS needs permission to create host sockets; the rest run with default policy.
        let gofer = match served {
            Served::Flags => Gofer::start(binary, &["--host-uds", "create"]),
            Served::Config => Gofer::start_config(binary, AUDIT, POLICY),
            Served::Memory => Gofer::start_memory(binary, &[]),
        };
        let client = if channels {
            gofer.client()
        } else {
            gofer.socket_client()
        };
        assert_eq!(client.idle_channels() > 0, channels);
        match (served, name) {
            (Served::Memory, "UDS") => conformance::uds_unsupported(&client),
            _ => test(&client),
        }
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
