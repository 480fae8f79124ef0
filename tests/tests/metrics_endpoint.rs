//! Metrics through the real path: a `Server` with metrics on, serving the host backend over
//! a socketpair to `lisafs-client` (socket and channels), and the gofer's HTTP endpoint on
//! a Unix socket file, scraped with plain HTTP requests whose text is parsed back.

// Test helpers fail by panicking, like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lisafs_client::{Client, Errno, Owner, O_RDWR};
use lisafs_gofer::host::{HostBackend, HostOptions};
use lisafs_gofer::metrics_endpoint;
use lisafs_protocol::transport::socket::FramedSocket;
use lisafs_server::metrics::Metrics;
use lisafs_server::{Server, ServerOptions};
use tempfile::TempDir;

/// An HTTP response: status, lower-cased header names, body.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Sends `request` as is on a new connection to `socket` and reads until the endpoint
/// closes it (an error after some bytes, such as a reset, ends the read too).
fn http(socket: &Path, request: &[u8]) -> Response {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The endpoint may answer and close before taking all of an oversized request.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(_) if !raw.is_empty() => break,
            Err(err) => panic!("reading the response: {err}"),
        }
    }
    parse_response(&String::from_utf8(raw).unwrap())
}

fn parse_response(text: &str) -> Response {
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut words = status_line.splitn(3, ' ');
    assert_eq!(words.next(), Some("HTTP/1.1"), "{status_line}");
    let status = words.next().unwrap().parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header");
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    assert_eq!(headers["connection"], "close");
    assert_eq!(headers["content-length"], body.len().to_string());
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

fn get(socket: &Path, path: &str) -> Response {
    http(
        socket,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

/// One sample line of the exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a scrape, parsed: `name{k="v",...} value` lines; `#` lines skipped.
#[derive(Debug)]
struct Scrape(Vec<Sample>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => {
                        let labels = rest
                            .strip_suffix('}')
                            .unwrap()
                            .split(',')
                            .map(|pair| {
                                let (key, value) = pair.split_once('=').unwrap();
                                let value = value.trim_matches('"');
                                (key.to_owned(), value.to_owned())
                            })
                            .collect();
                        (name, labels)
                    }
                    None => (series, BTreeMap::new()),
                };
                Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().unwrap(),
                }
            })
            .collect();
        Self(samples)
    }

    /// The value of the one series `name` with exactly `labels`, or 0 if absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} appears twice");
        found.first().map_or(0.0, |s| s.value)
    }

    fn requests(&self, mid: &str) -> f64 {
        self.get("lisafs_requests_total", &[("mid", mid)])
    }

    /// Every MID with a histogram: its buckets are cumulative, in increasing order of
    /// bound, end at `+Inf` with the count, and the count is the request counter.
    fn check_histograms(&self) {
        let mut mids: Vec<&str> = self
            .0
            .iter()
            .filter(|s| s.name == "lisafs_request_duration_seconds_count")
            .map(|s| s.labels["mid"].as_str())
            .collect();
        mids.dedup();
        assert!(!mids.is_empty());
        for mid in mids {
            let buckets: Vec<&Sample> = self
                .0
                .iter()
                .filter(|s| {
                    s.name == "lisafs_request_duration_seconds_bucket" && s.labels["mid"] == mid
                })
                .collect();
            let bounds: Vec<f64> = buckets
                .iter()
                .map(|b| match b.labels["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    le => le.parse().unwrap(),
                })
                .collect();
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{mid}");
            assert_eq!(bounds.last(), Some(&f64::INFINITY), "{mid}");
            assert!(
                buckets.windows(2).all(|w| w[0].value <= w[1].value),
                "{mid}: buckets are cumulative"
            );
            let count = self.get("lisafs_request_duration_seconds_count", &[("mid", mid)]);
            assert_eq!(buckets.last().unwrap().value, count, "{mid}");
            assert_eq!(self.requests(mid), count, "{mid}");
        }
    }
}

/// A served temp directory with metrics on, and the endpoint in front of them.
struct Setup {
    dir: TempDir,
    server: Arc<Server<HostBackend>>,
    endpoint: PathBuf,
    /// A duplicate of the endpoint's listening socket, to shut it down.
    listener: std::os::fd::OwnedFd,
    serving: Option<JoinHandle<std::io::Result<()>>>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("f"), b"hello metrics").unwrap();
        let backend = HostBackend::new(&root, HostOptions::default()).unwrap();
        let options = ServerOptions {
            metrics: true,
            ..ServerOptions::default()
        };
        let server = Server::new(backend, options);
        let endpoint = dir.path().join("metrics.sock");
        let listener = metrics_endpoint::listen(&endpoint).unwrap();
        let dup = listener.as_fd().try_clone_to_owned().unwrap();
        let metrics = Arc::clone(server.metrics().unwrap());
        let serving = std::thread::spawn(move || metrics_endpoint::serve(listener, metrics));
        Self {
            dir,
            server,
            endpoint,
            listener: dup,
            serving: Some(serving),
        }
    }

    fn scrape(&self) -> Scrape {
        let response = get(&self.endpoint, "/metrics");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.headers["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        Scrape::parse(&response.body)
    }

    /// Scrapes until `ready` holds: a request is recorded just after its response is sent,
    /// so the client may see the response of its last request a moment before the scrape
    /// does. (Earlier ones are recorded before the server reads the next request.)
    fn scrape_when(&self, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let scrape = self.scrape();
            if ready(&scrape) || Instant::now() > deadline {
                return scrape;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// A client connection served on its own thread.
    fn connect(&self, channels: usize) -> (Client, JoinHandle<()>) {
        let (client_end, server_end) = FramedSocket::pair().unwrap();
        let serving = self.server.spawn(server_end).unwrap();
        let options = lisafs_client::ClientOptions {
            channels,
            ..Default::default()
        };
        let client = Client::from_fd_with(client_end.into_inner(), options).unwrap();
        (client, serving)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        // The endpoint stops once its listening socket is shut down.
        rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Read).unwrap();
        if let Some(serving) = self.serving.take() {
            if !std::thread::panicking() {
                serving.join().unwrap().unwrap();
            }
        }
    }
}

#[test]
fn counts_match_what_the_client_did() {
    let setup = Setup::new();
    let mode = std::fs::metadata(&setup.endpoint)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the endpoint's socket file");
    let before = setup.scrape();
    assert_eq!(before.get("lisafs_connections", &[]), 0.0);
    assert_eq!(before.requests("FStat"), 0.0);

    let (client, serving) = setup.connect(2);
    let channels = client.idle_channels();
    assert!(channels > 0, "the server grants channels");
    let root = client.root();
    const FSTATS: usize = 7;
    for _ in 0..FSTATS {
        root.fstat().unwrap();
    }
    let (walked, inodes) = root.walk(&["f"]).unwrap();
    assert_eq!(inodes.len(), 1, "{walked:?}");
    let data = vec![0x42; 3000];
    let (_created, opened) = root
        .open_create_at("new", O_RDWR, 0o644, Owner::UNSET)
        .unwrap();
    assert_eq!(opened.fd.pwrite(0, &data).unwrap(), data.len());
    let mut back = vec![0; 5000];
    assert_eq!(opened.fd.pread(0, &mut back).unwrap(), data.len());
    let err = root.unlink_at("missing", 0).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOENT);

    let during = setup.scrape_when(|s| s.requests("UnlinkAt") == 1.0);
    during.check_histograms();
    assert_eq!(during.requests("Mount"), 1.0);
    assert_eq!(during.requests("Channel"), channels as f64);
    assert_eq!(
        during.requests("FStat") - before.requests("FStat"),
        FSTATS as f64
    );
    assert_eq!(during.requests("Walk"), 1.0);
    assert_eq!(during.requests("OpenCreateAt"), 1.0);
    assert_eq!(during.requests("PWrite"), 1.0);
    assert_eq!(during.requests("PRead"), 1.0);
    assert_eq!(during.requests("UnlinkAt"), 1.0);
    let enoent = [("mid", "UnlinkAt"), ("errno", "ENOENT")];
    assert_eq!(during.get("lisafs_errors_total", &enoent), 1.0);
    assert_eq!(
        during.get(
            "lisafs_errors_total",
            &[("mid", "FStat"), ("errno", "ENOENT")]
        ),
        0.0
    );
    assert_eq!(
        during.get("lisafs_written_bytes_total", &[]),
        data.len() as f64
    );
    assert_eq!(
        during.get("lisafs_read_bytes_total", &[]),
        data.len() as f64
    );
    assert_eq!(during.get("lisafs_connections", &[]), 1.0);
    assert_eq!(during.get("lisafs_connections_opened_total", &[]), 1.0);
    assert_eq!(during.get("lisafs_channels", &[]), channels as f64);
    assert_eq!(
        during.get("lisafs_channels_opened_total", &[]),
        channels as f64
    );
    // The root, the walked file and the created one; the created file's open FD.
    assert_eq!(during.get("lisafs_fds", &[("kind", "control")]), 3.0);
    assert_eq!(during.get("lisafs_fds", &[("kind", "open")]), 1.0);
    assert_eq!(during.get("lisafs_fds", &[("kind", "bound_socket")]), 0.0);

    // A second, socket-only connection is counted as well, and its FStat too.
    let (socket_only, socket_serving) = setup.connect(0);
    socket_only.root().fstat().unwrap();
    let fstats = during.requests("FStat");
    let two = setup.scrape_when(|s| s.requests("FStat") > fstats);
    assert_eq!(two.get("lisafs_connections", &[]), 2.0);
    assert_eq!(two.requests("FStat") - during.requests("FStat"), 1.0);
    assert_eq!(two.get("lisafs_channels", &[]), channels as f64);
    drop(socket_only);
    socket_serving.join().unwrap();

    drop((inodes, _created, opened));
    drop(client);
    serving.join().unwrap();
    let after = setup.scrape();
    after.check_histograms();
    assert_eq!(after.get("lisafs_connections", &[]), 0.0);
    assert_eq!(after.get("lisafs_connections_opened_total", &[]), 2.0);
    assert_eq!(after.get("lisafs_channels", &[]), 0.0);
    for kind in ["control", "open", "bound_socket"] {
        let held = after.get("lisafs_fds", &[("kind", kind)]);
        assert_eq!(held, 0.0, "{kind} FDs after every connection ended");
    }
}

#[test]
fn paths_methods_and_formats() {
    let setup = Setup::new();
    let other = get(&setup.endpoint, "/other");
    assert_eq!(other.status, 404);
    let post = http(
        &setup.endpoint,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.headers["allow"], "GET, HEAD");
    assert_eq!(http(&setup.endpoint, b"nonsense\r\n\r\n").status, 400);

    let om = http(
        &setup.endpoint,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
    );
    assert_eq!(om.status, 200);
    assert!(om.headers["content-type"].starts_with("application/openmetrics-text"));
    assert!(om.body.ends_with("# EOF\n"));
    assert!(om.body.contains("# TYPE lisafs_requests counter\n"));
    let prom = setup.scrape();
    assert_eq!(prom.get("lisafs_connections", &[]), 0.0);
    // Absolute-form targets and queries, as some scrapers send them.
    let absolute = get(&setup.endpoint, "http://x/metrics?x=1");
    assert_eq!(absolute.status, 200);
}

#[test]
fn oversized_and_slow_requests_cannot_hold_the_endpoint() {
    let setup = Setup::new();
    // A head that never ends within the limit: refused at once.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.resize(metrics_endpoint::MAX_HEAD + 1000, b'a');
    let started = Instant::now();
    assert_eq!(http(&setup.endpoint, &huge).status, 431);
    assert!(started.elapsed() < metrics_endpoint::DEADLINE);

    // A client that starts a request and stalls: it gets 408 at the deadline, and a scrape
    // queued behind it is answered right after.
    let mut slow = UnixStream::connect(&setup.endpoint).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let started = Instant::now();
    let scrape = setup.scrape();
    let waited = started.elapsed();
    assert!(scrape.0.iter().any(|s| s.name == "lisafs_connections"));
    assert!(
        waited < metrics_endpoint::DEADLINE + Duration::from_secs(2),
        "the scrape waited {waited:?}"
    );
    let mut answer = String::new();
    slow.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");

    // A client that connects and sends nothing at all is cut off the same way.
    let mut silent = UnixStream::connect(&setup.endpoint).unwrap();
    let mut answer = String::new();
    silent.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
}

#[test]
fn listen_replaces_a_stale_socket_but_not_a_live_one_or_a_file() {
    let setup = Setup::new();
    let live = metrics_endpoint::listen(&setup.endpoint).unwrap_err();
    assert_eq!(live.kind(), std::io::ErrorKind::AddrInUse);

    let stale = setup.dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let listener = metrics_endpoint::listen(&stale).unwrap();
    let metrics = Arc::new(Metrics::new());
    let dup = listener.as_fd().try_clone_to_owned().unwrap();
    let serving = metrics_endpoint::spawn(listener, metrics).unwrap();
    assert_eq!(get(&stale, "/metrics").status, 200);
    rustix::net::shutdown(&dup, rustix::net::Shutdown::Read).unwrap();
    serving.join().unwrap();

    let file = setup.dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = metrics_endpoint::listen(&file).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::EXIST.raw_os_error())
    );
}
