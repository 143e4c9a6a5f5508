//! Feeding the Node authorizer's graph from the apiserver (k8s: the pod, PV and
//! VolumeAttachment informers of node.AddGraphEventHandlers): load it once at start, then apply
//! every committed write or watch event of those resources. Small functions for the host to
//! call; the request paths do not change.

use serde_json::Value;

use super::{ApiEvent, ApiServer, EventType, ListOptions};
use crate::api::registry::{self, ResourceInfo};
use crate::api::status::ApiError;
use crate::auth::node::NodeAuthorizer;
use crate::store::{Revision, Store};

/// The resources whose objects make the graph, as (group, plural).
pub const NODE_GRAPH_RESOURCES: &[(&str, &str)] = &[
    ("", "pods"),
    ("", "persistentvolumes"),
    ("storage.k8s.io", "volumeattachments"),
];

/// Whether writes of `res` change the graph.
pub fn feeds_node_graph(res: &ResourceInfo) -> bool {
    NODE_GRAPH_RESOURCES.contains(&(res.group, res.plural))
}

impl<S: Store> ApiServer<S> {
    /// Fills the graph with every stored object of the graph's resources that this server
    /// serves, and returns the revision of each list: watch each from there (or feed every
    /// committed write through [`NodeAuthorizer::observe`]) to keep it current.
    pub async fn load_node_graph(
        &self,
        authz: &mut NodeAuthorizer,
    ) -> Result<Vec<(&'static ResourceInfo, Revision)>, ApiError> {
        let mut revisions = Vec::new();
        for (group, plural) in NODE_GRAPH_RESOURCES {
            let Some(res) = registry::by_plural(group, plural) else {
                continue;
            };
            let (items, revision) = self.list(res, None, &ListOptions::default()).await?;
            for obj in &items {
                authz.observe(res.group, res.plural, None, Some(obj));
            }
            revisions.push((res, revision));
        }
        Ok(revisions)
    }
}

impl NodeAuthorizer {
    /// One watch event of `res`: an object added or modified is applied, a deleted one removed.
    pub fn observe_event(&mut self, res: &ResourceInfo, event: &ApiEvent) {
        if !feeds_node_graph(res) {
            return;
        }
        let obj: &Value = &event.object;
        match event.type_ {
            EventType::Added | EventType::Modified => {
                self.observe(res.group, res.plural, None, Some(obj))
            }
            EventType::Deleted => self.observe(res.group, res.plural, Some(obj), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::{FutureExt, StreamExt};
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::apiserver::{DeleteOptions, RequestContext};
    use crate::auth::node::NodeRequest;
    use crate::auth::UserInfo;
    use crate::store::mem::MemStore;

    fn now<F: std::future::Future>(f: F) -> F::Output {
        f.now_or_never().expect("MemStore futures are always ready")
    }

    fn ctx(n: u64) -> RequestContext {
        RequestContext::new(
            Timestamp::from_second(1_700_000_000).unwrap(),
            format!("00000000-0000-4000-8000-{n:012}"),
            n,
        )
    }

    fn pod(name: &str, node: &str, secret: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})
    }

    #[test]
    fn the_graph_loads_from_the_store_and_follows_its_watch() {
        let api = ApiServer::new(MemStore::default());
        let mut n = 0;
        now(api.bootstrap(|| {
            n += 1;
            ctx(n)
        }))
        .unwrap();
        let pods = registry::by_plural("", "pods").unwrap();
        now(api.create(pods, Some("default"), pod("p1", "n1", "s1"), &ctx(100))).unwrap();
        now(api.create(pods, Some("default"), pod("p2", "n2", "s2"), &ctx(101))).unwrap();

        let mut authz = NodeAuthorizer::new();
        let revisions = now(api.load_node_graph(&mut authz)).unwrap();
        let (res, from) = *revisions.iter().find(|(r, _)| r.plural == "pods").unwrap();
        let n1 = UserInfo::node("n1");
        let secret = |name| NodeRequest {
            verb: "get",
            resource: "secrets",
            namespace: "default",
            name,
            ..NodeRequest::default()
        };
        assert!(authz.authorize(&n1, &secret("s1")).is_allowed());
        assert!(!authz.authorize(&n1, &secret("s2")).is_allowed());

        // Later writes reach the graph through the watch.
        let mut watch = now(api.watch(res, None, from, ListOptions::default())).unwrap();
        now(api.create(pods, Some("default"), pod("p3", "n1", "s3"), &ctx(102))).unwrap();
        now(api.delete(
            pods,
            Some("default"),
            "p1",
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            },
            &ctx(103),
        ))
        .unwrap();
        while let Some(Some(event)) = watch.next().now_or_never() {
            authz.observe_event(res, &event.unwrap());
        }
        assert!(authz.authorize(&n1, &secret("s3")).is_allowed());
        assert!(!authz.authorize(&n1, &secret("s1")).is_allowed());
    }
}
