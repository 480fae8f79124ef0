//! The `--metrics-socket` endpoint: a minimal HTTP/1.1 server on a Unix socket that
//! answers `GET /metrics` with the server's [`Metrics`], so that
//! `curl --unix-socket PATH http://x/metrics` works.
//!
//! The format is the Prometheus text format (`text/plain; version=0.0.4`), or OpenMetrics
//! when the `Accept` header names `application/openmetrics-text`. Other paths get 404,
//! other methods than GET and HEAD 405, a malformed request 400. Every response ends the
//! connection (`Connection: close`).
//!
//! A local client must not be able to pin or exhaust anything: connections are served one
//! at a time on the thread that runs [`serve`]; the request head may be at most
//! [`MAX_HEAD`] bytes (431 beyond) and must be in within [`DEADLINE`] of the accept (408
//! otherwise), and the answer must be taken within another [`DEADLINE`]; each read and
//! write is bounded by what is left. A slow client delays other scrapers by at most that
//! (they wait in the listen backlog).
//! Nothing a client sends is kept beyond its connection, and no HTTP crate is involved:
//! the request line and the `Accept` header are all that is read.
//!
//! System calls, for the seccomp allowlist: `accept4`, `setsockopt` (`SO_RCVTIMEO`,
//! `SO_SNDTIMEO`), `read`, `sendmsg` (with `MSG_NOSIGNAL`: a client gone before the
//! answer costs an `EPIPE`, never a signal), `close`, `clock_gettime`, and
//! `clock_nanosleep` (the back-off after a failed accept).

use std::io;
use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lisafs_server::metrics::{Format, Metrics};
use rustix::io::Errno;
use rustix::net::sockopt::Timeout;
use rustix::net::{SendAncillaryBuffer, SendFlags, SocketFlags};

/// The longest request head (request line and headers) read; a longer one gets 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// How long a client may take to send its request head, counted from the accept; and
/// again to take the answer, counted from when it is ready.
pub const DEADLINE: Duration = Duration::from_secs(3);

/// The pause after an accept that failed for want of a resource (`EMFILE`, `ENOBUFS`):
/// the pending connection is still there, so retrying at once would spin.
const BACKOFF: Duration = Duration::from_millis(100);

/// A listening socket at `path`, mode 0600 (whoever can connect reads the metrics),
/// replacing a stale socket file (nothing listens on it) but nothing else. Call it before
/// the gofer confines itself: afterwards `path` is out of reach.
pub fn listen(path: &Path) -> io::Result<OwnedFd> {
    crate::socket_file::listen_at(path).map(|(socket, _file)| socket)
}

/// Runs [`serve`] on a new thread named `lisafs-metrics`, logging why it stopped.
pub fn spawn(listener: OwnedFd, metrics: Arc<Metrics>) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lisafs-metrics".into())
        .spawn(move || match serve(listener, metrics) {
            Ok(()) => tracing::debug!("metrics endpoint: listening socket shut down"),
            Err(err) => tracing::error!("metrics endpoint stopped: {err}"),
        })
}

/// Accepts connections on `listener` (a listening Unix stream socket, as [`listen`]
/// makes) and answers each, one at a time, on the calling thread. Returns `Ok` once the
/// listening socket is shut down (`shutdown(2)` on a duplicate of it), and an error if it
/// is not a listening socket at all; failures of single connections only end them.
pub fn serve(listener: OwnedFd, metrics: Arc<Metrics>) -> io::Result<()> {
    loop {
        match rustix::net::accept_with(&listener, SocketFlags::CLOEXEC) {
            Ok(conn) => {
                if let Err(err) = exchange(conn.as_fd(), &metrics) {
                    tracing::debug!("metrics request: {err}");
                }
            }
            Err(Errno::INTR | Errno::CONNABORTED) => {}
            Err(Errno::INVAL) => return Ok(()),
            Err(err @ (Errno::BADF | Errno::NOTSOCK | Errno::OPNOTSUPP | Errno::FAULT)) => {
                return Err(err.into())
            }
            Err(err) => {
                tracing::warn!("metrics endpoint: accept: {err}");
                std::thread::sleep(BACKOFF);
            }
        }
    }
}

/// Reads one request from `conn` and writes its answer, each within [`DEADLINE`].
fn exchange(conn: BorrowedFd<'_>, metrics: &Metrics) -> io::Result<()> {
    let mut buf = vec![0; MAX_HEAD];
    let answer = match read_head(conn, &mut buf, Instant::now() + DEADLINE) {
        Ok(len) => respond(&buf[..len], metrics),
        Err(Head::TooLarge) => plain(431, "Request Header Fields Too Large"),
        Err(Head::TimedOut) => plain(408, "Request Timeout"),
        Err(Head::Closed) => return Ok(()),
        Err(Head::Failed(err)) => return Err(err.into()),
    };
    // A 408 is due exactly when the first deadline has passed.
    send_all(conn, &answer, Instant::now() + DEADLINE)
}

/// Why no request head was read.
#[derive(Debug)]
enum Head {
    /// [`MAX_HEAD`] bytes without the blank line that ends a head.
    TooLarge,
    /// The deadline passed first.
    TimedOut,
    /// The client closed its end first.
    Closed,
    Failed(Errno),
}

/// Reads into `buf` until it holds a whole request head; returns the head's length.
fn read_head(conn: BorrowedFd<'_>, buf: &mut [u8], deadline: Instant) -> Result<usize, Head> {
    let mut len = 0;
    loop {
        if len == buf.len() {
            return Err(Head::TooLarge);
        }
        let left = time_left(deadline).ok_or(Head::TimedOut)?;
        rustix::net::sockopt::set_socket_timeout(conn, Timeout::Recv, Some(left))
            .map_err(Head::Failed)?;
        let n = match rustix::io::read(conn, &mut buf[len..]) {
            Ok(0) => return Err(Head::Closed),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Err(Head::TimedOut),
            Err(err) => return Err(Head::Failed(err)),
        };
        // The end may straddle the previous read.
        let from = len.saturating_sub(3);
        len += n;
        if let Some(end) = head_end(&buf[from..len]) {
            return Ok(from + end);
        }
    }
}

/// Where the blank line that ends a head ends (`\r\n\r\n`, or bare `\n\n`), if it is there.
fn head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find_map(|i| {
        let rest = &bytes[i..];
        if rest.starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if rest.starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// Writes all of `data` before `deadline`.
fn send_all(conn: BorrowedFd<'_>, mut data: &[u8], deadline: Instant) -> io::Result<()> {
    let timed_out = || io::Error::from(io::ErrorKind::TimedOut);
    while !data.is_empty() {
        let left = time_left(deadline).ok_or_else(timed_out)?;
        rustix::net::sockopt::set_socket_timeout(conn, Timeout::Send, Some(left))?;
        let mut control = SendAncillaryBuffer::default();
        match rustix::net::sendmsg(
            conn,
            &[IoSlice::new(data)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err(timed_out()),
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// The time until `deadline`, if any is left (a socket timeout of zero means none).
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// The parts of a request the endpoint looks at.
#[derive(Debug, PartialEq, Eq)]
struct Request<'a> {
    method: &'a str,
    /// The target's path, without a query; from an absolute-form target too.
    path: &'a str,
    accept: Option<&'a str>,
}

/// Parses a request head; `None` if it is not HTTP/1.x.
fn parse(head: &[u8]) -> Option<Request<'_>> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split('\n').map(|line| line.trim_end_matches('\r'));
    let mut words = lines.next()?.split(' ');
    let (method, target, version) = (words.next()?, words.next()?, words.next()?);
    if words.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    let path = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |slash| &rest[slash..]),
        None => target,
    };
    let path = path.split(['?', '#']).next()?;
    let accept = lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim());
    Some(Request {
        method,
        path,
        accept,
    })
}

/// The whole answer to a request head.
fn respond(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let Some(request) = parse(head) else {
        return plain(400, "Bad Request");
    };
    let head_only = match request.method {
        "GET" => false,
        "HEAD" => true,
        _ => return answer(405, "Method Not Allowed", "Allow: GET, HEAD\r\n", None),
    };
    if request.path != "/metrics" {
        return plain(404, "Not Found");
    }
    let format = negotiate(request.accept);
    let body = metrics.render(format);
    let mut out = answer(200, "OK", "", Some((format.content_type(), body.len())));
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// OpenMetrics if the client lists it, else the Prometheus text format.
fn negotiate(accept: Option<&str>) -> Format {
    match accept {
        Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
        _ => Format::Prometheus,
    }
}

/// An answer whose body is its reason phrase.
fn plain(status: u16, reason: &str) -> Vec<u8> {
    let body = format!("{reason}\n");
    let mut out = answer(
        status,
        reason,
        "",
        Some(("text/plain; charset=utf-8", body.len())),
    );
    out.extend_from_slice(body.as_bytes());
    out
}

/// A status line and headers; `body` is the content type and length, if any.
fn answer(status: u16, reason: &str, extra: &str, body: Option<(&str, usize)>) -> Vec<u8> {
    let (kind, len) = body.unwrap_or(("text/plain; charset=utf-8", 0));
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {len}\r\n\
         {extra}Connection: close\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(bytes: &[u8]) -> String {
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[test]
    fn request_lines_and_accept_are_parsed() {
        let head = b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nACCEPT: text/plain\r\n\r\n";
        let want = Request {
            method: "GET",
            path: "/metrics",
            accept: Some("text/plain"),
        };
        assert_eq!(parse(head), Some(want));
        let absolute = parse(b"GET http://x/metrics HTTP/1.0\n\n").expect("absolute form");
        assert_eq!((absolute.path, absolute.accept), ("/metrics", None));
        assert_eq!(
            parse(b"GET http://x HTTP/1.1\r\n\r\n").map(|r| r.path),
            Some("/")
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET /metrics HTTP/2.0\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"\xff /metrics HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn head_end_finds_crlf_and_bare_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\n"), None);
    }

    #[test]
    fn answers_by_method_path_and_accept() {
        let metrics = Metrics::new();
        let get = text(&respond(b"GET /metrics HTTP/1.1\r\n\r\n", &metrics));
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n"), "{get}");
        assert!(get.contains("Content-Type: text/plain; version=0.0.4"));
        assert!(get.contains("Connection: close\r\n"));
        let (head, body) = get.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("# TYPE lisafs_requests_total counter"));

        let om = "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\r\n";
        let om = text(&respond(om.as_bytes(), &metrics));
        assert!(om.contains("Content-Type: application/openmetrics-text; version=1.0.0"));
        assert!(om.ends_with("# EOF\n"));

        let head = text(&respond(b"HEAD /metrics HTTP/1.1\r\n\r\n", &metrics));
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"));

        let other = text(&respond(b"GET /other HTTP/1.1\r\n\r\n", &metrics));
        assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"));
        let post = text(&respond(b"POST /metrics HTTP/1.1\r\n\r\n", &metrics));
        assert!(post.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(post.contains("Allow: GET, HEAD\r\n"));
        let junk = text(&respond(b"hello\r\n\r\n", &metrics));
        assert!(junk.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    }
}
