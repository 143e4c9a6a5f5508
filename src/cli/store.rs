//! `gantry store`: direct access to the versioned store, for inspection and debugging.

use std::io::Write;
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use gantry::store::backend::{Backend, BackendConfig, DATA_FILE};
use gantry::store::embedded::{EmbeddedConfig, EmbeddedStore};
use gantry::store::{EventKind, KeyValue, Store, StoreError};

#[derive(Args, Debug)]
pub struct StoreArgs {
    /// Data directory of the embedded store (created if missing).
    #[arg(long, default_value = "gantry-data")]
    data_dir: PathBuf,
    /// Use etcd at this endpoint (e.g. http://127.0.0.1:2379) instead of the data directory.
    #[arg(long)]
    etcd: Option<String>,
    #[command(subcommand)]
    op: StoreOp,
}

#[derive(Subcommand, Debug)]
enum StoreOp {
    /// Print the backend and its current revision.
    Status,
    /// Print one key.
    Get { key: String },
    /// Print every key under a prefix and the revision of the list.
    List {
        #[arg(default_value = "/")]
        prefix: String,
    },
    /// Create a key, or replace it (with --if-revision, only if unchanged since that revision).
    Put {
        key: String,
        value: String,
        #[arg(long)]
        if_revision: Option<u64>,
    },
    /// Delete a key.
    Delete {
        key: String,
        #[arg(long)]
        if_revision: Option<u64>,
    },
    /// Print changes under a prefix after a revision (default: from now), one line each.
    Watch {
        #[arg(default_value = "/")]
        prefix: String,
        #[arg(long)]
        after: Option<u64>,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Forget the history up to and including a revision.
    Compact { revision: u64 },
    /// Test helper: write sequential keys from several writers forever, printing
    /// `ack <key> <revision>` after each acknowledged write (the crash test kills it).
    #[command(hide = true)]
    WriteLoop {
        #[arg(long, default_value_t = 8)]
        writers: usize,
        #[arg(long)]
        prefix: String,
    },
}

fn show(kv: &KeyValue) -> String {
    format!(
        "{} create={} mod={} {}",
        kv.key,
        kv.create_revision,
        kv.mod_revision,
        String::from_utf8_lossy(&kv.value)
    )
}

pub fn run(args: StoreArgs) -> Result<(), String> {
    if let StoreOp::WriteLoop { writers, prefix } = &args.op {
        return write_loop(&args.data_dir, *writers, prefix);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(run_async(args)).map_err(|e| e.to_string())
}

async fn run_async(args: StoreArgs) -> Result<(), StoreError> {
    let config = match args.etcd {
        Some(endpoint) => BackendConfig::Etcd { endpoint },
        None => BackendConfig::Embedded {
            data_dir: args.data_dir,
        },
    };
    let store = Backend::open(&config).await?;
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
    };
    match args.op {
        StoreOp::Status => say(format!(
            "{} revision={}",
            store.describe(),
            store.current_revision().await?
        )),
        StoreOp::Get { key } => match store.get(&key).await? {
            Some(kv) => say(show(&kv)),
            None => return Err(StoreError::NotFound { key }),
        },
        StoreOp::List { prefix } => {
            let list = store.list(&prefix).await?;
            for kv in &list.items {
                say(show(kv));
            }
            say(format!(
                "revision={} items={}",
                list.revision,
                list.items.len()
            ));
        }
        StoreOp::Put {
            key,
            value,
            if_revision,
        } => {
            let value = Bytes::from(value.into_bytes());
            let rev = match store.update(&key, value.clone(), if_revision).await {
                Err(StoreError::NotFound { .. }) if if_revision.is_none() => {
                    store.create(&key, value).await?
                }
                other => other?,
            };
            say(format!("revision={rev}"));
        }
        StoreOp::Delete { key, if_revision } => {
            let deleted = store.delete(&key, if_revision).await?;
            say(format!("revision={}", deleted.revision));
        }
        StoreOp::Watch {
            prefix,
            after,
            count,
        } => {
            let after = match after {
                Some(a) => a,
                None => store.current_revision().await?,
            };
            let mut watch = store.watch(&prefix, after).await?;
            let mut seen = 0;
            while count.is_none_or(|c| seen < c) {
                match watch.next().await {
                    Some(Ok(ev)) => {
                        let kind = match ev.kind {
                            EventKind::Added => "ADDED",
                            EventKind::Modified => "MODIFIED",
                            EventKind::Deleted => "DELETED",
                        };
                        say(format!("{kind} {}", show(&ev.kv)));
                        seen += 1;
                    }
                    Some(Err(e)) => return Err(e),
                    None => break,
                }
            }
        }
        StoreOp::Compact { revision } => {
            store.compact(revision).await?;
            say(format!("compacted={revision}"));
        }
        StoreOp::WriteLoop { .. } => unreachable!("handled before the runtime starts"),
    }
    Ok(())
}

fn write_loop(data_dir: &std::path::Path, writers: usize, prefix: &str) -> Result<(), String> {
    let store = EmbeddedStore::open(data_dir.join(DATA_FILE), EmbeddedConfig::default())
        .map_err(|e| e.to_string())?;
    std::thread::scope(|scope| {
        for w in 0..writers.max(1) {
            let store = &store;
            scope.spawn(move || {
                for n in 0u64.. {
                    let key = format!("{prefix}/w{w}/{n:08}");
                    let value = Bytes::from(key.clone().into_bytes());
                    match futures::executor::block_on(store.create(&key, value)) {
                        Ok(rev) => {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "ack {key} {rev}");
                            let _ = out.flush();
                        }
                        Err(e) => {
                            eprintln!("write {key} failed: {e}");
                            return;
                        }
                    }
                }
            });
        }
    });
    Ok(())
}
