//! `gofer --config`: several mounts from one file, served by one confined process, each
//! with its own root and policy, and connections isolated from each other (issue 9).

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lisafs_client::Client;
use lisafs_protocol::wire::Errno;

const GOFER: &str = env!("CARGO_BIN_EXE_test-gofer");

/// Kills the gofer on drop so a failed assertion leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn connect(socket: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(client) = Client::connect(socket) {
            return client;
        }
        assert!(
            Instant::now() < deadline,
            "{} never served",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_process_serves_every_mount_of_the_file_with_its_own_policy() {
    for sandbox in ["namespace", "chroot", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let (data, ro) = (dir.path().join("data"), dir.path().join("ro"));
        fs::create_dir(&data).unwrap();
        fs::create_dir(&ro).unwrap();
        fs::write(ro.join("only-in-ro"), b"ro").unwrap();
        let config = dir.path().join("gofer.toml");
        fs::write(
            &config,
            format!(
                r#"
sandbox = "{sandbox}"
log_level = "warn"

[[mount]]
name = "data"
root = "{data}"
socket = "{dir}/data.sock"

[[mount]]
name = "ro"
root = "{ro}"
socket = "{dir}/ro.sock"
readonly = true
"#,
                data = data.display(),
                ro = ro.display(),
                dir = dir.path().display(),
            ),
        )
        .unwrap();
        let mut gofer = Running(
            Command::new(GOFER)
                .arg("--config")
                .arg(&config)
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let data_client = connect(&dir.path().join("data.sock"));
        let ro_client = connect(&dir.path().join("ro.sock"));
        data_client.write("new", b"written").unwrap();
        assert_eq!(fs::read(data.join("new")).unwrap(), b"written", "{sandbox}");
        let refused = ro_client.write("new", b"x").unwrap_err();
        assert_eq!(refused.errno(), Errno::EROFS, "{sandbox}");
        assert!(!ro.join("new").exists());
        // Each connection sees its own root only.
        assert_eq!(ro_client.read("only-in-ro").unwrap(), b"ro");
        let err = data_client.read("only-in-ro").unwrap_err();
        assert_eq!(err.errno(), Errno::ENOENT, "{sandbox}");
        // One process: the supervisor's one child, or the process itself.
        let pid = lisafs_tests::serving_pid(gofer.0.id());
        let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
        assert!(children.trim().is_empty(), "{sandbox}: {children}");
        drop((data_client, ro_client));
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&gofer.0),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        assert_eq!(gofer.0.wait().unwrap().code(), Some(0), "{sandbox}");
        assert!(!dir.path().join("data.sock").exists());
        assert!(!dir.path().join("ro.sock").exists());
    }
}
