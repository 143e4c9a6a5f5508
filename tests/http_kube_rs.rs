//! End-to-end: kube-rs against `gantry server`. Its `runtime::watcher` on pods keeps going
//! across a server restart on the same data directory (it re-watches, or relists after 410).

mod common;

use std::time::Duration;

use common::{free_port, GantryServer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Config};

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

async fn client(server: &GantryServer) -> Client {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Whether the watcher reports `want` within 30 s.
async fn wait_for(seen: &mut tokio::sync::mpsc::UnboundedReceiver<String>, want: &str) -> bool {
    let found = async {
        while let Some(name) = seen.recv().await {
            if name == want {
                return true;
            }
        }
        false
    };
    tokio::time::timeout(Duration::from_secs(30), found)
        .await
        .unwrap_or(false)
}

#[test]
fn the_kube_rs_watcher_survives_a_server_restart() {
    let port = free_port();
    let server = GantryServer::start_at(tempfile::tempdir().unwrap(), port);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let pods: Api<Pod> = Api::namespaced(client(&server).await, "default");
        pods.create(&PostParams::default(), &pod("before"))
            .await
            .expect("create");
        let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let watch = tokio::spawn(
            watcher(pods.clone(), watcher::Config::default())
                .default_backoff()
                .applied_objects()
                // A broken connection is an error the stream reports and then retries.
                .for_each(move |p: Result<Pod, watcher::Error>| {
                    if let Ok(p) = p {
                        let _ = tx.send(p.metadata.name.unwrap_or_default());
                    }
                    futures::future::ready(())
                }),
        );
        assert!(
            wait_for(&mut seen, "before").await,
            "the watcher sees the first pod"
        );
        // Restart on the same data directory and port.
        let dir = server.stop_keeping_data();
        let server = GantryServer::start_at(dir, port);
        let pods: Api<Pod> = Api::namespaced(client(&server).await, "default");
        pods.create(&PostParams::default(), &pod("after"))
            .await
            .expect("create after restart");
        assert!(
            wait_for(&mut seen, "after").await,
            "the watcher sees a pod created after the restart"
        );
        let listed: Vec<String> = pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        assert_eq!(listed, ["after", "before"]);
        watch.abort();
        let _ = watch.await;
        drop(server);
    });
}
