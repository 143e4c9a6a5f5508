//! The namespace controller: a namespace being deleted keeps its `kubernetes` finalizer until
//! everything in it is gone; the controller deletes every namespaced resource in it (pods
//! gracefully, so their kubelets stop them), tries again until nothing remains, then removes
//! the finalizer through namespaces/finalize and the apiserver deletes the namespace.
//! k8s: pkg/controller/namespace/deletion/namespaced_resources_deleter.go

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use rand::RngCore;
use serde_json::{json, Value};

use super::cache::Cache;
use crate::api::registry::{self, ResourceInfo, Verb};
use crate::apiserver::Part;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// The finalizer the namespace controller owns (k8s: v1.FinalizerKubernetes).
pub const FINALIZER: &str = "kubernetes";
/// How long before a namespace with content left (terminating pods) is looked at again.
/// k8s: the deleter's estimate, at least a few seconds, requeued.
pub const RETRY: Duration = Duration::from_secs(2);

const RETRY_TIMER: u64 = 0;

fn namespaces() -> &'static ResourceInfo {
    registry::by_plural("", "namespaces").expect("registered")
}

/// One pass over a namespace's content.
#[derive(Debug, Default)]
struct Pass {
    outstanding: usize,
    remaining: u64,
    /// Resource (`pods`, `replicasets.apps`) → objects of it still there.
    by_resource: BTreeMap<String, u64>,
    /// Finalizer → remaining objects that carry it.
    finalizers: BTreeMap<String, u64>,
    /// The deletions that failed (their messages).
    errors: Vec<String>,
}

/// The namespace's deletion conditions after a pass (k8s: the deleter's conditionUpdater, in
/// upstream's order).
fn conditions(pass: &Pass) -> Vec<(&'static str, &'static str, &'static str, String)> {
    let list = |m: &BTreeMap<String, u64>, verb: &str| {
        m.iter()
            .map(|(k, n)| format!("{k} {verb} {n} resource instances"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        (
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        (
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        if pass.errors.is_empty() {
            (
                "NamespaceDeletionContentFailure",
                "False",
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            )
        } else {
            (
                "NamespaceDeletionContentFailure",
                "True",
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    pass.errors.len(),
                    pass.errors.join(", ")
                ),
            )
        },
        if pass.by_resource.is_empty() {
            (
                "NamespaceContentRemaining",
                "False",
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            (
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                format!(
                    "Some resources are remaining: {}",
                    list(&pass.by_resource, "has")
                ),
            )
        },
        if pass.finalizers.is_empty() {
            (
                "NamespaceFinalizersRemaining",
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            (
                "NamespaceFinalizersRemaining",
                "True",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    list(&pass.finalizers, "in")
                ),
            )
        },
    ]
}

#[derive(Debug)]
enum Purpose {
    /// A deletecollection in a namespace, of a resource (`pods`, `replicasets.apps`).
    Delete(String, String),
    Finalize(String),
    Conditions,
}

#[derive(Default)]
pub struct NamespaceController {
    namespaces: Cache<Namespace>,
    passes: BTreeMap<String, Pass>,
    /// A finalize request in flight.
    finalizing: BTreeSet<String>,
    /// Namespaces to look at again, and when.
    due: BTreeMap<String, Time>,
    requests: BTreeMap<u64, Purpose>,
    next_id: u64,
    armed: Option<Time>,
}

fn deleting_with_finalizer(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        && ns
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.as_ref())
            .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

impl NamespaceController {
    pub fn new() -> Self {
        Self::default()
    }

    fn request(&mut self, out: &mut Vec<Effect>, purpose: Purpose, op: ApiOp) {
        self.next_id += 1;
        self.requests.insert(self.next_id, purpose);
        out.push(Effect::Api {
            id: self.next_id,
            op,
        });
    }

    /// Deletes every namespaced resource of `ns` (k8s: deleteAllContent).
    fn start_pass(&mut self, ns: &str, out: &mut Vec<Effect>) {
        let kinds: Vec<&'static ResourceInfo> = registry::RESOURCES
            .iter()
            .filter(|r| r.namespaced && r.verbs.contains(&Verb::Delete))
            .collect();
        self.passes.insert(
            ns.to_string(),
            Pass {
                outstanding: kinds.len(),
                ..Pass::default()
            },
        );
        for resource in kinds {
            let op = ApiOp::DeleteCollection {
                resource,
                namespace: ns.to_string(),
            };
            let name = if resource.group.is_empty() {
                resource.plural.to_string()
            } else {
                format!("{}.{}", resource.plural, resource.group)
            };
            self.request(out, Purpose::Delete(ns.to_string(), name), op);
        }
    }

    fn finalize(&mut self, ns: &str, out: &mut Vec<Effect>) {
        let Some(current) = self.namespaces.get(ns) else {
            return;
        };
        let rest: Vec<String> = current
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != FINALIZER)
            .collect();
        self.finalizing.insert(ns.to_string());
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                          "spec": {"finalizers": rest}});
        let op = ApiOp::Update {
            resource: namespaces(),
            namespace: None,
            name: ns.to_string(),
            body,
            part: Part::Finalize,
        };
        self.request(out, Purpose::Finalize(ns.to_string()), op);
    }

    /// Starts a pass for every namespace that needs one and is not busy or waiting.
    fn pump(&mut self, now: Time, out: &mut Vec<Effect>) {
        let ready: Vec<String> = self
            .namespaces
            .iter_shared()
            .filter(|(_, ns)| deleting_with_finalizer(ns))
            .map(|(k, _)| k.clone())
            .filter(|k| {
                !self.passes.contains_key(k)
                    && !self.finalizing.contains(k)
                    && self.due.get(k).is_none_or(|t| *t <= now)
            })
            .collect();
        for ns in ready {
            self.due.remove(&ns);
            self.start_pass(&ns, out);
        }
        // Namespaces gone from the cache need no more looks.
        let cache = &self.namespaces;
        self.due.retain(|k, _| cache.get(k).is_some());
        let wake = self.due.values().min().copied();
        if wake != self.armed {
            self.armed = wake;
            if let Some(at) = wake {
                out.push(Effect::Timer {
                    id: RETRY_TIMER,
                    at,
                });
            }
        }
    }

    fn on_result(
        &mut self,
        id: u64,
        result: Result<std::sync::Arc<serde_json::Value>, crate::api::status::ApiError>,
        now: Time,
        out: &mut Vec<Effect>,
    ) {
        match self.requests.remove(&id) {
            Some(Purpose::Delete(ns, resource)) => {
                let Some(pass) = self.passes.get_mut(&ns) else {
                    return;
                };
                pass.outstanding -= 1;
                match result {
                    Ok(v) => {
                        let n = v["remaining"].as_u64().unwrap_or(0);
                        pass.remaining += n;
                        if n > 0 {
                            pass.by_resource.insert(resource.to_string(), n);
                        }
                        for (f, n) in v["finalizers"].as_object().into_iter().flatten() {
                            *pass.finalizers.entry(f.clone()).or_default() +=
                                n.as_u64().unwrap_or(0);
                        }
                    }
                    Err(e) if e.code == 404 => {}
                    Err(e) => pass.errors.push(e.message),
                }
                if pass.outstanding > 0 {
                    return;
                }
                let pass = self.passes.remove(&ns).expect("present");
                self.write_conditions(&ns, &pass, now, out);
                if pass.remaining == 0 && pass.errors.is_empty() {
                    self.finalize(&ns, out);
                } else {
                    self.due.insert(ns, now + RETRY);
                }
            }
            Some(Purpose::Finalize(ns)) => {
                self.finalizing.remove(&ns);
                if result.is_err() {
                    self.due.insert(ns, now + RETRY);
                }
            }
            Some(Purpose::Conditions) | None => {}
        }
    }

    /// Writes the namespace's deletion conditions when they changed (k8s: the deleter's
    /// status update after each pass).
    fn write_conditions(&mut self, ns: &str, pass: &Pass, now: Time, out: &mut Vec<Effect>) {
        let Some(current) = self.namespaces.get(ns) else {
            return;
        };
        let old = current
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let mut changed = false;
        let mut next = Vec::new();
        for (type_, status, reason, message) in conditions(pass) {
            let same = old.iter().find(|c| c.type_ == type_).filter(|c| {
                c.status == status
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(message.as_str())
            });
            match same {
                Some(c) => next.push(serde_json::to_value(c).expect("serializes")),
                None => {
                    changed = true;
                    next.push(json!({"type": type_, "status": status, "reason": reason,
                                     "message": message, "lastTransitionTime": crate::apiserver::format_time(now)}));
                }
            }
        }
        if !changed {
            return;
        }
        let mut body = serde_json::to_value(current).expect("serializes");
        body["status"]["conditions"] = json!(next);
        let op = ApiOp::Update {
            resource: namespaces(),
            namespace: None,
            name: ns.to_string(),
            body: crate::apiserver::unconditional(body),
            part: Part::Status,
        };
        self.request(out, Purpose::Conditions, op);
    }
}

impl Component for NamespaceController {
    fn name(&self) -> &str {
        "namespace-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::NAMESPACE,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(namespaces())]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match &input {
            Input::Listed { .. } | Input::Watched { .. } => {
                self.namespaces.feed(namespaces(), &input);
            }
            Input::Timer { .. } => self.armed = None,
            Input::ApiResult { .. } => {}
            Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
        if let Input::ApiResult { id, result } = input {
            self.on_result(id, result, now, out);
        }
        if self.namespaces.synced() {
            self.pump(now, out);
        }
    }
}

/// A namespace objects may still be created in: not deleted, not Terminating (the
/// controllers that keep one object in every namespace skip the others).
pub fn is_live(ns: &Value) -> bool {
    ns.pointer("/metadata/deletionTimestamp").is_none()
        && ns.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating")
}
