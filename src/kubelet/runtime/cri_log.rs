//! Container log files in the CRI format the kubelet reads (k8s: pkg/kubelet/kuberuntime/logs):
//! one line per record, `<RFC 3339 nanosecond time> <stdout|stderr> <F|P> <text>`, where `P`
//! marks a partial line continued by the next record. The process runtime's shim writes them;
//! pods/log reads them here with the PodLogOptions.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::jiff::Timestamp;

use super::{LogOptions, Logs};

/// Longest record the shim writes; a longer line is split into partial records (k8s: 16 KiB).
pub const MAX_RECORD: usize = 16 * 1024;

/// One record for `text` (without its newline) written at `at`.
pub fn record(at: SystemTime, stream: &str, partial: bool, text: &[u8]) -> Vec<u8> {
    let ts = timestamp(at);
    let mut out = format!(
        "{} {stream} {} ",
        ts.strftime("%Y-%m-%dT%H:%M:%S.%9fZ"),
        if partial { "P" } else { "F" }
    )
    .into_bytes();
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// A parsed record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub partial: bool,
    pub text: &'a [u8],
}

pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or(b"");
    Some(Record {
        time,
        partial: tag == b"P",
        text,
    })
}

/// What a reader shows for one record: its text, a newline unless partial, and with
/// `timestamps` the record's time first (as kubectl shows it).
fn render(r: &Record<'_>, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        out.extend_from_slice(r.time.as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(r.text);
    if !r.partial {
        out.push(b'\n');
    }
}

fn since_cutoff(opts: &LogOptions) -> Option<Timestamp> {
    let secs = opts.since_seconds.filter(|s| *s > 0)?;
    let at = SystemTime::now().checked_sub(Duration::from_secs(secs as u64))?;
    Some(timestamp(at))
}

fn timestamp(at: SystemTime) -> Timestamp {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| Timestamp::from_nanosecond(d.as_nanos() as i128).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

fn keep(r: &Record<'_>, cutoff: Option<Timestamp>) -> bool {
    match cutoff {
        None => true,
        Some(c) => r.time.parse::<Timestamp>().map(|t| t >= c).unwrap_or(true),
    }
}

/// The log as it is now, after tailLines/sinceSeconds, and the file offset it ends at.
pub fn read_now(path: &PathBuf, opts: &LogOptions) -> std::io::Result<(Vec<u8>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)?;
    // Only whole records: a record the shim is half-way through writing comes with `follow`.
    let end = raw.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let cutoff = since_cutoff(opts);
    let records: Vec<Record<'_>> = raw[..end]
        .split_inclusive(|b| *b == b'\n')
        .filter_map(parse)
        .filter(|r| keep(r, cutoff))
        .collect();
    // tailLines counts whole lines: a line is its partial records and the final one.
    let skip = match opts.tail_lines {
        Some(n) if n >= 0 => {
            let mut lines = 0i64;
            let mut start = records.len();
            for (i, r) in records.iter().enumerate().rev() {
                if !r.partial {
                    if lines == n {
                        break;
                    }
                    lines += 1;
                }
                start = i;
            }
            start
        }
        _ => 0,
    };
    let mut out = Vec::new();
    for r in &records[skip..] {
        render(r, opts.timestamps, &mut out);
    }
    Ok((out, end as u64))
}

/// Streams a log file with `opts`. With `follow`, records appended later come too, until
/// `running()` says the container stopped and the file has no more.
pub fn stream(
    path: PathBuf,
    opts: LogOptions,
    running: impl Fn() -> bool + Send + 'static,
) -> std::io::Result<Logs> {
    let (first, offset) = read_now(&path, &opts)?;
    let limit = opts.limit_bytes.filter(|l| *l > 0).map(|l| l as usize);
    let head = futures::stream::iter([Bytes::from(first)]);
    if !opts.follow {
        return Ok(limit_bytes(head.boxed(), limit));
    }
    let state = (
        path,
        offset,
        Vec::<u8>::new(),
        running,
        opts.timestamps,
        false,
    );
    let tail = futures::stream::unfold(state, |mut st| async move {
        let (path, offset, pending, running, timestamps, done) = &mut st;
        loop {
            if *done {
                return None;
            }
            // Read what was appended; stop after a last look once the container stopped.
            let stopped = !running();
            let mut chunk = Vec::new();
            if let Ok(mut f) = std::fs::File::open(&*path) {
                if f.seek(SeekFrom::Start(*offset)).is_ok() {
                    let mut r = BufReader::new(f);
                    let mut line = Vec::new();
                    while r.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                        *offset += line.len() as u64;
                        pending.extend_from_slice(&line);
                        line.clear();
                        if pending.ends_with(b"\n") {
                            if let Some(rec) = parse(pending) {
                                render(&rec, *timestamps, &mut chunk);
                            }
                            pending.clear();
                        }
                    }
                }
            }
            if stopped {
                *done = true;
            }
            if !chunk.is_empty() {
                return Some((Bytes::from(chunk), st));
            }
            if *done {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Ok(limit_bytes(head.chain(tail).boxed(), limit))
}

/// Cuts a stream after `limit` bytes (k8s: limitBytes).
pub fn limit_bytes(s: Logs, limit: Option<usize>) -> Logs {
    let Some(limit) = limit else {
        return s;
    };
    s.scan(limit, |left, chunk| {
        let out = if *left == 0 {
            None
        } else {
            let n = chunk.len().min(*left);
            *left -= n;
            Some(chunk.slice(..n))
        };
        futures::future::ready(out)
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(lines: &[(&str, bool, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.log");
        let mut data = Vec::new();
        for (i, (stream, partial, text)) in lines.iter().enumerate() {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64);
            data.extend(record(at, stream, *partial, text.as_bytes()));
        }
        std::fs::write(&path, data).expect("write");
        (dir, path)
    }

    #[test]
    fn records_round_trip() {
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let r = record(at, "stdout", false, b"hello world");
        assert_eq!(
            String::from_utf8(r.clone()).unwrap(),
            "2023-11-14T22:13:20.000000005Z stdout F hello world\n"
        );
        let p = parse(&r).expect("parses");
        assert_eq!(p.text, b"hello world");
        assert!(!p.partial);
    }

    #[test]
    fn read_with_options() {
        let (_d, path) = write(&[
            ("stdout", false, "one"),
            ("stderr", true, "tw"),
            ("stderr", false, "o"),
            ("stdout", false, "three"),
        ]);
        let cases: &[(LogOptions, &str)] = &[
            (LogOptions::default(), "one\ntwo\nthree\n"),
            (
                LogOptions {
                    tail_lines: Some(2),
                    ..Default::default()
                },
                "two\nthree\n",
            ),
            (
                LogOptions {
                    tail_lines: Some(0),
                    ..Default::default()
                },
                "",
            ),
            (
                LogOptions {
                    tail_lines: Some(1),
                    timestamps: true,
                    ..Default::default()
                },
                "2023-11-14T22:13:23.000000000Z three\n",
            ),
        ];
        for (opts, want) in cases {
            let (got, _) = read_now(&path, opts).expect("reads");
            assert_eq!(String::from_utf8(got).unwrap(), *want, "{opts:?}");
        }
    }

    #[tokio::test]
    async fn limit_and_follow() {
        let (_d, path) = write(&[("stdout", false, "abcdef")]);
        let opts = LogOptions {
            limit_bytes: Some(3),
            ..Default::default()
        };
        let got: Vec<Bytes> = stream(path.clone(), opts, || false)
            .unwrap()
            .collect()
            .await;
        assert_eq!(got.concat(), b"abc");

        // Follow: a record appended later arrives; the stream ends once the container stopped.
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r = running.clone();
        let opts = LogOptions {
            follow: true,
            ..Default::default()
        };
        let mut s = stream(path.clone(), opts, move || {
            r.load(std::sync::atomic::Ordering::SeqCst)
        })
        .unwrap();
        assert_eq!(s.next().await.unwrap(), Bytes::from("abcdef\n"));
        let mut more = std::fs::read(&path).unwrap();
        more.extend(record(SystemTime::now(), "stdout", false, b"later"));
        std::fs::write(&path, more).unwrap();
        assert_eq!(s.next().await.unwrap(), Bytes::from("later\n"));
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(s.next().await, None);
    }
}
