//! The ClusterRole aggregation controller (k8s: pkg/controller/clusterroleaggregation): an
//! aggregated ClusterRole (one with an aggregationRule) is kept holding the rules of every
//! ClusterRole its selectors match, as soon as any ClusterRole changes.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use serde_json::Value;

use crate::api::registry::{self, ResourceInfo, RBAC_GROUP};
use crate::apiserver::{EventType, Part};
use crate::auth::rbac::index::Kind;
use crate::auth::rbac::{aggregation, RbacIndex, Rule};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

fn cluster_roles() -> &'static ResourceInfo {
    registry::by_plural(RBAC_GROUP, "clusterroles").expect("registered")
}

#[derive(Default)]
pub struct ClusterRoleAggregation {
    /// The ClusterRoles as an index (what aggregation reads) and as objects (what an update
    /// starts from).
    index: RbacIndex,
    objects: BTreeMap<String, Value>,
    /// Request id → role being written; a role is written once at a time.
    in_flight: BTreeMap<u64, String>,
    next_id: u64,
}

impl ClusterRoleAggregation {
    pub fn new() -> Self {
        Self::default()
    }

    fn apply(&mut self, obj: &Value, deleted: bool) {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        if deleted {
            self.index.apply(Kind::ClusterRole, "", &name, None);
            self.objects.remove(&name);
        } else {
            self.index.apply(Kind::ClusterRole, "", &name, Some(obj));
            self.objects.insert(name, obj.clone());
        }
    }

    /// k8s: syncClusterRole for every aggregated role that is out of date.
    fn sync(&mut self, out: &mut Vec<Effect>) {
        let busy: BTreeSet<&String> = self.in_flight.values().collect();
        let stale: Vec<(String, Vec<Rule>)> = aggregation::out_of_date(&self.index)
            .into_iter()
            .filter(|(name, _)| !busy.contains(name))
            .collect();
        for (name, rules) in stale {
            let Some(mut body) = self.objects.get(&name).cloned() else {
                continue;
            };
            body["rules"] = Value::Array(rules.iter().map(Rule::to_json).collect());
            self.next_id += 1;
            self.in_flight.insert(self.next_id, name.clone());
            out.push(Effect::Log {
                v: 2,
                message: format!("aggregating the rules of ClusterRole {name}"),
            });
            out.push(Effect::Api {
                id: self.next_id,
                op: ApiOp::Update {
                    resource: cluster_roles(),
                    namespace: None,
                    name,
                    body,
                    part: Part::Main,
                },
            });
        }
    }
}

impl Component for ClusterRoleAggregation {
    fn name(&self) -> &str {
        "clusterrole-aggregation-controller"
    }

    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::service_account(
            "kube-system",
            crate::auth::rbac::controller_policy::CLUSTERROLE_AGGREGATION,
        )
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(cluster_roles())]
    }

    fn step(&mut self, _: Time, input: Input, _: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed { items, .. } => {
                self.index = RbacIndex::default();
                self.objects.clear();
                for obj in &items {
                    self.apply(obj, false);
                }
            }
            Input::Watched { event, .. } => {
                self.apply(&event.object, event.type_ == EventType::Deleted)
            }
            Input::ApiResult { id, result } => {
                self.in_flight.remove(&id);
                match result {
                    // What was written is the newest version (its watch event may come later).
                    Ok(obj) => self.apply(&obj, false),
                    Err(e) => out.push(Effect::Log {
                        v: 2,
                        message: format!("aggregating a ClusterRole: {}", e.message),
                    }),
                }
            }
            _ => return,
        }
        self.sync(out);
    }
}
