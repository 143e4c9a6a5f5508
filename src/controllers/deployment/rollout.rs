//! One sync of a Deployment, planned against a working copy of its ReplicaSets: which to
//! create, scale, annotate or delete, and the Deployment's new status. The controller carries
//! the plan out (the writes side by side, then the status), so the plan is a pure function of
//! the cache and the clock.
//!
//! k8s: pkg/controller/deployment/{deployment_controller.go syncDeployment, sync.go,
//! rolling.go, recreate.go, progress.go} (v1.33); reference/k8s-semantics.md §2.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::util::*;
use crate::time::Time;

/// What the sync does to one ReplicaSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    None,
    Create,
    Update,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub rs: ReplicaSet,
    pub write: Write,
}

/// An event the sync records (type, reason, message).
pub type Event = (&'static str, &'static str, String);

/// The working state of one sync: start from the cache, apply upstream's steps, read off the
/// writes.
pub struct Plan<'a> {
    /// The Deployment as it will be written back (annotations and status).
    pub d: Deployment,
    pub entries: Vec<Entry>,
    new_rs: Option<usize>,
    /// ReplicaSets to delete (history beyond revisionHistoryLimit).
    pub deletes: Vec<ReplicaSet>,
    pub events: Vec<Event>,
    /// When to sync again if nothing else happens (the progress deadline).
    pub requeue_after: Option<Duration>,
    /// Whether the Deployment's status or annotations are to be written.
    pub write_status: bool,
    pods: &'a BTreeMap<String, Vec<Arc<Pod>>>,
    now: Time,
}

fn created(rs: &ReplicaSet) -> Option<i128> {
    rs.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_nanosecond())
}

fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

/// k8s: ReplicaSetsByCreationTimestamp — oldest first (one not yet created is the newest),
/// then by name.
fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    match (created(a), created(b)) {
        (Some(x), Some(y)) if x != y => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        _ => name(a).cmp(name(b)),
    }
}

impl<'a> Plan<'a> {
    /// k8s: syncDeployment, after the ReplicaSets were claimed: `rss` are the Deployment's,
    /// `pods` its ReplicaSets' pods by ReplicaSet uid.
    pub fn sync(
        d: &Deployment,
        rss: Vec<ReplicaSet>,
        pods: &'a BTreeMap<String, Vec<Arc<Pod>>>,
        now: Time,
    ) -> Plan<'a> {
        let mut p = Plan {
            d: d.clone(),
            entries: rss
                .into_iter()
                .map(|rs| Entry {
                    rs,
                    write: Write::None,
                })
                .collect(),
            new_rs: None,
            deletes: Vec::new(),
            events: Vec::new(),
            requeue_after: None,
            write_status: false,
            pods,
            now,
        };
        p.d.status.get_or_insert_with(Default::default);
        let everything = d
            .spec
            .as_ref()
            .map(|s| s.selector.match_labels.is_none() && s.selector.match_expressions.is_none())
            .unwrap_or(true);
        if everything {
            // k8s: a selector that selects everything is refused: an event, and the
            // observedGeneration moves on.
            p.events.push((
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            ));
            let generation = d.metadata.generation;
            let st = p.status_mut();
            if st.observed_generation < generation {
                st.observed_generation = generation;
                p.write_status = true;
            }
            return p;
        }
        if d.metadata.deletion_timestamp.is_some() {
            // k8s: syncStatusOnly
            p.sync_revision(false);
            p.sync_deployment_status();
            return p;
        }
        p.check_paused_conditions();
        if paused(d) {
            p.sync_scale();
            return p;
        }
        if p.is_scaling_event() {
            p.sync_scale();
            return p;
        }
        if is_rolling(d) {
            p.rollout_rolling();
        } else {
            p.rollout_recreate();
        }
        p
    }

    fn status_mut(&mut self) -> &mut DeploymentStatus {
        self.d.status.get_or_insert_with(Default::default)
    }

    fn status(&self) -> DeploymentStatus {
        self.d.status.clone().unwrap_or_default()
    }

    pub fn new_rs(&self) -> Option<&ReplicaSet> {
        self.new_rs.map(|i| &self.entries[i].rs)
    }

    fn old(&self) -> Vec<usize> {
        (0..self.entries.len())
            .filter(|i| Some(*i) != self.new_rs)
            .collect()
    }

    fn sorted(&self, mut ix: Vec<usize>) -> Vec<usize> {
        ix.sort_by(|a, b| by_creation(&self.entries[*a].rs, &self.entries[*b].rs));
        ix
    }

    fn spec(&self, i: usize) -> i32 {
        rs_replicas(&self.entries[i].rs)
    }

    fn active(&self, ix: &[usize]) -> Vec<usize> {
        ix.iter().copied().filter(|i| self.spec(*i) > 0).collect()
    }

    fn sum_spec(&self, ix: &[usize]) -> i32 {
        ix.iter().map(|i| self.spec(*i)).sum()
    }

    fn sum_status(&self, ix: &[usize], f: fn(DeploymentCounts) -> i32) -> i32 {
        ix.iter().map(|i| f(rs_status(&self.entries[*i].rs))).sum()
    }

    fn all(&self) -> Vec<usize> {
        (0..self.entries.len()).collect()
    }

    fn mark(&mut self, i: usize) {
        if self.entries[i].write == Write::None {
            self.entries[i].write = Write::Update;
        }
    }

    // --- k8s: getAllReplicaSetsAndSyncRevision / getNewReplicaSet ---

    fn sync_revision(&mut self, create: bool) {
        let tmpl = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let found = self.sorted(self.all()).into_iter().find(|i| {
            self.entries[*i]
                .rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| equal_ignore_hash(t, &tmpl))
        });
        self.new_rs = found;
        let old_max = max_revision(self.old().iter().map(|i| &self.entries[*i].rs));
        let new_revision = old_max + 1;
        let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
        if let Some(i) = found {
            let d = self.d.clone();
            let rs = &mut self.entries[i].rs;
            let mut changed = set_new_rs_annotations(&d, rs, new_revision, true);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0) {
                spec.min_ready_seconds = min_ready;
                changed = true;
            }
            if changed {
                self.mark(i);
            }
            let rev = self.entries[i]
                .rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION))
                .cloned()
                .unwrap_or_default();
            if set_deployment_revision(&mut self.d, &rev) {
                self.write_status = true;
            }
            if progress_deadline(&self.d).is_some()
                && condition(&self.status(), "Progressing").is_none()
            {
                let msg = format!("Found new replica set {:?}", name(&self.entries[i].rs));
                let c = new_condition("Progressing", "True", FOUND_NEW_RS, msg, self.now);
                set_condition(self.status_mut(), c);
                self.write_status = true;
            }
            return;
        }
        if !create {
            return;
        }
        let d = &self.d;
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&tmpl, collisions);
        let mut template = tmpl.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let dname = d.metadata.name.clone().unwrap_or_default();
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{dname}-{hash}")),
                namespace: d.metadata.namespace.clone(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: dname,
                    uid: d.metadata.uid.clone().unwrap_or_default(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: min_ready,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        self.entries.push(Entry {
            rs: rs.clone(),
            write: Write::Create,
        });
        let i = self.entries.len() - 1;
        self.new_rs = Some(i);
        let n = self.new_rs_new_replicas(i);
        rs.spec.as_mut().expect("set above").replicas = Some(n);
        set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        let rs_name = name(&rs).to_string();
        self.entries[i].rs = rs;
        if n > 0 {
            self.events.push((
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {rs_name} from 0 to {n}"),
            ));
        }
        set_deployment_revision(&mut self.d, &new_revision.to_string());
        if progress_deadline(&self.d).is_some() {
            let msg = format!("Created new replica set {rs_name:?}");
            let c = new_condition("Progressing", "True", NEW_RS_CREATED, msg, self.now);
            set_condition(self.status_mut(), c);
        }
        self.write_status = true;
    }

    /// k8s: NewRSNewReplicas
    fn new_rs_new_replicas(&self, new: usize) -> i32 {
        let want = replicas(&self.d);
        let current = self.spec(new);
        if !is_rolling(&self.d) {
            return want;
        }
        let max_total = want + max_surge(&self.d);
        let count = self.sum_spec(&self.all());
        if count >= max_total {
            return current;
        }
        current + (max_total - count).min(want - current)
    }

    /// k8s: scaleReplicaSetAndRecordEvent / scaleReplicaSet. Returns whether it scaled.
    fn scale_rs(&mut self, i: usize, to: i32) -> bool {
        let from = self.spec(i);
        if from == to {
            return false;
        }
        self.set_scale(i, to);
        true
    }

    /// k8s: scaleReplicaSet — the size and the replica annotations.
    fn set_scale(&mut self, i: usize, to: i32) {
        let from = self.spec(i);
        let desired = replicas(&self.d);
        let max = desired + max_surge(&self.d);
        let rs = &mut self.entries[i].rs;
        let annotations = replicas_annotations_need_update(rs, desired, max);
        if from == to && !annotations {
            return;
        }
        rs.spec.get_or_insert_with(Default::default).replicas = Some(to);
        set_replicas_annotations(rs, desired, max);
        let rs_name = name(rs).to_string();
        self.mark(i);
        if from != to {
            let op = if to > from { "up" } else { "down" };
            self.events.push((
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {op} replica set {rs_name} from {from} to {to}"),
            ));
        }
    }

    // --- k8s: rolloutRolling ---

    fn rollout_rolling(&mut self) {
        self.sync_revision(true);
        let Some(new) = self.new_rs else { return };
        if self.reconcile_new(new) {
            self.sync_rollout_status();
            return;
        }
        if self.reconcile_old(new) {
            self.sync_rollout_status();
            return;
        }
        if complete(&self.d, &self.status()) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    /// k8s: reconcileNewReplicaSet
    fn reconcile_new(&mut self, new: usize) -> bool {
        let want = replicas(&self.d);
        let have = self.spec(new);
        if have == want {
            return false;
        }
        if have > want {
            return self.scale_rs(new, want);
        }
        let n = self.new_rs_new_replicas(new);
        self.scale_rs(new, n)
    }

    /// k8s: reconcileOldReplicaSets
    fn reconcile_old(&mut self, new: usize) -> bool {
        let old = self.active(&self.old());
        if self.sum_spec(&old) == 0 {
            return false;
        }
        let all = self.all();
        let all_count = self.sum_spec(&all);
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let new_unavailable = self.spec(new) - rs_status(&self.entries[new].rs).available;
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return false;
        }
        let cleaned = self.cleanup_unhealthy(&old, max_scaled_down);
        let scaled = self.scale_down_old_for_rolling(&old);
        cleaned + scaled > 0
    }

    /// k8s: cleanupUnhealthyReplicas — old ReplicaSets' unavailable replicas go first, oldest
    /// ReplicaSet first.
    fn cleanup_unhealthy(&mut self, old: &[usize], max: i32) -> i32 {
        let mut total = 0;
        for i in self.sorted(old.to_vec()) {
            if total >= max {
                break;
            }
            let spec = self.spec(i);
            let available = rs_status(&self.entries[i].rs).available;
            if spec == 0 || spec == available {
                continue;
            }
            let n = (max - total).min(spec - available);
            self.scale_rs(i, spec - n);
            total += n;
        }
        total
    }

    /// k8s: scaleDownOldReplicaSetsForRollingUpdate — never below minAvailable available.
    fn scale_down_old_for_rolling(&mut self, old: &[usize]) -> i32 {
        let min_available = replicas(&self.d) - max_unavailable(&self.d);
        let available = self.sum_status(&self.all(), |c| c.available);
        if available <= min_available {
            return 0;
        }
        let target = available - min_available;
        let mut total = 0;
        for i in self.sorted(old.to_vec()) {
            if total >= target {
                break;
            }
            let spec = self.spec(i);
            if spec == 0 {
                continue;
            }
            let n = spec.min(target - total);
            self.scale_rs(i, spec - n);
            total += n;
        }
        total
    }

    // --- k8s: rolloutRecreate ---

    fn rollout_recreate(&mut self) {
        self.sync_revision(false);
        let old = self.active(&self.old());
        let mut scaled = false;
        for i in old {
            scaled |= self.scale_rs(i, 0);
        }
        if scaled || self.old_pods_running() {
            self.sync_rollout_status();
            return;
        }
        if self.new_rs.is_none() {
            self.sync_revision(true);
        }
        if let Some(new) = self.new_rs {
            let want = replicas(&self.d);
            self.scale_rs(new, want);
        }
        if complete(&self.d, &self.status()) {
            self.cleanup();
        }
        self.sync_rollout_status();
    }

    /// k8s: oldPodsRunning — an old ReplicaSet still counts pods, or one of its pods is not
    /// terminal (Pending, Running, Unknown; terminating ones included).
    fn old_pods_running(&self) -> bool {
        let old = self.old();
        if self.sum_status(&old, |c| c.replicas) > 0 {
            return true;
        }
        let new_uid = self.new_rs().and_then(|rs| rs.metadata.uid.clone());
        self.pods.iter().any(|(uid, pods)| {
            Some(uid) != new_uid.as_ref()
                && pods.iter().any(|p| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Failed" | "Succeeded")
                    )
                })
        })
    }

    // --- k8s: sync (scaling events and paused deployments) ---

    /// k8s: isScalingEvent — an active ReplicaSet was sized for another replica count.
    fn is_scaling_event(&mut self) -> bool {
        self.sync_revision(false);
        let want = replicas(&self.d);
        self.active(&self.all())
            .into_iter()
            .any(|i| desired_replicas_annotation(&self.entries[i].rs).is_some_and(|n| n != want))
    }

    fn sync_scale(&mut self) {
        self.sync_revision(false);
        self.scale();
        if paused(&self.d) {
            let old = self.old();
            self.cleanup_of(&old);
        }
        self.sync_deployment_status();
    }

    /// k8s: scale — one active ReplicaSet takes the whole count; a saturated new one retires
    /// the old; otherwise a rolling deployment scales all proportionally.
    fn scale(&mut self) {
        let want = replicas(&self.d);
        if let Some(i) = self.active_or_latest() {
            if self.spec(i) != want {
                self.scale_rs(i, want);
            }
            return;
        }
        if let Some(new) = self.new_rs.filter(|n| self.saturated(*n)) {
            let _ = new;
            for i in self.active(&self.old()) {
                self.scale_rs(i, 0);
            }
            return;
        }
        if !is_rolling(&self.d) {
            return;
        }
        let mut all = self.active(&self.all());
        let current = self.sum_spec(&all);
        let allowed = if want > 0 {
            want + max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - current;
        match to_add.cmp(&0) {
            // k8s: ReplicaSetsBySizeNewer — largest first, newer first among equals.
            Ordering::Greater => all.sort_by(|a, b| {
                self.spec(*b)
                    .cmp(&self.spec(*a))
                    .then_with(|| by_creation(&self.entries[*b].rs, &self.entries[*a].rs))
            }),
            // k8s: ReplicaSetsBySizeOlder — largest first, older first among equals.
            Ordering::Less => all.sort_by(|a, b| {
                self.spec(*b)
                    .cmp(&self.spec(*a))
                    .then_with(|| by_creation(&self.entries[*a].rs, &self.entries[*b].rs))
            }),
            Ordering::Equal => {}
        }
        let mut added = 0;
        let mut sizes = BTreeMap::new();
        for &i in &all {
            let size = if to_add != 0 {
                let p = self.proportion(i, to_add, added);
                added += p;
                self.spec(i) + p
            } else {
                self.spec(i)
            };
            sizes.insert(i, size);
        }
        for (n, &i) in all.iter().enumerate() {
            let mut size = sizes[&i];
            if n == 0 && to_add != 0 {
                // k8s: leftovers go to the largest ReplicaSet.
                size = (size + to_add - added).max(0);
            }
            // k8s: scaleReplicaSet runs for every ReplicaSet here (annotations too).
            self.set_scale(i, size);
        }
    }

    /// k8s: FindActiveOrLatest
    fn active_or_latest(&self) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mut candidates = self.old();
        candidates.extend(self.new_rs);
        let active = self.active(&candidates);
        match active.len() {
            0 => self
                .new_rs
                .or_else(|| self.sorted(self.old()).last().copied()),
            1 => Some(active[0]),
            _ => None,
        }
    }

    /// k8s: IsSaturated
    fn saturated(&self, i: usize) -> bool {
        let want = replicas(&self.d);
        let rs = &self.entries[i].rs;
        rs_replicas(rs) == want
            && desired_replicas_annotation(rs) == Some(want)
            && rs_status(rs).available == want
    }

    /// k8s: GetProportion / getReplicaSetFraction
    fn proportion(&self, i: usize, to_add: i32, added: i32) -> i32 {
        let spec = self.spec(i);
        if spec == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let want = replicas(&self.d);
        let fraction = if want == 0 {
            -spec
        } else {
            let total = want + max_surge(&self.d);
            let annotated = max_replicas_annotation(&self.entries[i].rs)
                .unwrap_or_else(|| self.status().replicas.unwrap_or(0));
            if annotated == 0 {
                0
            } else {
                // k8s: integer.RoundToInt32 rounds half away from zero.
                let f = f64::from(spec) * f64::from(total) / f64::from(annotated);
                f.round() as i32 - spec
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    // --- k8s: cleanupDeployment ---

    fn cleanup(&mut self) {
        let old = self.old();
        self.cleanup_of(&old);
    }

    fn cleanup_of(&mut self, old: &[usize]) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return;
        };
        let mut alive: Vec<usize> = old
            .iter()
            .copied()
            .filter(|i| self.entries[*i].rs.metadata.deletion_timestamp.is_none())
            .collect();
        let surplus = alive.len() as i64 - i64::from(limit);
        if surplus <= 0 {
            return;
        }
        // k8s: ReplicaSetsByRevision — oldest revision first.
        alive.sort_by(|a, b| {
            let (x, y) = (&self.entries[*a].rs, &self.entries[*b].rs);
            revision(x)
                .cmp(&revision(y))
                .then_with(|| by_creation(x, y))
        });
        for &i in alive.iter().take(surplus as usize) {
            let rs = &self.entries[i].rs;
            let st = rs.status.clone().unwrap_or_default();
            // k8s: only a ReplicaSet that is empty and whose controller has seen its spec.
            if st.replicas != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0)
                || self.entries[i].write != Write::None
            {
                continue;
            }
            self.deletes.push(rs.clone());
        }
    }

    // --- k8s: calculateStatus / syncDeploymentStatus / syncRolloutStatus ---

    fn calculate_status(&self) -> DeploymentStatus {
        let all = self.all();
        let available = self.sum_status(&all, |c| c.available);
        let total = self.sum_spec(&all);
        let old = self.status();
        let mut s = DeploymentStatus {
            observed_generation: self.d.metadata.generation,
            replicas: Some(self.sum_status(&all, |c| c.replicas)),
            updated_replicas: Some(
                self.new_rs
                    .map(|i| rs_status(&self.entries[i].rs).replicas)
                    .unwrap_or(0),
            ),
            ready_replicas: Some(self.sum_status(&all, |c| c.ready)),
            available_replicas: Some(available),
            unavailable_replicas: Some((total - available).max(0)),
            collision_count: old.collision_count,
            conditions: old.conditions.clone(),
            terminating_replicas: None,
        };
        let want = replicas(&self.d);
        if available >= want - max_unavailable(&self.d) {
            let c = new_condition(
                "Available",
                "True",
                MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                self.now,
            );
            set_condition(&mut s, c);
        } else {
            let c = new_condition(
                "Available",
                "False",
                MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                self.now,
            );
            set_condition(&mut s, c);
        }
        s
    }

    fn sync_deployment_status(&mut self) {
        let s = self.calculate_status();
        self.finish_status(s);
    }

    fn finish_status(&mut self, s: DeploymentStatus) {
        if canonical(&s) != canonical(&self.status()) {
            self.d.status = Some(s);
            self.write_status = true;
        }
    }

    /// k8s: syncRolloutStatus — the Progressing condition follows the rollout.
    fn sync_rollout_status(&mut self) {
        let mut s = self.calculate_status();
        let d = &self.d;
        if progress_deadline(d).is_none() {
            remove_condition(&mut s, "Progressing");
        }
        let current = condition(&s, "Progressing").cloned();
        let complete_already = s.replicas == s.updated_replicas
            && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(NEW_RS_AVAILABLE);
        if progress_deadline(d).is_some() && !complete_already {
            let rs_name = self.new_rs().map(name).unwrap_or("").to_string();
            if complete(d, &s) {
                let msg = format!("ReplicaSet {rs_name:?} has successfully progressed.");
                let c = new_condition("Progressing", "True", NEW_RS_AVAILABLE, msg, self.now);
                set_condition(&mut s, c);
            } else if progressing(d, &s) {
                let msg = format!("ReplicaSet {rs_name:?} is progressing.");
                let mut c = new_condition("Progressing", "True", RS_UPDATED, msg, self.now);
                if let Some(cur) = current.as_ref().filter(|c| c.status == "True") {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(&mut s, "Progressing");
                set_condition(&mut s, c);
            } else if timed_out(d, &s, self.now) {
                let msg = format!("ReplicaSet {rs_name:?} has timed out progressing.");
                let c = new_condition("Progressing", "False", TIMED_OUT, msg, self.now);
                set_condition(&mut s, c);
                self.events.push((
                    "Warning",
                    TIMED_OUT,
                    format!(
                        "Deployment {:?} has timed out progressing.",
                        d.metadata.name.as_deref().unwrap_or("")
                    ),
                ));
            }
        }
        // k8s: a ReplicaSet's ReplicaFailure is the deployment's.
        let failure = self.entries.iter().find_map(|e| {
            e.rs.status
                .as_ref()
                .and_then(|st| st.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "ReplicaFailure"))
                .cloned()
        });
        match failure {
            Some(f) => {
                let mut c = new_condition(
                    "ReplicaFailure",
                    &f.status,
                    f.reason.as_deref().unwrap_or(""),
                    f.message.clone().unwrap_or_default(),
                    self.now,
                );
                c.last_transition_time = f.last_transition_time.clone();
                set_condition(&mut s, c);
            }
            None => remove_condition(&mut s, "ReplicaFailure"),
        }
        self.requeue_after = requeue_stuck(&self.d, &s, self.now);
        self.finish_status(s);
    }

    /// k8s: checkPausedConditions — pausing and resuming show in Progressing (Unknown).
    fn check_paused_conditions(&mut self) {
        if progress_deadline(&self.d).is_none() {
            return;
        }
        let current = condition(&self.status(), "Progressing").cloned();
        let reason = current.as_ref().and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT) {
            return;
        }
        let paused_shown = reason.as_deref() == Some(PAUSED);
        let (reason, msg) = match (paused(&self.d), paused_shown) {
            (true, false) => (PAUSED, "Deployment is paused"),
            (false, true) => (RESUMED, "Deployment is resumed"),
            _ => return,
        };
        let c = new_condition("Progressing", "Unknown", reason, msg.into(), self.now);
        set_condition(self.status_mut(), c);
        self.write_status = true;
    }
}

pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// A status as the apiserver stores it (absent and zero counts alike), for comparisons.
fn canonical(s: &DeploymentStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("serializes");
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, v| !(v.is_null() || *v == serde_json::json!(0)));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, strategy: serde_json::Value, image: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d1", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "strategy": strategy, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"observedGeneration": 1}
        }))
        .unwrap()
    }

    /// A ReplicaSet of the deployment on `image`: (spec, status available), created at `age`.
    fn rs(image: &str, spec: i32, available: i32, created: u64, revision: i64) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("web-{image}"), "namespace": "default", "uid": format!("u-{image}"),
                         "creationTimestamp": crate::apiserver::format_time(Time::from_secs(created)),
                         "annotations": {REVISION: revision.to_string(), DESIRED_REPLICAS: "10", MAX_REPLICAS: "13"}},
            "spec": {"replicas": spec, "selector": {"matchLabels": {"app": "web", HASH_LABEL: image}},
                     "template": {"metadata": {"labels": {"app": "web", HASH_LABEL: image}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": spec, "readyReplicas": available, "availableReplicas": available}
        }))
        .unwrap()
    }

    /// The ReplicaSet as sized for a deployment of `replicas` (no scaling event then).
    fn sized_for(mut rs: ReplicaSet, replicas: i32) -> ReplicaSet {
        set_replicas_annotations(&mut rs, replicas, replicas);
        rs
    }

    fn rolling(surge: i32, unavailable: i32) -> serde_json::Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    /// (image, spec.replicas, write) of every ReplicaSet after one sync.
    fn after(plan: &Plan) -> Vec<(String, i32, Write)> {
        plan.entries
            .iter()
            .map(|e| {
                let image =
                    e.rs.spec
                        .as_ref()
                        .unwrap()
                        .template
                        .as_ref()
                        .unwrap()
                        .spec
                        .as_ref()
                        .unwrap()
                        .containers[0]
                        .image
                        .clone()
                        .unwrap();
                (image, rs_replicas(&e.rs), e.write)
            })
            .collect()
    }

    #[test]
    fn one_sync_takes_one_step_as_upstream() {
        use Write::{Create, None as Keep, Update};
        let none: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
        let now = Time::from_secs(10_000);
        struct Case {
            what: &'static str,
            d: Deployment,
            rss: Vec<ReplicaSet>,
            want: Vec<(&'static str, i32, Write)>,
        }
        let cases = [
            Case {
                // §2.3 steps 1-3 in one sync: the new ReplicaSet starts at maxTotal − Σspec =
                // 13 − 10, which is no scale-up, so the old one goes down by the
                // unavailability budget 13 − 8 − 3 = 2 at once.
                what: "a template change creates the new ReplicaSet with the surge",
                d: deployment(10, rolling(3, 2), "v2"),
                rss: vec![rs("v1", 10, 10, 100, 1)],
                want: vec![("v1", 8, Update), ("v2", 3, Create)],
            },
            Case {
                // §2.3 step 3: maxScaledDown = 13 − (10 − 2) − (3 − 0) = 2, all from healthy old.
                what: "old replicas go down by what availability allows",
                d: deployment(10, rolling(3, 2), "v2"),
                rss: vec![rs("v1", 10, 10, 100, 1), rs("v2", 3, 0, 200, 2)],
                want: vec![("v1", 8, Update), ("v2", 3, Keep)],
            },
            Case {
                // §2.3 step 3a: unhealthy old replicas are removed first, and availability
                // (7 ≤ minAvailable 8) stops any further scale-down.
                what: "unhealthy old replicas go first",
                d: deployment(10, rolling(3, 2), "v2"),
                rss: vec![rs("v1", 10, 7, 100, 1), rs("v2", 3, 0, 200, 2)],
                want: vec![("v1", 8, Update), ("v2", 3, Keep)],
            },
            Case {
                // §2.3 step 2: Σspec is at maxTotal, so the new ReplicaSet waits.
                what: "no surge left: nothing scales up",
                d: deployment(10, rolling(3, 2), "v2"),
                rss: vec![rs("v1", 8, 8, 100, 1), rs("v2", 5, 0, 200, 2)],
                want: vec![("v1", 8, Keep), ("v2", 5, Keep)],
            },
            Case {
                // §2.3: as new pods become available the new ReplicaSet grows to its share.
                what: "available new pods let the new ReplicaSet grow",
                d: deployment(10, rolling(3, 2), "v2"),
                rss: vec![rs("v1", 5, 5, 100, 1), rs("v2", 5, 5, 200, 2)],
                want: vec![("v1", 5, Keep), ("v2", 8, Update)],
            },
            Case {
                // §2.4: Recreate scales every old ReplicaSet to 0 before creating the new one.
                what: "recreate scales the old down first",
                d: deployment(4, json!({"type": "Recreate"}), "v2"),
                rss: vec![sized_for(rs("v1", 4, 4, 100, 1), 4)],
                want: vec![("v1", 0, Update)],
            },
            Case {
                // §2.5: a template equal to an old ReplicaSet's (ignoring the hash) reuses it.
                what: "a rollback reuses the old ReplicaSet",
                d: deployment(10, rolling(3, 2), "v1"),
                rss: vec![rs("v1", 0, 0, 100, 1), rs("v2", 10, 10, 200, 2)],
                want: vec![("v1", 3, Update), ("v2", 10, Keep)],
            },
            Case {
                // §2.5 (desired-replicas annotation): a replica change mid-rollout scales
                // both ReplicaSets in proportion (the largest first, leftovers to it):
                // allowed 20 + 3, 10 to add: v1 round(8·23/13) = 14, v2 round(5·23/13) = 9.
                what: "a scaling event is proportional",
                d: deployment(20, rolling(3, 2), "v2"),
                rss: vec![rs("v1", 8, 8, 100, 1), rs("v2", 5, 0, 200, 2)],
                want: vec![("v1", 14, Update), ("v2", 9, Update)],
            },
        ];
        for c in cases {
            let plan = Plan::sync(&c.d, c.rss, &none, now);
            let want: Vec<(String, i32, Write)> = c
                .want
                .iter()
                .map(|(i, n, w)| (i.to_string(), *n, *w))
                .collect();
            assert_eq!(after(&plan), want, "{}", c.what);
        }
    }
}
