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

#[cfg(test)]
mod tests {
    use super::*;

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
