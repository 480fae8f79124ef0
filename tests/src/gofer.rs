//! A gofer process under test.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use lisafs_client::{Client, ClientOptions};
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_protocol::wire::{decode, FdId, Mid, MountResp, MAX_MESSAGE_SIZE};
use tempfile::TempDir;

/// A running gofer serving `<tmp>/root` on `<tmp>/s`, with `<tmp>/out` beside the root as
/// a canary: nothing a client does may touch it. Killed on drop.
#[derive(Debug)]
pub struct Gofer {
    child: Child,
    dir: TempDir,
    socket: PathBuf,
}

impl Gofer {
    /// Starts `binary` (the test package's `test-gofer`) with `extra` flags after
    /// `--root` and `--socket`, and waits until it accepts connections.
    pub fn start(binary: &str, extra: &[&str]) -> Self {
        Self::start_after(binary, extra, |_| {})
    }

    /// [`Gofer::start`], with `setup` run on the root before the gofer starts (to mount
    /// something inside it, say).
    pub fn start_after(binary: &str, extra: &[&str], setup: impl FnOnce(&Path)) -> Self {
        let (dir, root, socket) = Self::prepare();
        setup(&root);
        let mut command = Command::new(binary);
        command
            .arg("--root")
            .arg(&root)
            .arg("--socket")
            .arg(&socket)
            // Tests read the gofer's warnings, not its start-up chatter.
            .args(["--log-level", "warn"])
            .args(extra);
        Self::spawn(command, dir, socket)
    }

    /// Starts `binary` serving a tree in memory (`--memory`, then `extra`), and waits
    /// until it accepts connections. [`Gofer::root`] is then an empty host directory the
    /// gofer does not serve.
    pub fn start_memory(binary: &str, extra: &[&str]) -> Self {
        Self::start_memory_with(binary, false, extra, |_| {})
    }

    /// [`Gofer::start_memory`] with `--memory-from` [`Gofer::root`], after `setup` has
    /// filled it: the gofer serves a copy of it in memory.
    pub fn start_memory_from(binary: &str, extra: &[&str], setup: impl FnOnce(&Path)) -> Self {
        Self::start_memory_with(binary, true, extra, setup)
    }

    fn start_memory_with(
        binary: &str,
        from_root: bool,
        extra: &[&str],
        setup: impl FnOnce(&Path),
    ) -> Self {
        let (dir, root, socket) = Self::prepare();
        setup(&root);
        let mut command = Command::new(binary);
        command.arg("--memory");
        if from_root {
            command.arg("--memory-from").arg(&root);
        }
        command
            .arg("--socket")
            .arg(&socket)
            .args(["--log-level", "warn"])
            .args(extra);
        Self::spawn(command, dir, socket)
    }

    /// Starts `binary` with `--config`: one mount of the root on the socket, with
    /// `mount_tail` (more keys and `[[mount.rule]]` tables) after its `root` and
    /// `socket`, and `top` (say an `[audit]` table, which may name files in `{dir}`, the
    /// directory holding the root) before it.
    pub fn start_config(binary: &str, top: &str, mount_tail: &str) -> Self {
        let (dir, root, socket) = Self::prepare();
        let config = dir.path().join("gofer.toml");
        let text = format!(
            "log_level = \"warn\"\n{top}\n[[mount]]\nname = \"test\"\nroot = \"{root}\"\n\
             socket = \"{socket}\"\n{mount_tail}\n",
            top = top.replace("{dir}", &dir.path().display().to_string()),
            root = root.display(),
            socket = socket.display(),
        );
        fs::write(&config, text).expect("config file");
        let mut command = Command::new(binary);
        command.arg("--config").arg(&config);
        Self::spawn(command, dir, socket)
    }

    /// A temporary directory with an empty root and the canary; the socket's path.
    fn prepare() -> (TempDir, PathBuf, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("lt")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let root = dir.path().join("root");
        let out = dir.path().join("out");
        fs::create_dir(&root).expect("root dir");
        fs::create_dir(&out).expect("canary dir");
        fs::write(out.join("secret"), b"canary").expect("canary file");
        let socket = dir.path().join("s");
        (dir, root, socket)
    }

    fn spawn(mut command: Command, dir: TempDir, socket: PathBuf) -> Self {
        let child = command
            .stdin(Stdio::null())
            .spawn()
            .expect("start the gofer");
        let mut gofer = Self { child, dir, socket };
        gofer.wait_ready();
        gofer
    }

    /// Waits until the gofer answers a Mount: the socket listens before the gofer has
    /// finished confining itself, and the accept loop (so the answer) comes after.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_mount() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gofer exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "gofer did not serve within 10 s");
            sleep(Duration::from_millis(5));
        }
    }

    fn answers_mount(&self) -> bool {
        let Ok(stream) = UnixStream::connect(&self.socket) else {
            return false;
        };
        let mut sock = FramedSocket::new(OwnedFd::from(stream));
        sock.send(Mid::Mount.as_u16(), &[], &[]).is_ok()
            && sock
                .recv(MAX_MESSAGE_SIZE, 1)
                .is_ok_and(|frame| frame.mid == Mid::Mount.as_u16())
    }

    /// The served directory.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The canary directory beside the root.
    pub fn outside(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The listening socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A mounted client connection, with shared-memory channels.
    pub fn client(&self) -> Client {
        Client::connect(&self.socket).expect("connect and mount")
    }

    /// A mounted client connection that keeps every RPC on the socket.
    pub fn socket_client(&self) -> Client {
        let options = ClientOptions {
            channels: 0,
            ..ClientOptions::default()
        };
        Client::connect_with(&self.socket, options).expect("connect and mount")
    }

    /// A raw connection, not yet mounted, for protocol-level tests.
    pub fn raw(&self) -> FramedSocket {
        let stream = UnixStream::connect(&self.socket).expect("connect");
        FramedSocket::new(OwnedFd::from(stream))
    }

    /// A raw connection on which Mount has been done; returns it and the root's FDID.
    pub fn mounted_raw(&self) -> (FramedSocket, FdId) {
        let mut sock = self.raw();
        sock.send(Mid::Mount.as_u16(), &[], &[])
            .expect("send Mount");
        let frame = sock.recv(MAX_MESSAGE_SIZE, 1).expect("Mount response");
        assert_eq!(frame.mid, Mid::Mount.as_u16(), "Mount failed");
        let root = decode::<MountResp>(frame.payload).expect("decode MountResp");
        (sock, root.root.control_fd)
    }

    /// The process ID of the started gofer.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process ID of the process that serves: the started one, or (with the default
    /// `--sandbox namespace`) the child it forked into new namespaces.
    pub fn server_pid(&self) -> u32 {
        serving_pid(self.pid())
    }

    /// How many FDs the serving process has open now.
    pub fn open_fds(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.server_pid()))
            .expect("gofer /proc fd dir")
            .count()
    }

    /// Waits (up to 5 s) until the gofer has at most `baseline` FDs open, and returns the
    /// last count seen. Teardown happens on the gofer's own threads, and a baseline may
    /// include a connection that was still closing (the start-up probe), so "at most" is
    /// the test: a leak leaves the count above it.
    pub fn settle_fds(&self, baseline: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.open_fds();
            if now <= baseline || Instant::now() > deadline {
                return now;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Kills the gofer process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the gofer");
        self.child.wait().expect("reap the gofer");
    }

    /// Waits for the gofer process to end and returns its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait for the gofer")
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Panics unless the canary beside the root is exactly as created.
    pub fn assert_canary_untouched(&self) {
        let out = self.outside();
        let names: Vec<_> = fs::read_dir(&out)
            .expect("canary dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["secret"], "something was created outside the root");
        let secret = fs::read(out.join("secret")).expect("canary file");
        assert_eq!(secret, b"canary", "the canary file was changed");
    }
}

/// The serving process of a gofer started as `pid`: its only child if it has one (the
/// sandbox's PID-namespace init), else `pid` itself.
pub fn serving_pid(pid: u32) -> u32 {
    let children =
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    let mut children = children.split_whitespace().filter_map(|c| c.parse().ok());
    match (children.next(), children.next()) {
        (Some(child), None) => child,
        _ => pid,
    }
}

impl Drop for Gofer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
