//! gantry's own kubelet core, run as `system:node:<name>`: every watch it opens and every
//! request it makes must pass the Node authorizer and NodeRestriction (k8s: the kubelet works
//! under `--authorization-mode=Node` and `--enable-admission-plugins=NodeRestriction`).
//!
//! A wrapper checks each request when the kubelet makes it, against what the kubelet itself
//! has seen (its pods and its Node): enough for a node's own paths in the graph and for the
//! objects NodeRestriction compares.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use super::admission::{admit, NodeAdmission, NodeLookup, Operation};
use super::authorizer::{NodeAuthorizer, NodeRequest};
use super::refs;
use crate::api::registry::by_plural;
use crate::apiserver::{EventType, FieldSelector, Part};
use crate::auth::UserInfo;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::kubelet::{Kubelet, NodeConfig};
use crate::scheduler::Scheduler;
use crate::testkit::Driver;
use crate::time::Time;

#[derive(Default)]
struct View {
    authz: NodeAuthorizer,
    pods: BTreeMap<(String, String), Arc<Value>>,
    nodes: BTreeMap<String, Arc<Value>>,
}

impl NodeLookup for View {
    fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.pods
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
    fn node(&self, name: &str) -> Option<Arc<Value>> {
        self.nodes.get(name).cloned()
    }
}

struct Checked {
    inner: Kubelet,
    user: UserInfo,
    view: View,
    /// Every request, and the refusals.
    seen: Rc<RefCell<Vec<String>>>,
    refused: Rc<RefCell<Vec<String>>>,
}

impl Checked {
    fn see(&mut self, plural: &str, obj: &Value, deleted: bool) {
        let key = (
            refs::object_namespace(obj).to_string(),
            refs::object_name(obj).to_string(),
        );
        match plural {
            "pods" => {
                let old = self.view.pods.get(&key).cloned();
                if deleted {
                    self.view.pods.remove(&key);
                    self.view.authz.observe("", "pods", Some(obj), None);
                } else {
                    self.view.pods.insert(key, Arc::new(obj.clone()));
                    self.view
                        .authz
                        .observe("", "pods", old.as_deref(), Some(obj));
                }
            }
            "nodes" if !deleted => {
                self.view.nodes.insert(key.1, Arc::new(obj.clone()));
            }
            _ => {}
        }
    }

    fn check(&self, op: &ApiOp) -> Result<(), String> {
        let (verb, res, ns, name, sub, body) = match op {
            ApiOp::Create {
                resource,
                namespace,
                body,
            } => ("create", *resource, namespace, "", "", Some(body)),
            ApiOp::Update {
                resource,
                namespace,
                name,
                body,
                part,
            } => {
                let sub = match part {
                    Part::Main => "",
                    Part::Status => "status",
                    Part::Finalize => "finalize",
                };
                (
                    "update",
                    *resource,
                    namespace,
                    name.as_str(),
                    sub,
                    Some(body),
                )
            }
            ApiOp::Delete {
                resource,
                namespace,
                name,
                ..
            } => ("delete", *resource, namespace, name.as_str(), "", None),
            ApiOp::Get {
                resource,
                namespace,
                name,
            } => ("get", *resource, namespace, name.as_str(), "", None),
            other => return Err(format!("unexpected request {}", other.describe())),
        };
        let ns = ns.as_deref().unwrap_or_default();
        let req = NodeRequest {
            verb,
            namespace: ns,
            api_group: res.group,
            resource: res.plural,
            subresource: sub,
            name,
            ..NodeRequest::default()
        };
        let decision = self.view.authz.authorize(&self.user, &req);
        if !decision.is_allowed() {
            return Err(format!("{} refused: {decision:?}", op.describe()));
        }
        let operation = match verb {
            "create" => Operation::Create,
            "update" => Operation::Update,
            "delete" => Operation::Delete,
            _ => return Ok(()),
        };
        let stored = match res.plural {
            "pods" => self.view.pod(ns, name),
            "nodes" => self.view.node(name),
            _ => None,
        };
        // A status update stores the old object with the sent status (see NodeAdmission::new).
        let new = match (sub, &stored, body) {
            ("status", Some(old), Some(body)) => {
                let mut merged = (**old).clone();
                merged["status"] = body["status"].clone();
                Some(merged)
            }
            (_, _, body) => body.cloned(),
        };
        let adm = NodeAdmission {
            operation,
            group: res.group,
            resource: res.plural,
            subresource: sub,
            namespace: ns,
            name,
            old: stored.as_deref(),
            new: new.as_ref(),
            lookup: &self.view,
        };
        admit(&self.user, &adm).map_err(|e| format!("{}: {}", op.describe(), e.message))
    }
}

impl Component for Checked {
    fn user(&self) -> crate::auth::UserInfo {
        self.inner.user()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn watches(&self) -> Vec<WatchSpec> {
        let specs = self.inner.watches();
        for spec in &specs {
            let selector = spec
                .field_selector
                .as_deref()
                .map(|f| FieldSelector::parse(spec.resource, f).expect("valid"))
                .unwrap_or_default();
            for verb in ["list", "watch"] {
                let req = NodeRequest {
                    verb,
                    api_group: spec.resource.group,
                    resource: spec.resource.plural,
                    ..NodeRequest::default()
                }
                .with_field_selector(&selector);
                let decision = self.view.authz.authorize(&self.user, &req);
                let line = format!("{verb} {} {:?}", spec.resource.plural, spec.field_selector);
                if !decision.is_allowed() {
                    self.refused
                        .borrow_mut()
                        .push(format!("{line} refused: {decision:?}"));
                }
                self.seen.borrow_mut().push(line);
            }
        }
        specs
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match &input {
            Input::Listed {
                resource, items, ..
            } => {
                for item in items {
                    self.see(resource.plural, item, false);
                }
            }
            Input::Watched { resource, event } => {
                let deleted = event.type_ == EventType::Deleted;
                self.see(resource.plural, &event.object, deleted);
            }
            Input::ApiResult {
                result: Ok(obj), ..
            } => {
                let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
                match kind {
                    "Pod" => self.see("pods", obj, false),
                    "Node" => self.see("nodes", obj, false),
                    _ => {}
                }
            }
            _ => {}
        }
        self.inner.step(now, input, rng, out);
        for effect in out.iter() {
            if let Effect::Api { op, .. } = effect {
                self.seen.borrow_mut().push(op.describe());
                if let Err(e) = self.check(op) {
                    self.refused.borrow_mut().push(e);
                }
            }
        }
    }
}

#[test]
fn the_kubelet_core_works_as_its_node_under_node_authorization_and_noderestriction() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let refused = Rc::new(RefCell::new(Vec::new()));
    let mut d = Driver::new(5);
    d.add(Box::new(Checked {
        inner: Kubelet::new(NodeConfig::new("n1")),
        user: UserInfo::node("n1"),
        view: View::default(),
        seen: seen.clone(),
        refused: refused.clone(),
    }));
    d.add(Box::new(Scheduler::new()));
    let pods = by_plural("", "pods").unwrap();
    d.client(ApiOp::Create {
        resource: pods,
        namespace: Some("default".into()),
        body: json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "server"}]}}),
    })
    .unwrap();
    d.advance(Duration::from_secs(30));
    d.client(ApiOp::Delete {
        resource: pods,
        namespace: Some("default".into()),
        name: "web".into(),
        grace_period_seconds: None,
        precondition_uid: None,
        precondition_resource_version: None,
        propagation_policy: None,
    })
    .unwrap();
    // Past the first node status report (every 5 minutes).
    d.advance(crate::kubelet::NODE_STATUS_REPORT);

    let seen = seen.borrow();
    for want in [
        "list pods Some(\"spec.nodeName=n1\")",
        "watch nodes Some(\"metadata.name=n1\")",
        "create nodes n1",
        "create leases kube-node-lease/n1",
        "update leases kube-node-lease/n1",
        "update nodes/status n1",
        "update pods/status default/web",
        "delete pods default/web",
    ] {
        assert!(
            seen.iter().any(|s| s.starts_with(want)),
            "the kubelet never did {want:?}: {seen:#?}"
        );
    }
    assert_eq!(*refused.borrow(), Vec::<String>::new());
}

#[test]
fn the_wrapper_sees_refusals() {
    // The check above can fail: another node's requests are refused by the same code.
    let mut c = Checked {
        inner: Kubelet::new(NodeConfig::new("n1")),
        user: UserInfo::node("n2"),
        view: View::default(),
        seen: Rc::default(),
        refused: Rc::default(),
    };
    c.see(
        "pods",
        &json!({"metadata": {"namespace": "default", "name": "web", "uid": "u"},
                "spec": {"nodeName": "n1"}, "status": {}}),
        false,
    );
    let status = ApiOp::Update {
        resource: by_plural("", "pods").unwrap(),
        namespace: Some("default".into()),
        name: "web".into(),
        body: json!({"metadata": {"name": "web", "namespace": "default"}, "status": {"phase": "Running"}}),
        part: Part::Status,
    };
    let err = c.check(&status).unwrap_err();
    assert!(
        err.contains("can only update pod status for pods with spec.nodeName set to itself"),
        "{err}"
    );
    let lease = ApiOp::Update {
        resource: by_plural("coordination.k8s.io", "leases").unwrap(),
        namespace: Some("kube-node-lease".into()),
        name: "n1".into(),
        body: json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}}),
        part: Part::Main,
    };
    assert!(c
        .check(&lease)
        .unwrap_err()
        .contains("same name as the requesting node"));
}
