//! EtcdStore when etcd is missing or goes away: clear errors naming the endpoint, never a
//! panic or a hang.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use gantry::store::etcd::{EtcdConfig, EtcdStore};
use gantry::store::{Store, StoreError};

fn quick() -> EtcdConfig {
    EtcdConfig {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(3),
        ..EtcdConfig::default()
    }
}

#[tokio::test]
async fn an_etcd_that_is_down_is_named_in_the_error() {
    let endpoint = format!("http://127.0.0.1:{}", common::free_port());
    let started = Instant::now();
    let e = match EtcdStore::connect(&endpoint, quick()).await {
        Ok(_) => panic!("connected to nothing at {endpoint}"),
        Err(e) => e,
    };
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains(&endpoint), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_etcd_that_goes_away_fails_requests_and_ends_watches() {
    let etcd = common::EtcdServer::start().await;
    let store = EtcdStore::connect(&etcd.endpoint, quick()).await.unwrap();
    store.create("/x", Bytes::from_static(b"1")).await.unwrap();
    let mut watch = store
        .watch("/", store.current_revision().await.unwrap())
        .await
        .unwrap();
    let endpoint = etcd.endpoint.clone();
    drop(etcd);

    let e = store
        .create("/y", Bytes::from_static(b"2"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Unavailable { .. } | StoreError::Timeout { .. }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains(&endpoint), "{e}");
    let item = tokio::time::timeout(Duration::from_secs(20), watch.next())
        .await
        .expect("the watch ends instead of hanging");
    assert!(
        matches!(item, Some(Err(StoreError::WatchClosed { .. })) | None),
        "{item:?}"
    );
}
