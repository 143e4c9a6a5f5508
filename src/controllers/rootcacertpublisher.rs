//! The root CA publisher (k8s: pkg/controller/certificates/rootcacertpublisher): a
//! `kube-root-ca.crt` ConfigMap in every namespace holding the cluster CA bundle, so that pods
//! (the projected ServiceAccount volume's `ca.crt`) can verify the apiserver. Recreated when
//! deleted, put back when changed.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{EventType, Part};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: RootCACertConfigMapName.
pub const CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// k8s: DescriptionAnnotation and its text.
const DESCRIPTION_KEY: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";
/// A failed write is tried again after this (k8s: the work queue's rate-limited requeue).
const RETRY: Duration = Duration::from_secs(1);
const RETRY_TIMER: u64 = 1;

fn namespaces() -> &'static ResourceInfo {
    registry::by_plural("", "namespaces").expect("registered")
}

fn config_maps() -> &'static ResourceInfo {
    registry::by_plural("", "configmaps").expect("registered")
}

pub struct RootCaPublisher {
    ca: String,
    /// Live (not terminating) namespaces.
    live: BTreeSet<String>,
    /// Namespace → its `kube-root-ca.crt` as last seen.
    maps: BTreeMap<String, Value>,
    /// Request id → namespace, for writes in flight (one per namespace at a time).
    in_flight: BTreeMap<u64, String>,
    next_id: u64,
    retry_armed: bool,
}

impl RootCaPublisher {
    /// `ca` is the cluster CA bundle (PEM) that pods should trust.
    pub fn new(ca: impl Into<String>) -> Self {
        RootCaPublisher {
            ca: ca.into(),
            live: BTreeSet::new(),
            maps: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_id: 0,
            retry_armed: false,
        }
    }

    fn wanted(&self, ns: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": CONFIG_MAP_NAME, "namespace": ns,
                            "annotations": {DESCRIPTION_KEY: DESCRIPTION}},
               "data": {"ca.crt": self.ca}})
    }

    fn sync(&mut self, ns: &str, out: &mut Vec<Effect>) {
        if !self.live.contains(ns) || self.in_flight.values().any(|n| n == ns) {
            return;
        }
        let op = match self.maps.get(ns) {
            None => ApiOp::Create {
                resource: config_maps(),
                namespace: Some(ns.to_string()),
                body: self.wanted(ns),
            },
            Some(cm) => {
                let annotated = cm["metadata"]["annotations"][DESCRIPTION_KEY] == DESCRIPTION;
                if cm["data"] == json!({"ca.crt": self.ca}) && annotated {
                    return;
                }
                // k8s: the data is replaced, the rest of the object kept.
                let mut body = cm.clone();
                body["data"] = json!({"ca.crt": self.ca});
                if !body["metadata"]["annotations"].is_object() {
                    body["metadata"]["annotations"] = json!({});
                }
                body["metadata"]["annotations"][DESCRIPTION_KEY] = json!(DESCRIPTION);
                ApiOp::Update {
                    resource: config_maps(),
                    namespace: Some(ns.to_string()),
                    name: CONFIG_MAP_NAME.to_string(),
                    body,
                    part: Part::Main,
                }
            }
        };
        self.next_id += 1;
        self.in_flight.insert(self.next_id, ns.to_string());
        out.push(Effect::Api {
            id: self.next_id,
            op,
        });
    }

    fn sync_all(&mut self, out: &mut Vec<Effect>) {
        let all: Vec<String> = self.live.iter().cloned().collect();
        for ns in all {
            self.sync(&ns, out);
        }
    }
}

impl Component for RootCaPublisher {
    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::ROOT_CA_CERT_PUBLISHER,
        )
    }

    fn name(&self) -> &str {
        "root-ca-cert-publisher"
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(namespaces()),
            WatchSpec {
                resource: config_maps(),
                field_selector: Some(format!("metadata.name={CONFIG_MAP_NAME}")),
            },
        ]
    }

    fn step(&mut self, _now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed {
                resource, items, ..
            } => {
                if resource == namespaces() {
                    self.live = items
                        .iter()
                        .filter(|n| super::namespace::is_live(n))
                        .map(|n| n["metadata"]["name"].as_str().unwrap_or("").to_string())
                        .collect();
                } else {
                    self.maps = items
                        .into_iter()
                        .filter(|cm| cm["metadata"]["name"] == CONFIG_MAP_NAME)
                        .map(|cm| {
                            (
                                cm["metadata"]["namespace"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_string(),
                                cm,
                            )
                        })
                        .collect();
                }
                self.sync_all(out);
            }
            Input::Watched { resource, event } => {
                let obj = &event.object;
                if resource == namespaces() {
                    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
                    if event.type_ == EventType::Deleted || !super::namespace::is_live(obj) {
                        self.live.remove(&name);
                        self.maps.remove(&name);
                    } else {
                        self.live.insert(name.clone());
                    }
                    self.sync(&name, out);
                } else if obj["metadata"]["name"] == CONFIG_MAP_NAME {
                    let ns = obj["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    if event.type_ == EventType::Deleted {
                        self.maps.remove(&ns);
                    } else {
                        self.maps.insert(ns.clone(), (*event.object).clone());
                    }
                    self.sync(&ns, out);
                }
            }
            Input::ApiResult { id, result } => {
                let Some(ns) = self.in_flight.remove(&id) else {
                    return;
                };
                match result {
                    // The watch brings the object; sync again from it.
                    Ok(obj) => {
                        self.maps.insert(ns.clone(), (*obj).clone());
                    }
                    // Someone else made it, or changed it first: the watch tells.
                    Err(e) if e.reason == "AlreadyExists" || e.reason == "Conflict" => {}
                    // A namespace being deleted takes no new objects.
                    Err(e) if e.reason == "Forbidden" || e.reason == "NotFound" => {}
                    Err(_) => {
                        if !self.retry_armed {
                            self.retry_armed = true;
                            out.push(Effect::Timer {
                                id: RETRY_TIMER,
                                at: _now + RETRY,
                            });
                        }
                    }
                }
            }
            Input::Timer { .. } => {
                self.retry_armed = false;
                self.sync_all(out);
            }
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Driver;
    use futures::FutureExt;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nx\n";

    fn cm(d: &Driver, ns: &str) -> Option<Value> {
        d.api
            .get(config_maps(), Some(ns), CONFIG_MAP_NAME)
            .now_or_never()
            .unwrap()
            .ok()
    }

    fn create(d: &mut Driver, res: &'static ResourceInfo, ns: Option<&str>, body: Value) {
        let op = ApiOp::Create {
            resource: res,
            namespace: ns.map(String::from),
            body,
        };
        d.client(op).unwrap();
    }

    #[test]
    fn every_namespace_gets_the_ca_and_keeps_it() {
        let mut d = Driver::new(1);
        d.add(Box::new(RootCaPublisher::new(CA)));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let got = cm(&d, ns).unwrap_or_else(|| panic!("{ns} has none"));
            assert_eq!(got["data"]["ca.crt"], CA);
            assert_eq!(got["metadata"]["annotations"][DESCRIPTION_KEY], DESCRIPTION);
        }
        // A new namespace gets one; a deleted or changed one is put back.
        create(
            &mut d,
            namespaces(),
            None,
            json!({"metadata": {"name": "team"}}),
        );
        assert!(cm(&d, "team").is_some());
        d.client(ApiOp::Delete {
            resource: config_maps(),
            namespace: Some("team".into()),
            name: CONFIG_MAP_NAME.into(),
            grace_period_seconds: None,
            precondition_uid: None,
            precondition_resource_version: None,
            propagation_policy: None,
        })
        .unwrap();
        assert_eq!(cm(&d, "team").expect("recreated")["data"]["ca.crt"], CA);
        let mut changed = cm(&d, "team").unwrap();
        changed["data"] = json!({"ca.crt": "forged"});
        d.client(ApiOp::Update {
            resource: config_maps(),
            namespace: Some("team".into()),
            name: CONFIG_MAP_NAME.into(),
            body: changed,
            part: Part::Main,
        })
        .unwrap();
        assert_eq!(cm(&d, "team").unwrap()["data"]["ca.crt"], CA);
        // Other ConfigMaps are none of its business.
        let other = json!({"metadata": {"name": "other"}, "data": {"a": "b"}});
        create(&mut d, config_maps(), Some("team"), other);
        let got = d
            .api
            .get(config_maps(), Some("team"), "other")
            .now_or_never()
            .unwrap();
        assert_eq!(got.unwrap()["data"], json!({"a": "b"}));
    }
}
