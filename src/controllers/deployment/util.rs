//! The Deployment controller's arithmetic and bookkeeping: fenceposts, the pod-template hash,
//! revision annotations and status conditions.
//!
//! k8s: pkg/controller/deployment/util/deployment_util.go (v1.33); reference/k8s-semantics.md §2.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time as MetaTime;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::time::Time;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// k8s: DefaultDeploymentUniqueLabelKey
pub const HASH_LABEL: &str = "pod-template-hash";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";

// k8s: condition reasons (deployment_util.go)
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_status(rs: &ReplicaSet) -> DeploymentCounts {
    let s = rs.status.clone().unwrap_or_default();
    DeploymentCounts {
        replicas: s.replicas,
        ready: s.ready_replicas.unwrap_or(0),
        available: s.available_replicas.unwrap_or(0),
    }
}

/// A ReplicaSet's observed counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeploymentCounts {
    pub replicas: i32,
    pub ready: i32,
    pub available: i32,
}

pub fn is_rolling(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// An int-or-percent scaled against `total` (k8s: intstr.GetScaledValueFromIntOrPercent).
pub fn scaled(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let num = pct * i64::from(total);
            Ok(if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            } as i32)
        }
    }
}

/// k8s: ResolveFenceposts — surge rounds up, unavailable down; both 0 makes unavailable 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let zero = IntOrString::Int(0);
    let surge = scaled(max_surge.unwrap_or(&zero), desired, true).unwrap_or(0);
    let unavailable = scaled(max_unavailable.unwrap_or(&zero), desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        // k8s: "Validation should never allow the user to explicitly use zero values for both
        // maxSurge and maxUnavailable"; a rounding to zero of both gets unavailable 1.
        return (0, 1);
    }
    (surge, unavailable)
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        replicas(d),
    )
}

/// k8s: MaxSurge — 0 unless RollingUpdate.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    fenceposts(d).0
}

/// k8s: MaxUnavailable — 0 unless RollingUpdate with replicas; never above replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

/// The template without its pod-template-hash label (k8s: EqualIgnoreHash compares so).
fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH_LABEL);
    }
    t
}

/// k8s: EqualIgnoreHash
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// The pod-template-hash: FNV-32a over the template and the collision count, spelled in
/// the safe alphabet. k8s: ComputeHash hashes a spew dump of the Go struct; we hash its JSON
/// form, so values differ from upstream's but not their shape (docs/decisions.md).
pub fn compute_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    eat(serde_json::to_string(t)
        .expect("templates serialize")
        .as_bytes());
    if let Some(c) = collision_count {
        eat(&c.to_le_bytes());
    }
    safe_encode(&h.to_string())
}

/// k8s: rand.SafeEncodeString — no vowels and no confusable characters.
fn safe_encode(s: &str) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

fn annotation<'a>(rs: &'a ReplicaSet, key: &str) -> Option<&'a str> {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The revision a ReplicaSet records (0 if none or unreadable). k8s: Revision
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS).and_then(|v| v.parse().ok())
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS).and_then(|v| v.parse().ok())
}

fn skip_copy(key: &str) -> bool {
    // k8s: skipCopyAnnotation — the deployment's own bookkeeping stays off its ReplicaSets.
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// k8s: SetNewReplicaSetAnnotations — copies the deployment's annotations, raises the
/// revision (recording the old one in revision-history), and for a new ReplicaSet sets the
/// replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || annotations.get(k) == Some(v) {
            continue;
        }
        annotations.insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations.get(REVISION).cloned().unwrap_or_default();
    let old_n: i64 = old.parse().unwrap_or(0);
    if old_n < new_revision {
        annotations.insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if !old.is_empty() {
            let history = match annotations.get(REVISION_HISTORY) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old,
            };
            annotations.insert(REVISION_HISTORY.into(), history);
        }
    }
    if !exists && set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// k8s: SetReplicasAnnotations
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if annotations.get(k) != Some(&v) {
            annotations.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

/// k8s: ReplicasAnnotationsNeedUpdate
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    desired_replicas_annotation(rs) != Some(desired) || max_replicas_annotation(rs) != Some(max)
}

/// k8s: SetDeploymentRevision — the deployment records its new ReplicaSet's revision.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.into(), revision.into());
    true
}

// --- conditions ---

pub fn meta_time(t: Time) -> MetaTime {
    serde_json::from_value(crate::apiserver::format_time(t)).expect("a valid time")
}

fn nanos(t: &MetaTime) -> i128 {
    t.0.as_nanosecond()
}

pub fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.iter().flatten().find(|c| c.type_ == type_)
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(meta_time(now)),
        last_transition_time: Some(meta_time(now)),
    }
}

/// k8s: SetDeploymentCondition — an equal status and reason changes nothing; an equal status
/// keeps its transition time.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = condition(s, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_.clone());
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            s.conditions = None;
        }
    }
}

pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    // k8s: HasProgressDeadline — MaxInt32 means none.
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

/// k8s: DeploymentComplete
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = replicas(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// k8s: DeploymentProgressing — more updated, fewer old, more ready or more available.
pub fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = old.replicas.unwrap_or(0) - old.updated_replicas.unwrap_or(0);
    let new_old = new.replicas.unwrap_or(0) - new.updated_replicas.unwrap_or(0);
    new.updated_replicas.unwrap_or(0) > old.updated_replicas.unwrap_or(0)
        || new_old < old_old
        || new.ready_replicas.unwrap_or(0) > old.ready_replicas.unwrap_or(0)
        || new.available_replicas.unwrap_or(0) > old.available_replicas.unwrap_or(0)
}

/// k8s: DeploymentTimedOut — no progress for progressDeadlineSeconds since the Progressing
/// condition's last update.
pub fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Time) -> bool {
    let Some(deadline) = progress_deadline(d) else {
        return false;
    };
    let Some(c) = condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    nanos(from) + i128::from(deadline) * 1_000_000_000 < i128::from(now.as_nanos())
}

/// k8s: requeueStuckDeployment — when to look again if nothing else happens: just after the
/// progress deadline would pass.
pub fn requeue_stuck(d: &Deployment, s: &DeploymentStatus, now: Time) -> Option<Duration> {
    let deadline = progress_deadline(d)?;
    let c = condition(s, "Progressing")?;
    if complete(d, s) || c.reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let from = nanos(c.last_update_time.as_ref()?);
    let after = from + i128::from(deadline) * 1_000_000_000 - i128::from(now.as_nanos());
    if after < 1_000_000_000 {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_nanos(after as u64) + Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        // k8s-semantics.md §2.2
        let cases = [
            // (surge, unavailable, desired) → (surge, unavailable)
            (is("25%"), is("25%"), 10, (3, 2)),
            (is("25%"), is("25%"), 1, (1, 0)),
            (is("25%"), is("25%"), 4, (1, 1)),
            (IntOrString::Int(3), IntOrString::Int(2), 10, (3, 2)),
            (is("0%"), is("10%"), 5, (0, 1)), // both round to 0 → unavailable 1
            (IntOrString::Int(0), IntOrString::Int(0), 5, (0, 1)),
            (is("100%"), is("0%"), 3, (3, 0)),
            (is("30%"), is("30%"), 0, (0, 1)),
        ];
        for (surge, unavailable, desired, want) in cases {
            assert_eq!(
                resolve_fenceposts(Some(&surge), Some(&unavailable), desired),
                want,
                "{surge:?} {unavailable:?} of {desired}"
            );
        }
    }

    #[test]
    fn the_template_hash_is_stable_safe_and_changes_with_collisions() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
        }))
        .unwrap();
        let h = compute_hash(&t, None);
        assert_eq!(h, compute_hash(&t.clone(), None));
        assert!(
            h.bytes()
                .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
            "{h}"
        );
        assert_ne!(h, compute_hash(&t, Some(1)));
        let mut other = t.clone();
        other.spec.as_mut().unwrap().containers[0].image = Some("nginx:2".into());
        assert_ne!(h, compute_hash(&other, None));
        // The hash label is ignored when templates are compared.
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(HASH_LABEL.into(), h);
        assert!(equal_ignore_hash(&labelled, &t));
        assert!(!equal_ignore_hash(&labelled, &other));
    }

    #[test]
    fn revisions_rise_and_remember_their_history() {
        // k8s-semantics.md §2.5: a reused ReplicaSet gets the new number and keeps the old.
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "annotations": {"team": "a", REVISION: "2",
                          "kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"replicas": 4, "selector": {}, "template": {},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}}
        }))
        .unwrap();
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(&d, &mut rs, 1, false));
        let a = rs.metadata.annotations.clone().unwrap();
        assert_eq!(a[REVISION], "1");
        assert_eq!(a["team"], "a");
        assert_eq!(
            (a[DESIRED_REPLICAS].as_str(), a[MAX_REPLICAS].as_str()),
            ("4", "5")
        );
        assert!(!a.contains_key(LAST_APPLIED) && !a.contains_key(REVISION_HISTORY));
        assert!(!set_new_rs_annotations(&d, &mut rs, 1, true));
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        assert!(set_new_rs_annotations(&d, &mut rs, 5, true));
        let a = rs.metadata.annotations.clone().unwrap();
        assert_eq!(
            (a[REVISION].as_str(), a[REVISION_HISTORY].as_str()),
            ("5", "1,3")
        );
    }

    #[test]
    fn conditions_keep_their_transition_time_while_the_status_holds() {
        let t0 = Time::from_secs(1_000);
        let t1 = Time::from_secs(2_000);
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition("Progressing", "True", NEW_RS_CREATED, "a".into(), t0),
        );
        // Same status and reason: nothing changes (not even the update time).
        set_condition(
            &mut s,
            new_condition("Progressing", "True", NEW_RS_CREATED, "b".into(), t1),
        );
        assert_eq!(
            condition(&s, "Progressing").unwrap().message.as_deref(),
            Some("a")
        );
        set_condition(
            &mut s,
            new_condition("Progressing", "True", RS_UPDATED, "c".into(), t1),
        );
        let c = condition(&s, "Progressing").unwrap();
        assert_eq!(c.last_transition_time, Some(meta_time(t0)));
        assert_eq!(c.last_update_time, Some(meta_time(t1)));
        set_condition(
            &mut s,
            new_condition("Progressing", "False", TIMED_OUT, "d".into(), t1),
        );
        assert_eq!(
            condition(&s, "Progressing").unwrap().last_transition_time,
            Some(meta_time(t1))
        );
        assert_eq!(s.conditions.as_ref().unwrap().len(), 1);
    }

    #[test]
    fn a_stuck_rollout_times_out_after_its_deadline() {
        // k8s-semantics.md §2.6: lastUpdateTime + progressDeadlineSeconds < now.
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 2, "progressDeadlineSeconds": 600, "selector": {}, "template": {}}
        }))
        .unwrap();
        let t0 = Time::from_secs(10_000);
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition("Progressing", "True", RS_UPDATED, "x".into(), t0),
        );
        let at = |secs| t0 + Duration::from_secs(secs);
        assert!(!timed_out(&d, &s, at(600)));
        assert!(timed_out(&d, &s, at(601)));
        assert_eq!(
            requeue_stuck(&d, &s, at(100)),
            Some(Duration::from_secs(501))
        );
        assert_eq!(requeue_stuck(&d, &s, at(600)), Some(Duration::ZERO));
        set_condition(
            &mut s,
            new_condition("Progressing", "False", TIMED_OUT, "y".into(), at(601)),
        );
        assert_eq!(requeue_stuck(&d, &s, at(700)), None);
        assert!(timed_out(&d, &s, at(602)));
    }
}
