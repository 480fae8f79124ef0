//! The seccomp filter of the real gofer process: in force by default (no_new_privs and
//! filter mode in `/proc/<pid>/status`), fatal for a call outside the allowlist (the
//! gofer's self-test hook), absent with `--seccomp none`, and only logging with `log`.
//! Every other end-to-end test runs under the default filter too, which is what shows the
//! allowlist is complete.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use lisafs_tests::{proc_status, serving_pid, Gofer};
use rustix::process::Signal;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");

/// The gofer's self-test switch: one call outside the allowlist right after installing.
const SELFTEST: &str = "LISAFS_GOFER_SECCOMP_SELFTEST";

/// Starts a gofer with `SELFTEST=1` and `extra` flags on a fresh directory, which the
/// returned guard removes.
fn start_selftest(extra: &[&str]) -> (Child, tempfile::TempDir) {
    let dir = tempfile::tempdir_in("/tmp").expect("temp dir");
    let root = dir.path().join("root");
    fs::create_dir(&root).expect("root dir");
    let child = Command::new(GOFER)
        .arg("--root")
        .arg(&root)
        .arg("--socket")
        .arg(dir.path().join("s"))
        .args(["--log-level", "warn"])
        .args(extra)
        .env(SELFTEST, "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gofer");
    (child, dir)
}

/// Waits (up to 30 s) for `child` to end; panics if it does not.
fn wait_for_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait for the gofer") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gofer survived a call outside its seccomp allowlist");
        }
        sleep(Duration::from_millis(10));
    }
}

/// Whether `status` says SIGSYS ended the gofer: directly, or, for a waiting parent that
/// reports its serving child's death as a shell would, exit code 128 + SIGSYS.
fn died_of_sigsys(status: ExitStatus) -> bool {
    let sys = Signal::SYS.as_raw();
    status.signal() == Some(sys) || status.code() == Some(128 + sys)
}

#[test]
fn the_default_gofer_serves_under_no_new_privs_and_a_seccomp_filter() {
    let gofer = Gofer::start(GOFER, &[]);
    // A mounted client proves set-up is over, so the filter is installed by now.
    let client = gofer.client();
    client.root().fstat().expect("stat the root");
    let pid = gofer.server_pid();
    assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(proc_status(pid, "Seccomp"), "2", "filter mode");
    let filters: u32 = proc_status(pid, "Seccomp_filters")
        .parse()
        .expect("a count");
    assert!(filters >= 1, "{filters} filters");
}

#[test]
fn a_call_outside_the_allowlist_kills_the_gofer_with_sigsys() {
    let (mut child, _dir) = start_selftest(&[]);
    let status = wait_for_exit(&mut child);
    assert!(died_of_sigsys(status), "the gofer ended with {status}");
}

#[test]
fn host_socket_features_keep_the_kill_filter() {
    let (mut child, _dir) = start_selftest(&["--host-uds", "all"]);
    let status = wait_for_exit(&mut child);
    assert!(died_of_sigsys(status), "the gofer ended with {status}");
}

#[test]
fn log_mode_lets_the_call_run_and_goes_on_serving() {
    let (mut child, dir) = start_selftest(&["--seccomp", "log"]);
    let socket = dir.path().join("s");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        if let Ok(client) = lisafs_client::Client::connect(&socket) {
            break client;
        }
        if let Some(status) = child.try_wait().expect("wait for the gofer") {
            panic!("the gofer ended with {status} under --seccomp log");
        }
        assert!(
            Instant::now() < deadline,
            "the gofer did not serve within 30 s"
        );
        sleep(Duration::from_millis(10));
    };
    client.root().fstat().expect("stat the root");
    assert_eq!(proc_status(serving_pid(child.id()), "Seccomp"), "2");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn seccomp_none_installs_no_filter() {
    let gofer = Gofer::start(GOFER, &["--seccomp", "none"]);
    let client = gofer.client();
    client.root().fstat().expect("stat the root");
    assert_eq!(proc_status(gofer.server_pid(), "Seccomp"), "0");
}
