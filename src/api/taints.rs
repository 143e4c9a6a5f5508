//! Taints and tolerations. k8s: staging/src/k8s.io/api/core/v1/toleration.go (ToleratesTaint)

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// Whether `t` tolerates `taint`: effects match (an empty toleration effect matches all), keys
/// match (an empty key with `Exists` matches all), and `Exists` or equal values.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let exists = t.operator.as_deref() == Some("Exists");
    match t.key.as_deref().filter(|k| !k.is_empty()) {
        None => return exists,
        Some(k) if k != taint.key => return false,
        Some(_) => {}
    }
    exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

/// `{key: value}` as the scheduler prints a taint.
pub fn describe(taint: &Taint) -> String {
    format!(
        "{{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(key: &str, op: &str, value: &str, effect: &str) -> Toleration {
        Toleration {
            key: Some(key.into()).filter(|k: &String| !k.is_empty()),
            operator: Some(op.into()),
            value: Some(value.into()).filter(|v: &String| !v.is_empty()),
            effect: Some(effect.into()).filter(|e: &String| !e.is_empty()),
            toleration_seconds: None,
        }
    }

    #[test]
    fn toleration_matching() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        let cases = [
            (tol("dedicated", "Equal", "gpu", "NoSchedule"), true),
            (tol("dedicated", "Equal", "cpu", "NoSchedule"), false),
            (tol("dedicated", "Exists", "", "NoSchedule"), true),
            (tol("dedicated", "Exists", "", ""), true),
            (tol("dedicated", "Exists", "", "NoExecute"), false),
            (tol("", "Exists", "", ""), true),
            (tol("", "Equal", "", ""), false),
            (tol("other", "Exists", "", ""), false),
        ];
        for (toleration, want) in cases {
            assert_eq!(tolerates(&toleration, &t), want, "{toleration:?}");
        }
        assert_eq!(describe(&t), "{dedicated: gpu}");
        assert_eq!(
            describe(&taint("node.kubernetes.io/unreachable", "", "NoExecute")),
            "{node.kubernetes.io/unreachable: }"
        );
    }
}
