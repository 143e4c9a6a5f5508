//! Mutating admission that is pure object logic (namespace lifecycle needs the store and lives
//! in the apiserver core).

use std::sync::atomic::{AtomicI64, Ordering};

use k8s_openapi::api::core::v1::{PodSpec, Toleration};

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// k8s: --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds = 300
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The server's --default-not-ready-toleration-seconds / --default-unreachable-toleration-seconds
/// (one process serves one API, so a process-wide setting; the simulator never changes it).
static TOLERATION_SECONDS: [AtomicI64; 2] = [
    AtomicI64::new(DEFAULT_TOLERATION_SECONDS),
    AtomicI64::new(DEFAULT_TOLERATION_SECONDS),
];

/// Sets the seconds the default not-ready and unreachable tolerations allow.
pub fn set_default_toleration_seconds(not_ready: i64, unreachable: i64) {
    TOLERATION_SECONDS[0].store(not_ready, Ordering::Relaxed);
    TOLERATION_SECONDS[1].store(unreachable, Ordering::Relaxed);
}

/// k8s: DefaultTolerationSeconds — unless the pod already tolerates them, tolerate the
/// not-ready and unreachable NoExecute taints for 300 s (plugin/pkg/admission/defaulttolerationseconds).
pub fn default_toleration_seconds(spec: &mut PodSpec) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    for (i, key) in [TAINT_NOT_READY, TAINT_UNREACHABLE].into_iter().enumerate() {
        let tolerated = tolerations.iter().any(|t| {
            let key_matches =
                t.key.as_deref().is_none_or(str::is_empty) || t.key.as_deref() == Some(key);
            let effect_matches = t
                .effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoExecute");
            key_matches
                && effect_matches
                && (t.key.as_deref() == Some(key) || t.operator.as_deref() == Some("Exists"))
        });
        if !tolerated {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(TOLERATION_SECONDS[i].load(Ordering::Relaxed)),
                value: None,
            });
        }
    }
}

/// k8s: the built-in PriorityClasses the apiserver creates at start (scheduling/types.go).
pub const SYSTEM_CLUSTER_CRITICAL: (&str, i32) = ("system-cluster-critical", 2_000_000_000);
pub const SYSTEM_NODE_CRITICAL: (&str, i32) = ("system-node-critical", 2_000_001_000);
/// k8s: HighestUserDefinablePriority
pub const HIGHEST_USER_DEFINABLE_PRIORITY: i32 = 1_000_000_000;
/// k8s: DefaultPriorityWhenNoDefaultClassExists
pub const DEFAULT_PRIORITY: i32 = 0;

/// The system PriorityClasses, as created at bootstrap.
pub fn system_priority_classes() -> Vec<serde_json::Value> {
    [SYSTEM_CLUSTER_CRITICAL, SYSTEM_NODE_CRITICAL]
        .iter()
        .map(|(name, value)| {
            serde_json::json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                "metadata": {"name": name}, "value": value,
                "description": "Used for system critical pods that must not be moved from their current node."})
        })
        .collect()
}

/// What the Priority admission plugin resolved for a pod: the class name (empty without one),
/// its value and preemption policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedPriority {
    pub class: String,
    pub value: i32,
    pub preemption_policy: Option<String>,
}

/// k8s: plugin/pkg/admission/priority admitPod — sets spec.priority (and preemptionPolicy)
/// from the class; a pod may not give a different integer itself. The error is the message of
/// the 403.
pub fn apply_pod_priority(
    spec: &mut serde_json::Value,
    resolved: &ResolvedPriority,
) -> Result<(), String> {
    if let Some(given) = spec.get("priority").and_then(serde_json::Value::as_i64) {
        if given != i64::from(resolved.value) {
            return Err(format!(
                "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                resolved.value
            ));
        }
    }
    if let Some(policy) = &resolved.preemption_policy {
        if let Some(given) = spec
            .get("preemptionPolicy")
            .and_then(serde_json::Value::as_str)
        {
            if given != policy {
                return Err(format!(
                    "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ));
            }
        }
        spec["preemptionPolicy"] = serde_json::json!(policy);
    }
    if !resolved.class.is_empty() {
        spec["priorityClassName"] = serde_json::json!(resolved.class);
    }
    spec["priority"] = serde_json::json!(resolved.value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_priority_comes_from_the_class() {
        use serde_json::json;
        let high = ResolvedPriority {
            class: "high".into(),
            value: 1000,
            preemption_policy: Some("PreemptLowerPriority".into()),
        };
        // (spec given, resolved, spec after or the error's start) — k8s: admitPod
        let cases = [
            (
                json!({}),
                high.clone(),
                Ok(
                    json!({"priority": 1000, "priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}),
                ),
            ),
            (
                json!({"priority": 1000}),
                high.clone(),
                Ok(
                    json!({"priority": 1000, "priorityClassName": "high", "preemptionPolicy": "PreemptLowerPriority"}),
                ),
            ),
            (
                json!({"priority": 5}),
                high.clone(),
                Err("the integer value of priority (5) must not be provided"),
            ),
            (
                json!({"preemptionPolicy": "Never"}),
                high,
                Err("the string value of PreemptionPolicy (Never)"),
            ),
            (
                json!({}),
                ResolvedPriority {
                    class: String::new(),
                    value: DEFAULT_PRIORITY,
                    preemption_policy: None,
                },
                Ok(json!({"priority": 0})),
            ),
        ];
        for (i, (mut spec, resolved, want)) in cases.into_iter().enumerate() {
            match (apply_pod_priority(&mut spec, &resolved), want) {
                (Ok(()), Ok(w)) => assert_eq!(spec, w, "case {i}"),
                (Err(e), Err(w)) => assert!(e.starts_with(w), "case {i}: {e}"),
                (got, want) => panic!("case {i}: {got:?} vs {want:?}"),
            }
        }
    }

    fn tol(key: Option<&str>, op: &str, effect: Option<&str>, secs: Option<i64>) -> Toleration {
        Toleration {
            key: key.map(String::from),
            operator: Some(op.into()),
            effect: effect.map(String::from),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn adds_only_what_is_not_tolerated() {
        let cases: Vec<(Vec<Toleration>, usize, Option<i64>)> = vec![
            // given, tolerations after, seconds on the not-ready one
            (vec![], 2, Some(300)),
            (
                vec![tol(
                    Some(TAINT_NOT_READY),
                    "Exists",
                    Some("NoExecute"),
                    Some(60),
                )],
                2,
                Some(60),
            ),
            (vec![tol(None, "Exists", None, None)], 1, None), // tolerates everything
            (
                vec![tol(
                    Some(TAINT_NOT_READY),
                    "Exists",
                    Some("NoSchedule"),
                    None,
                )],
                3,
                Some(300),
            ),
        ];
        for (given, count, secs) in cases {
            let mut spec = PodSpec {
                tolerations: Some(given.clone()),
                ..Default::default()
            };
            default_toleration_seconds(&mut spec);
            let t = spec.tolerations.unwrap();
            assert_eq!(t.len(), count, "{given:?}");
            let nr = t
                .iter()
                .filter(|t| {
                    t.key.as_deref() == Some(TAINT_NOT_READY)
                        && t.effect.as_deref() == Some("NoExecute")
                })
                .map(|t| t.toleration_seconds)
                .next()
                .flatten();
            assert_eq!(nr, secs, "{given:?}");
        }
    }
}
