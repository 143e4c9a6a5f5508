//! EmbeddedStore beyond the shared conformance suite: durability across `kill -9`, reopening,
//! and bad data files.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use futures::executor::block_on;
use gantry::store::backend::DATA_FILE;
use gantry::store::embedded::{EmbeddedConfig, EmbeddedStore};
use gantry::store::{HistoryConfig, Revision, Store, StoreError};

fn config(history_limit: u64) -> EmbeddedConfig {
    EmbeddedConfig {
        history: HistoryConfig {
            history_limit,
            watch_capacity: 10_000,
        },
        ..EmbeddedConfig::default()
    }
}

/// A small deterministic generator for kill delays; the seed is printed so a run can be
/// repeated.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    const RUNS: usize = 24;
    let seed = std::env::var("GANTRY_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15u64);
    eprintln!("crash test seed {seed} (GANTRY_CRASH_SEED to repeat)");
    let mut rng = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked: Vec<(String, Revision)> = Vec::new();
    let mut last_revision: Revision = 0;
    let mut runs_with_acks = 0;

    for run in 0..RUNS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gantry"))
            .args(["-v", "0", "store", "--data-dir"])
            .arg(dir.path())
            .args([
                "write-loop",
                "--writers",
                "8",
                "--prefix",
                &format!("/crash/{run:02}"),
            ])
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start gantry store write-loop");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        std::thread::sleep(Duration::from_millis(80 + rng.next() % 400));
        child.kill().expect("SIGKILL the writer");
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let before = acked.len();
        for line in lines {
            // A line cut by the kill has no revision and was never a complete acknowledgement.
            let mut parts = line.split(' ');
            if let (Some("ack"), Some(key), Some(rev)) = (parts.next(), parts.next(), parts.next())
            {
                if let Ok(rev) = rev.parse() {
                    acked.push((key.to_string(), rev));
                }
            }
        }
        if acked.len() > before {
            runs_with_acks += 1;
        }

        let store = EmbeddedStore::open(dir.path().join(DATA_FILE), EmbeddedConfig::default())
            .unwrap_or_else(|e| panic!("reopen after kill {run}: {e}"));
        let revision = block_on(store.current_revision()).unwrap();
        assert!(
            revision >= last_revision,
            "revision went back from {last_revision} to {revision} after kill {run}"
        );
        for (key, rev) in &acked {
            let kv = block_on(store.get(key)).unwrap().unwrap_or_else(|| {
                panic!("acknowledged write {key} (revision {rev}) lost after kill {run}")
            });
            assert_eq!(kv.mod_revision, *rev, "{key}");
            assert_eq!(kv.value, Bytes::from(key.clone().into_bytes()));
            assert!(*rev <= revision);
        }
        // The watch history continues across the restart.
        if revision > 10 {
            let mut watch = block_on(store.watch("/crash/", revision - 10)).unwrap();
            let revs: Vec<Revision> = (0..10)
                .map(|_| watch.try_next().unwrap().unwrap().revision())
                .collect();
            assert_eq!(revs, ((revision - 9)..=revision).collect::<Vec<_>>());
        }
        last_revision = revision;
    }
    eprintln!(
        "{} acknowledged writes across {RUNS} kills; final revision {last_revision}",
        acked.len()
    );
    assert!(
        runs_with_acks >= RUNS / 2,
        "only {runs_with_acks} of {RUNS} runs acknowledged anything"
    );
}

#[test]
fn reopen_continues_revision_and_history_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let store = EmbeddedStore::open(&path, config(5)).unwrap();
        for i in 0..10 {
            block_on(store.create(&format!("/k/{i}"), Bytes::from_static(b"v"))).unwrap();
        }
        block_on(store.update("/k/0", Bytes::from_static(b"w"), None)).unwrap();
    }
    let store = EmbeddedStore::open(&path, config(5)).unwrap();
    assert_eq!(block_on(store.current_revision()).unwrap(), 12);
    // Revisions 8..=12 are the retained window: a watch from 7 replays them.
    let mut watch = block_on(store.watch("/k/", 7)).unwrap();
    let revs: Vec<Revision> = std::iter::from_fn(|| watch.try_next())
        .map(|e| e.unwrap().revision())
        .collect();
    assert_eq!(revs, vec![8, 9, 10, 11, 12]);
    match block_on(store.watch("/k/", 6)) {
        Err(StoreError::Expired {
            requested,
            compacted,
            current,
        }) => assert_eq!((requested, compacted, current), (6, 7, 12)),
        other => panic!("expected Expired, got {other:?}"),
    }
    assert_eq!(block_on(store.create("/k/new", Bytes::new())).unwrap(), 13);
    assert_eq!(watch.try_next().unwrap().unwrap().revision(), 13);
    let kv = block_on(store.get("/k/0")).unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.mod_revision, &kv.value[..]),
        (2, 12, &b"w"[..])
    );
}

fn open_err(path: &std::path::Path) -> StoreError {
    match EmbeddedStore::open(path, EmbeddedConfig::default()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn bad_data_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();

    let garbage = dir.path().join("garbage.redb");
    std::fs::write(
        &garbage,
        b"this is not a database, just some bytes\n".repeat(200),
    )
    .unwrap();
    let e = open_err(&garbage);
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(e.to_string().contains("garbage.redb"), "{e}");
    // The foreign file is untouched.
    assert!(std::fs::read(&garbage)
        .unwrap()
        .starts_with(b"this is not a database"));

    let foreign = dir.path().join("foreign.redb");
    {
        let db = redb::Database::create(&foreign).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(redb::TableDefinition::<&str, u64>::new("accounts"))
                .unwrap();
            t.insert("alice", 3).unwrap();
        }
        txn.commit().unwrap();
    }
    let e = open_err(&foreign);
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(
        e.to_string().contains("foreign.redb") && e.to_string().contains("did not write"),
        "{e}"
    );

    let missing = dir.path().join("no-such-dir").join("store.redb");
    let e = open_err(&missing);
    assert!(matches!(e, StoreError::Io { .. }), "{e:?}");
    assert!(
        e.to_string().contains("no-such-dir") && e.to_string().contains("does not exist"),
        "{e}"
    );

    let e = open_err(dir.path());
    assert!(e.to_string().contains("is a directory"), "{e}");

    // An empty file is a store that was never written: it starts afresh.
    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let store = EmbeddedStore::open(&empty, EmbeddedConfig::default()).unwrap();
    assert_eq!(block_on(store.current_revision()).unwrap(), 1);

    // A second opener is refused while the first holds the file.
    let e = open_err(&empty);
    assert!(e.to_string().contains("in use"), "{e}");
}

#[test]
fn a_damaged_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    {
        let store = EmbeddedStore::open(&path, EmbeddedConfig::default()).unwrap();
        block_on(store.create("/k", Bytes::from_static(b"v"))).unwrap();
    }
    {
        // Overwrite the record with bytes too short to hold its revisions.
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, &[u8]>::new("kv"))
            .unwrap()
            .insert("/k", &[1u8, 2, 3][..])
            .unwrap();
        txn.commit().unwrap();
    }
    // The checkpoint is read whole at open: the damage is reported there, naming file and key.
    let e = match EmbeddedStore::open(&path, EmbeddedConfig::default()) {
        Ok(_) => panic!("a damaged record was accepted"),
        Err(e) => e,
    };
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert!(
        e.to_string().contains("s.redb") && e.to_string().contains("record /k"),
        "{e}"
    );
}

#[test]
fn writers_wait_for_a_lagging_checkpoint_instead_of_growing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let config = EmbeddedConfig {
        history: HistoryConfig {
            history_limit: 10,
            watch_capacity: 100,
        },
        checkpoint_interval: Duration::from_millis(20),
        max_unchecked_revisions: 5,
        wal_segment_bytes: 512,
        ..EmbeddedConfig::default()
    };
    {
        let store = EmbeddedStore::open(&path, config).unwrap();
        for i in 0..200 {
            block_on(store.create(&format!("/k/{i:03}"), Bytes::from(vec![b'v'; 100]))).unwrap();
        }
    }
    // Old segments were deleted as the checkpoint and the history window moved past them:
    // about a window's worth remains, not 200 writes' worth.
    let wal_dir = dir.path().join("s.redb.wal");
    let segments = std::fs::read_dir(&wal_dir).unwrap().count();
    assert!(
        segments <= 12,
        "{segments} log segments left in {}",
        wal_dir.display()
    );
    let store = EmbeddedStore::open(&path, config).unwrap();
    let list = block_on(store.list("/k/")).unwrap();
    assert_eq!((list.items.len(), list.revision), (200, 201));
    // The window (the last 10 revisions) came back from the log.
    let mut watch = block_on(store.watch("/k/", 191)).unwrap();
    let revs: Vec<Revision> = std::iter::from_fn(|| watch.try_next())
        .map(|e| e.unwrap().revision())
        .collect();
    assert_eq!(revs, (192..=201).collect::<Vec<_>>());
    assert!(matches!(
        block_on(store.watch("/k/", 190)),
        Err(StoreError::Expired { .. })
    ));
}
