//! The ServiceAccounts controller (k8s: pkg/controller/serviceaccount/
//! serviceaccounts_controller.go): every live namespace has a `default` ServiceAccount, made
//! again when deleted. ServiceAccount admission refuses pods whose account is missing, so
//! without it a deleted `default` would stop every pod of its namespace. (New namespaces get
//! theirs at once from the HTTP layer; this keeps it so.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::RngCore;
use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::EventType;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

const NAME: &str = "default";
const RETRY: Duration = Duration::from_secs(1);

fn namespaces() -> &'static ResourceInfo {
    registry::by_plural("", "namespaces").expect("registered")
}

fn service_accounts() -> &'static ResourceInfo {
    registry::by_plural("", "serviceaccounts").expect("registered")
}

#[derive(Default)]
pub struct ServiceAccountsController {
    live: BTreeSet<String>,
    /// Namespaces whose `default` ServiceAccount exists.
    have: BTreeSet<String>,
    in_flight: BTreeMap<u64, String>,
    next_id: u64,
    retry_armed: bool,
}

impl ServiceAccountsController {
    pub fn new() -> Self {
        Self::default()
    }

    fn sync(&mut self, ns: &str, out: &mut Vec<Effect>) {
        if !self.live.contains(ns)
            || self.have.contains(ns)
            || self.in_flight.values().any(|n| n == ns)
        {
            return;
        }
        self.next_id += 1;
        self.in_flight.insert(self.next_id, ns.to_string());
        out.push(Effect::Api {
            id: self.next_id,
            op: ApiOp::Create {
                resource: service_accounts(),
                namespace: Some(ns.to_string()),
                body: json!({"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": NAME, "namespace": ns}}),
            },
        });
    }

    fn sync_all(&mut self, out: &mut Vec<Effect>) {
        let all: Vec<String> = self.live.iter().cloned().collect();
        for ns in all {
            self.sync(&ns, out);
        }
    }
}

fn str_at<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj["metadata"][field].as_str().unwrap_or("")
}

impl Component for ServiceAccountsController {
    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::SERVICE_ACCOUNT,
        )
    }

    fn name(&self) -> &str {
        "serviceaccount-controller"
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(namespaces()),
            WatchSpec {
                resource: service_accounts(),
                field_selector: Some(format!("metadata.name={NAME}")),
            },
        ]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed {
                resource, items, ..
            } => {
                if resource == namespaces() {
                    self.live = items
                        .iter()
                        .filter(|n| super::namespace::is_live(n))
                        .map(|n| str_at(n, "name").to_string())
                        .collect();
                } else {
                    self.have = items
                        .iter()
                        .filter(|sa| str_at(sa, "name") == NAME)
                        .map(|sa| str_at(sa, "namespace").to_string())
                        .collect();
                }
                self.sync_all(out);
            }
            Input::Watched { resource, event } => {
                let obj = &*event.object;
                if resource == namespaces() {
                    let name = str_at(obj, "name").to_string();
                    if event.type_ == EventType::Deleted || !super::namespace::is_live(obj) {
                        self.live.remove(&name);
                    } else {
                        self.live.insert(name.clone());
                    }
                    self.sync(&name, out);
                } else if str_at(obj, "name") == NAME {
                    let ns = str_at(obj, "namespace").to_string();
                    if event.type_ == EventType::Deleted {
                        self.have.remove(&ns);
                    } else {
                        self.have.insert(ns.clone());
                    }
                    self.sync(&ns, out);
                }
            }
            Input::ApiResult { id, result } => {
                let Some(ns) = self.in_flight.remove(&id) else {
                    return;
                };
                match result {
                    Ok(_) => {
                        self.have.insert(ns);
                    }
                    Err(e) if e.reason == "AlreadyExists" => {
                        self.have.insert(ns);
                    }
                    // A namespace being deleted takes no new objects.
                    Err(e) if e.reason == "Forbidden" || e.reason == "NotFound" => {}
                    Err(_) if !self.retry_armed => {
                        self.retry_armed = true;
                        out.push(Effect::Timer {
                            id: 0,
                            at: now + RETRY,
                        });
                    }
                    Err(_) => {}
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

    fn has_default(d: &Driver, ns: &str) -> bool {
        d.api
            .get(service_accounts(), Some(ns), NAME)
            .now_or_never()
            .unwrap()
            .is_ok()
    }

    #[test]
    fn every_namespace_keeps_a_default_service_account() {
        let mut d = Driver::new(3);
        d.add(Box::new(ServiceAccountsController::new()));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            assert!(has_default(&d, ns), "{ns}");
        }
        d.client(ApiOp::Create {
            resource: namespaces(),
            namespace: None,
            body: json!({"metadata": {"name": "team"}}),
        })
        .unwrap();
        assert!(has_default(&d, "team"));
        d.client(ApiOp::Delete {
            resource: service_accounts(),
            namespace: Some("team".into()),
            name: NAME.into(),
            grace_period_seconds: None,
            precondition_uid: None,
            precondition_resource_version: None,
            propagation_policy: None,
        })
        .unwrap();
        assert!(has_default(&d, "team"), "made again");
        // Other ServiceAccounts are left alone.
        let other = json!({"metadata": {"name": "robot"}});
        d.client(ApiOp::Create {
            resource: service_accounts(),
            namespace: Some("team".into()),
            body: other,
        })
        .unwrap();
        d.client(ApiOp::Delete {
            resource: service_accounts(),
            namespace: Some("team".into()),
            name: "robot".into(),
            grace_period_seconds: None,
            precondition_uid: None,
            precondition_resource_version: None,
            propagation_policy: None,
        })
        .unwrap();
        let robot = d.api.get(service_accounts(), Some("team"), "robot");
        assert!(robot.now_or_never().unwrap().is_err());
    }
}
