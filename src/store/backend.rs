//! The store a real process runs on, chosen at start-up: the embedded file by default, etcd when
//! an endpoint is given.

use std::path::PathBuf;

use bytes::Bytes;

use super::embedded::{EmbeddedConfig, EmbeddedStore};
use super::etcd::{EtcdConfig, EtcdStore};
use super::{Deleted, KeyValue, ListResult, Result, Revision, Store, StoreError, Watch};

/// Where the data lives.
#[derive(Clone, Debug)]
pub enum BackendConfig {
    /// A data directory holding `store.redb`; created if missing.
    Embedded {
        data_dir: PathBuf,
    },
    Etcd {
        endpoint: String,
    },
}

/// The name of the data file inside a data directory.
pub const DATA_FILE: &str = "store.redb";

pub enum Backend {
    Embedded(EmbeddedStore),
    Etcd(Box<EtcdStore>),
}

impl Backend {
    pub async fn open(config: &BackendConfig) -> Result<Backend> {
        match config {
            BackendConfig::Embedded { data_dir } => {
                std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Io {
                    path: data_dir.display().to_string(),
                    message: format!("cannot create the data directory: {e}"),
                })?;
                EmbeddedStore::open(data_dir.join(DATA_FILE), EmbeddedConfig::default())
                    .map(Backend::Embedded)
            }
            BackendConfig::Etcd { endpoint } => EtcdStore::connect(endpoint, EtcdConfig::default())
                .await
                .map(|s| Backend::Etcd(Box::new(s))),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Backend::Embedded($s) => $call.await,
            Backend::Etcd($s) => $call.await,
        }
    };
}

impl Store for Backend {
    fn describe(&self) -> String {
        match self {
            Backend::Embedded(s) => s.describe(),
            Backend::Etcd(s) => s.describe(),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        delegate!(self, s => s.current_revision())
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<Revision> {
        delegate!(self, s => s.create(key, value))
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        precondition: Option<Revision>,
    ) -> Result<Revision> {
        delegate!(self, s => s.update(key, value, precondition))
    }

    async fn delete(&self, key: &str, precondition: Option<Revision>) -> Result<Deleted> {
        delegate!(self, s => s.delete(key, precondition))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        delegate!(self, s => s.get(key))
    }

    async fn list(&self, prefix: &str) -> Result<ListResult> {
        delegate!(self, s => s.list(prefix))
    }

    async fn watch(&self, prefix: &str, after: Revision) -> Result<Watch> {
        delegate!(self, s => s.watch(prefix, after))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        delegate!(self, s => s.compact(revision))
    }
}
