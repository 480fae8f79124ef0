//! The renderer's output shape, checked by parsing it back.

use std::collections::BTreeMap;

use super::*;

/// One sample line: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the sample lines of an exposition; panics on a malformed one.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split(',')
                        .map(|pair| {
                            let (key, value) = pair.split_once('=').expect("key=value");
                            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
                            (key.to_owned(), value.expect("quoted").to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = samples.iter().filter(|s| {
        s.name == name
            && labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    });
    let first = found.next()?;
    assert!(found.next().is_none(), "{name} {labels:?} is ambiguous");
    Some(first.value)
}

fn micros(n: u64) -> Duration {
    Duration::from_micros(n)
}

#[test]
fn buckets_are_the_first_bound_at_least_the_duration() {
    assert_eq!(bucket(0), 0);
    assert_eq!(bucket(1_000), 0, "1 µs is within le=1µs");
    assert_eq!(bucket(1_001), 1);
    assert_eq!(bucket(2_000), 1);
    assert_eq!(bucket(3_000), 2);
    assert_eq!(bucket(4_000), 2);
    assert_eq!(bucket(4_001), 3);
    assert_eq!(bucket(1_048_576_000), FINITE_BUCKETS - 1, "2^20 µs");
    assert_eq!(bucket(1_048_577_000), FINITE_BUCKETS, "+Inf");
    assert_eq!(bucket(u64::MAX), FINITE_BUCKETS);
}

#[test]
fn bounds_are_exact_decimal_seconds() {
    assert_eq!(seconds_of_micros(1), "0.000001");
    assert_eq!(seconds_of_micros(1 << 10), "0.001024");
    assert_eq!(seconds_of_micros(1 << 20), "1.048576");
}

#[test]
fn mid_names_are_the_protocol_names() {
    for mid in Mid::ALL {
        assert_eq!(mid_name(usize::from(mid.as_u16())), format!("{mid:?}"));
    }
    assert_eq!(mid_name(UNKNOWN_MID), "unknown");
}

#[test]
fn errno_names_agree_with_the_protocol_crate() {
    for (value, name) in ERRNO_NAMES.iter().enumerate() {
        let errno = Errno(u32::try_from(value).unwrap_or(0));
        if let Some(known) = errno.name() {
            assert_eq!(*name, known, "errno {value}");
        }
    }
}

/// A few recorded requests, as the tests below render them.
fn sample_metrics() -> Metrics {
    let m = Metrics::new();
    let fstat = Mid::FStat.as_u16();
    m.record(fstat, None, micros(1));
    m.record(fstat, None, micros(3));
    m.record(fstat, Some(Errno::EBADF), micros(2_000_000));
    let walk = Mid::Walk.as_u16();
    m.record(walk, Some(Errno::ENOENT), micros(10));
    m.record(walk, Some(Errno(41)), micros(10));
    m.record(walk, Some(Errno(5000)), micros(10));
    m.record(999, Some(Errno::EOPNOTSUPP), Duration::ZERO);
    m.add_read(100);
    m.add_written(7);
    m.fd_added(FdKind::Control);
    m.fd_added(FdKind::Control);
    m.fd_added(FdKind::Open);
    m.fd_removed(FdKind::Control);
    m.channel_started();
    m.channel_started();
    m.channel_ended();
    m
}

#[test]
fn prometheus_text_has_the_recorded_values() {
    let m = sample_metrics();
    let _live = m.connection();
    let ended = m.connection();
    drop(ended);
    let text = m.render(Format::Prometheus);
    let s = samples(&text);

    assert!(text.contains("# TYPE lisafs_requests_total counter\n"));
    assert!(text.contains("# TYPE lisafs_request_duration_seconds histogram\n"));
    assert!(text.contains("# TYPE lisafs_fds gauge\n"));
    assert!(!text.contains("# EOF"));

    let req = "lisafs_requests_total";
    assert_eq!(value(&s, req, &[("mid", "FStat")]), Some(3.0));
    assert_eq!(value(&s, req, &[("mid", "Walk")]), Some(3.0));
    assert_eq!(value(&s, req, &[("mid", "unknown")]), Some(1.0));
    assert_eq!(
        value(&s, req, &[("mid", "Mount")]),
        None,
        "unseen MIDs are left out"
    );

    let err = "lisafs_errors_total";
    assert_eq!(
        value(&s, err, &[("mid", "FStat"), ("errno", "EBADF")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, err, &[("mid", "Walk"), ("errno", "ENOENT")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, err, &[("mid", "Walk"), ("errno", "41")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, err, &[("mid", "Walk"), ("errno", "other")]),
        Some(1.0)
    );
    let unknown = [("mid", "unknown"), ("errno", "EOPNOTSUPP")];
    assert_eq!(value(&s, err, &unknown), Some(1.0));
    assert_eq!(s.iter().filter(|x| x.name == err).count(), 5);

    let bucket = "lisafs_request_duration_seconds_bucket";
    let fstat = |le| value(&s, bucket, &[("mid", "FStat"), ("le", le)]);
    assert_eq!(fstat("0.000001"), Some(1.0));
    assert_eq!(fstat("0.000002"), Some(1.0));
    assert_eq!(fstat("0.000004"), Some(2.0));
    assert_eq!(fstat("1.048576"), Some(2.0));
    assert_eq!(fstat("+Inf"), Some(3.0));
    let count = "lisafs_request_duration_seconds_count";
    assert_eq!(value(&s, count, &[("mid", "FStat")]), Some(3.0));
    let sum = value(
        &s,
        "lisafs_request_duration_seconds_sum",
        &[("mid", "FStat")],
    );
    assert_eq!(sum, Some(2.000004));

    assert_eq!(value(&s, "lisafs_read_bytes_total", &[]), Some(100.0));
    assert_eq!(value(&s, "lisafs_written_bytes_total", &[]), Some(7.0));
    assert_eq!(value(&s, "lisafs_fds", &[("kind", "control")]), Some(1.0));
    assert_eq!(value(&s, "lisafs_fds", &[("kind", "open")]), Some(1.0));
    assert_eq!(
        value(&s, "lisafs_fds", &[("kind", "bound_socket")]),
        Some(0.0)
    );
    assert_eq!(value(&s, "lisafs_connections", &[]), Some(1.0));
    assert_eq!(value(&s, "lisafs_connections_opened_total", &[]), Some(2.0));
    assert_eq!(value(&s, "lisafs_channels", &[]), Some(1.0));
    assert_eq!(value(&s, "lisafs_channels_opened_total", &[]), Some(2.0));
}

#[test]
fn every_histogram_is_cumulative_and_ends_with_its_count() {
    let m = sample_metrics();
    let s = samples(&m.render(Format::Prometheus));
    for mid in ["FStat", "Walk", "unknown"] {
        let buckets: Vec<&Sample> = s
            .iter()
            .filter(|x| {
                x.name == "lisafs_request_duration_seconds_bucket" && x.labels["mid"] == mid
            })
            .collect();
        assert_eq!(buckets.len(), BUCKETS, "{mid}");
        let bounds: Vec<f64> = buckets
            .iter()
            .map(|b| match b.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                le => le.parse().expect("a float bound"),
            })
            .collect();
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "{mid}: bounds increase"
        );
        assert!(
            buckets.windows(2).all(|w| w[0].value <= w[1].value),
            "{mid}: counts are cumulative"
        );
        let count = value(&s, "lisafs_request_duration_seconds_count", &[("mid", mid)]);
        assert_eq!(buckets.last().map(|b| b.value), count, "{mid}");
        let requests = value(&s, "lisafs_requests_total", &[("mid", mid)]);
        assert_eq!(requests, count, "{mid}");
    }
}

#[test]
fn openmetrics_names_families_without_total_and_ends_with_eof() {
    let m = sample_metrics();
    let text = m.render(Format::OpenMetrics);
    assert!(text.ends_with("\n# EOF\n"));
    assert_eq!(text.matches("# EOF").count(), 1);
    let mut families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("name and type");
            assert!(!name.ends_with("_total"), "{name}");
            assert!(families.insert(name.to_owned(), kind.to_owned()).is_none());
        }
    }
    assert_eq!(families["lisafs_requests"], "counter");
    assert_eq!(families["lisafs_request_duration_seconds"], "histogram");
    // Every sample belongs to a declared family, with the suffix its type allows.
    for sample in samples(&text) {
        let owner = families.iter().find(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                _ => &[""],
            };
            suffixes
                .iter()
                .any(|suffix| sample.name == format!("{family}{suffix}"))
        });
        assert!(owner.is_some(), "{} has no family", sample.name);
    }
}

#[test]
fn a_fresh_set_renders_zeros_and_no_per_mid_series() {
    let text = Metrics::new().render(Format::Prometheus);
    let s = samples(&text);
    assert!(s.iter().all(|x| x.value == 0.0));
    assert!(!s.iter().any(|x| x.labels.contains_key("mid")));
    // Every family still has its HELP and TYPE.
    assert_eq!(
        text.matches("# HELP ").count(),
        text.matches("# TYPE ").count()
    );
    assert_eq!(text.matches("# TYPE ").count(), 10);
}

#[test]
fn added_counters_are_read_at_each_rendering_in_both_formats() {
    let metrics = Metrics::new();
    let kept = std::sync::Arc::new(AtomicU64::new(3));
    let read = std::sync::Arc::clone(&kept);
    metrics.add_counter("lisafs_things_lost", "Things lost.", move || {
        read.load(Relaxed)
    });
    let text = metrics.render(Format::Prometheus);
    assert!(
        text.contains("# TYPE lisafs_things_lost_total counter\n"),
        "{text}"
    );
    assert_eq!(
        value(&samples(&text), "lisafs_things_lost_total", &[]),
        Some(3.0)
    );
    kept.store(7, Relaxed);
    let text = metrics.render(Format::OpenMetrics);
    assert!(
        text.contains("# TYPE lisafs_things_lost counter\n"),
        "{text}"
    );
    assert_eq!(
        value(&samples(&text), "lisafs_things_lost_total", &[]),
        Some(7.0)
    );
    assert!(text.ends_with("# EOF\n"));
}
