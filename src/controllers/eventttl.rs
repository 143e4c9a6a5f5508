//! Events expire an hour after they were last written.
//!
//! k8s: kube-apiserver --event-ttl 1h — etcd forgets an Event when the lease its last write
//! attached runs out. gantry's stores have no leases, so this small core watches Events and
//! deletes each one an hour after its lastTimestamp (its eventTime or creation time for events
//! without one); docs/decisions.md.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::RngCore;
use serde_json::Value;

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::EventType;
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: --event-ttl
pub const EVENT_TTL: Duration = Duration::from_secs(3600);
const TIMER: u64 = 0;

fn events() -> &'static ResourceInfo {
    registry::by_plural("", "events").expect("registered")
}

/// When an event was last written, as it says.
fn written(obj: &Value) -> Option<Time> {
    ["lastTimestamp", "eventTime", "metadata.creationTimestamp"]
        .iter()
        .find_map(|path| {
            let v = path.split('.').try_fold(obj, |v, p| v.get(p))?;
            let ts: k8s_openapi::jiff::Timestamp = v.as_str()?.parse().ok()?;
            u64::try_from(ts.as_nanosecond()).ok().map(Time)
        })
}

#[derive(Default)]
pub struct EventTtl {
    /// Event key → (expiry, uid).
    expiry: BTreeMap<String, (Time, String)>,
    due: BTreeSet<(Time, String)>,
    armed: Option<Time>,
    next_id: u64,
}

impl EventTtl {
    pub fn new() -> Self {
        Self::default()
    }

    fn forget(&mut self, key: &str) {
        if let Some((at, _)) = self.expiry.remove(key) {
            self.due.remove(&(at, key.to_string()));
        }
    }

    fn track(&mut self, obj: &Value) {
        let key = super::cache::object_key(obj);
        self.forget(&key);
        let Some(at) = written(obj) else { return };
        let uid = obj["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let at = at + EVENT_TTL;
        self.expiry.insert(key.clone(), (at, uid));
        self.due.insert((at, key));
    }

    fn expire(&mut self, now: Time, out: &mut Vec<Effect>) {
        while let Some((at, key)) = self.due.first().cloned() {
            if at > now {
                break;
            }
            let (_, uid) = self.expiry.remove(&key).expect("indexed");
            self.due.remove(&(at, key.clone()));
            let (ns, name) = key.split_once('/').unwrap_or(("", &key));
            self.next_id += 1;
            out.push(Effect::Api {
                id: self.next_id,
                op: ApiOp::Delete {
                    resource: events(),
                    namespace: Some(ns.to_string()),
                    name: name.to_string(),
                    grace_period_seconds: None,
                    precondition_uid: Some(uid).filter(|u| !u.is_empty()),
                    precondition_resource_version: None,
                    propagation_policy: None,
                },
            });
        }
        let next = self.due.first().map(|(at, _)| *at);
        if next != self.armed {
            self.armed = next;
            if let Some(at) = next {
                out.push(Effect::Timer { id: TIMER, at });
            }
        }
    }
}

impl Component for EventTtl {
    fn name(&self) -> &str {
        "event-ttl"
    }

    fn user(&self) -> crate::auth::UserInfo {
        // k8s: Events expire in etcd (a lease the apiserver attaches): the apiserver's own work.
        crate::auth::UserInfo::apiserver()
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![WatchSpec::all(events())]
    }

    fn step(&mut self, now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed { items, .. } => {
                self.expiry.clear();
                self.due.clear();
                for obj in &items {
                    self.track(obj);
                }
            }
            Input::Watched { event, .. } => match event.type_ {
                EventType::Deleted => self.forget(&super::cache::object_key(&event.object)),
                _ => self.track(&event.object),
            },
            Input::Timer { .. } => self.armed = None,
            // A delete that failed: a relist or the next write brings the event back.
            Input::ApiResult { .. }
            | Input::RuntimeResult { .. }
            | Input::ContainerExited { .. } => {}
        }
        self.expire(now, out);
    }
}
