//! When the kubelet renews a projected ServiceAccount token (k8s: pkg/kubelet/token/
//! token_manager.go, requiresRefresh): once 80% of its lifetime has passed, or 24 hours after
//! it was issued, whichever comes first, less a jitter of up to 10 s so that many pods do
//! not ask at once. Sans-IO: the host brings the times and the jitter.

/// k8s: maxTTL — no token is kept longer than this.
pub const MAX_TTL_SECONDS: i64 = 24 * 60 * 60;
/// k8s: maxJitter.
pub const MAX_JITTER_SECONDS: i64 = 10;

/// The time (seconds since the epoch) to renew a token that expires at `expires_at` and was
/// asked for `expiration_seconds`; `jitter` in `0..=MAX_JITTER_SECONDS`.
pub fn refresh_at(expires_at: i64, expiration_seconds: i64, jitter: i64) -> i64 {
    let issued = expires_at - expiration_seconds;
    let by_age = issued + MAX_TTL_SECONDS - jitter;
    let by_lifetime = expires_at - expiration_seconds * 20 / 100 - jitter;
    by_age.min(by_lifetime)
}

/// The TokenRequest the kubelet sends for a pod's projected token (k8s: the projected volume
/// plugin's request): bound to the pod, for the audience named (else the API's), for the
/// seconds asked (default 3600).
pub fn request(
    pod_name: &str,
    pod_uid: &str,
    audience: Option<&str>,
    expiration_seconds: Option<i64>,
) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "expirationSeconds": expiration_seconds.unwrap_or(3600),
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid},
    });
    if let Some(a) = audience.filter(|a| !a.is_empty()) {
        spec["audiences"] = serde_json::json!([a]);
    }
    serde_json::json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_at_four_fifths_of_their_life_or_a_day() {
        // (expires at, asked for, jitter, renew at) — k8s: requiresRefresh.
        let cases = [
            (3_600, 3_600, 0, 2_880),
            (3_600, 3_600, 10, 2_870),
            (3_607, 3_607, 0, 2_886),
            // A year-long token is renewed after a day.
            (365 * 86_400, 365 * 86_400, 0, 86_400),
            (2 * 86_400, 2 * 86_400, 5, 86_395),
        ];
        for (exp, ttl, jitter, want) in cases {
            assert_eq!(refresh_at(exp, ttl, jitter), want, "{exp} {ttl} {jitter}");
        }
    }

    #[test]
    fn requests_are_bound_to_the_pod() {
        let r = request("web", "u1", Some("vault"), Some(600));
        assert_eq!(r["spec"]["audiences"], serde_json::json!(["vault"]));
        assert_eq!(r["spec"]["expirationSeconds"], 600);
        assert_eq!(r["spec"]["boundObjectRef"]["uid"], "u1");
        let r = request("web", "u1", None, None);
        assert!(r["spec"].get("audiences").is_none());
        assert_eq!(r["spec"]["expirationSeconds"], 3600);
    }
}
