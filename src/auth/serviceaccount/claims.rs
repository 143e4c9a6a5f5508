//! The claims of ServiceAccount tokens (k8s: pkg/serviceaccount/claims.go and legacy.go) and
//! their time checks.

use serde_json::{json, Map, Value};

/// k8s: the `iss` of secret-based (legacy) tokens.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// k8s: jwt.DefaultLeeway (go-jose): a minute of clock skew either way.
pub const LEEWAY_SECONDS: i64 = 60;
/// k8s: token.WarnOnlyBoundTokenExpirationSeconds — the kubelet's projected-token lifetime,
/// which the apiserver extends (to ExpirationExtensionSeconds) and only warns after.
pub const WARN_ONLY_EXPIRATION_SECONDS: i64 = 60 * 60 + 7;
/// k8s: token.ExpirationExtensionSeconds (a year).
pub const EXPIRATION_EXTENSION_SECONDS: i64 = 24 * 365 * 60 * 60;

/// An object a token names: name and uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ref {
    pub name: String,
    pub uid: String,
}

impl Ref {
    pub fn new(name: &str, uid: &str) -> Ref {
        Ref {
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.name.is_empty() {
            m.insert("name".into(), json!(self.name));
        }
        if !self.uid.is_empty() {
            m.insert("uid".into(), json!(self.uid));
        }
        Value::Object(m)
    }

    fn from_json(v: &Value) -> Option<Ref> {
        v.is_object().then(|| Ref {
            name: v["name"].as_str().unwrap_or("").into(),
            uid: v["uid"].as_str().unwrap_or("").into(),
        })
    }
}

/// What a bound token says (k8s: the public jwt.Claims plus privateClaims).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bound {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Seconds since the epoch.
    pub issued_at: i64,
    pub not_before: i64,
    pub expiry: i64,
    pub jti: String,
    pub namespace: String,
    pub service_account: Ref,
    pub pod: Option<Ref>,
    pub secret: Option<Ref>,
    pub node: Option<Ref>,
    /// k8s: `warnafter`, set on the extended projected tokens.
    pub warn_after: Option<i64>,
}

/// k8s: serviceaccount.MakeUsername.
pub fn subject(namespace: &str, name: &str) -> String {
    format!(
        "{}{namespace}:{name}",
        crate::auth::user::SERVICE_ACCOUNT_USER_PREFIX
    )
}

impl Bound {
    /// The JWT claims (k8s: token.Claims).
    pub fn to_json(&self) -> Value {
        let mut k8s = Map::new();
        k8s.insert("namespace".into(), json!(self.namespace));
        k8s.insert("serviceaccount".into(), self.service_account.to_json());
        for (key, r) in [
            ("pod", &self.pod),
            ("secret", &self.secret),
            ("node", &self.node),
        ] {
            if let Some(r) = r {
                k8s.insert(key.into(), r.to_json());
            }
        }
        if let Some(w) = self.warn_after {
            k8s.insert("warnafter".into(), json!(w));
        }
        json!({
            "aud": self.audiences,
            "exp": self.expiry,
            "iat": self.issued_at,
            "iss": self.issuer,
            "jti": self.jti,
            "kubernetes.io": k8s,
            "nbf": self.not_before,
            "sub": subject(&self.namespace, &self.service_account.name),
        })
    }

    /// The claims of a bound token, or why they are not (a missing `kubernetes.io` claim or
    /// a subject that does not match it).
    pub fn from_json(c: &Value) -> Result<Bound, String> {
        let k8s = c
            .get("kubernetes.io")
            .filter(|v| v.is_object())
            .ok_or("service account token claims are missing kubernetes.io")?;
        let int = |k: &str| c.get(k).and_then(Value::as_i64).unwrap_or(0);
        // k8s: jwt.Audience accepts a string or a list of strings.
        let audiences = match c.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        let b = Bound {
            issuer: c["iss"].as_str().unwrap_or("").into(),
            audiences,
            issued_at: int("iat"),
            not_before: int("nbf"),
            expiry: int("exp"),
            jti: c["jti"].as_str().unwrap_or("").into(),
            namespace: k8s["namespace"].as_str().unwrap_or("").into(),
            service_account: Ref::from_json(&k8s["serviceaccount"]).unwrap_or_default(),
            pod: Ref::from_json(&k8s["pod"]),
            secret: Ref::from_json(&k8s["secret"]),
            node: Ref::from_json(&k8s["node"]),
            warn_after: k8s.get("warnafter").and_then(Value::as_i64),
        };
        if b.namespace.is_empty() || b.service_account.name.is_empty() {
            return Err("service account token claims are missing the service account".into());
        }
        if c["sub"].as_str() != Some(&subject(&b.namespace, &b.service_account.name)) {
            return Err("service account token subject does not match its claims".into());
        }
        Ok(b)
    }

    /// k8s: jwt.Claims.Validate with DefaultLeeway, and upstream's messages for each case.
    /// A claim that is absent (zero) is not checked, as go-jose does.
    pub fn check_times(&self, now: i64) -> Result<(), String> {
        if self.expiry != 0 && now - LEEWAY_SECONDS > self.expiry {
            return Err("service account token has expired".into());
        }
        if self.not_before != 0 && now + LEEWAY_SECONDS < self.not_before {
            return Err("service account token is not valid yet".into());
        }
        if self.issued_at != 0 && now + LEEWAY_SECONDS < self.issued_at {
            return Err("service account token is issued in the future".into());
        }
        Ok(())
    }
}

/// What a secret-based token says (k8s: legacyPrivateClaims).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Legacy {
    pub namespace: String,
    pub service_account: Ref,
    pub secret_name: String,
}

impl Legacy {
    /// k8s: LegacyClaims — no expiry, no audience.
    pub fn to_json(&self) -> Value {
        json!({
            "iss": LEGACY_ISSUER,
            "kubernetes.io/serviceaccount/namespace": self.namespace,
            "kubernetes.io/serviceaccount/secret.name": self.secret_name,
            "kubernetes.io/serviceaccount/service-account.name": self.service_account.name,
            "kubernetes.io/serviceaccount/service-account.uid": self.service_account.uid,
            "sub": subject(&self.namespace, &self.service_account.name),
        })
    }

    pub fn from_json(c: &Value) -> Result<Legacy, String> {
        let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
        let l = Legacy {
            namespace: s("kubernetes.io/serviceaccount/namespace"),
            service_account: Ref::new(
                &s("kubernetes.io/serviceaccount/service-account.name"),
                &s("kubernetes.io/serviceaccount/service-account.uid"),
            ),
            secret_name: s("kubernetes.io/serviceaccount/secret.name"),
        };
        // k8s: legacy.go's Validate, field by field.
        if l.namespace.is_empty() {
            return Err("namespace claim is missing".into());
        }
        if l.secret_name.is_empty() {
            return Err("secretName claim is missing".into());
        }
        if l.service_account.name.is_empty() {
            return Err("serviceAccountName claim is missing".into());
        }
        if l.service_account.uid.is_empty() {
            return Err("serviceAccountUID claim is missing".into());
        }
        if c["sub"].as_str() != Some(&subject(&l.namespace, &l.service_account.name)) {
            return Err("sub claim is invalid".into());
        }
        Ok(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound() -> Bound {
        Bound {
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
            audiences: vec!["https://kubernetes.default.svc.cluster.local".into()],
            issued_at: 1000,
            not_before: 1000,
            expiry: 4600,
            jti: "j-1".into(),
            namespace: "ns".into(),
            service_account: Ref::new("builder", "sa-uid"),
            pod: Some(Ref::new("web", "pod-uid")),
            secret: None,
            node: Some(Ref::new("n1", "")),
            warn_after: None,
        }
    }

    #[test]
    fn bound_claims_have_upstreams_shape_and_round_trip() {
        let c = bound().to_json();
        assert_eq!(c["sub"], "system:serviceaccount:ns:builder");
        assert_eq!(
            c["kubernetes.io"]["serviceaccount"],
            json!({"name": "builder", "uid": "sa-uid"})
        );
        assert_eq!(
            c["kubernetes.io"]["pod"],
            json!({"name": "web", "uid": "pod-uid"})
        );
        // An empty uid is left out (k8s: `omitempty`), and so is an absent secret.
        assert_eq!(c["kubernetes.io"]["node"], json!({"name": "n1"}));
        assert!(c["kubernetes.io"].get("secret").is_none());
        assert_eq!(Bound::from_json(&c), Ok(bound()));
        // A single audience may be a string.
        let mut one = c.clone();
        one["aud"] = json!("x");
        assert_eq!(Bound::from_json(&one).unwrap().audiences, vec!["x"]);
    }

    #[test]
    fn bound_claims_that_do_not_hold_together_are_refused() {
        let c = bound().to_json();
        let mut cases: Vec<(Value, &str)> = Vec::new();
        let mut no_k8s = c.clone();
        no_k8s.as_object_mut().unwrap().remove("kubernetes.io");
        cases.push((no_k8s, "missing kubernetes.io"));
        let mut other_sub = c.clone();
        other_sub["sub"] = json!("system:serviceaccount:ns:admin");
        cases.push((other_sub, "subject does not match"));
        let mut no_sa = c.clone();
        no_sa["kubernetes.io"]["serviceaccount"] = json!({});
        cases.push((no_sa, "missing the service account"));
        for (claims, want) in cases {
            let err = Bound::from_json(&claims).unwrap_err();
            assert!(err.contains(want), "{err}");
        }
    }

    #[test]
    fn times_are_checked_with_a_minute_of_leeway() {
        // (iat, nbf, exp, now, want) — k8s: go-jose's Validate with DefaultLeeway.
        type Case = (i64, i64, i64, i64, Result<(), &'static str>);
        let cases: &[Case] = &[
            (1000, 1000, 4600, 2000, Ok(())),
            (1000, 1000, 4600, 4660, Ok(())),
            (
                1000,
                1000,
                4600,
                4661,
                Err("service account token has expired"),
            ),
            (1000, 1000, 4600, 940, Ok(())),
            (
                1000,
                1000,
                4600,
                939,
                Err("service account token is not valid yet"),
            ),
            (
                1000,
                0,
                4600,
                939,
                Err("service account token is issued in the future"),
            ),
            (0, 0, 0, 1 << 40, Ok(())),
        ];
        for &(iat, nbf, exp, now, want) in cases {
            let b = Bound {
                issued_at: iat,
                not_before: nbf,
                expiry: exp,
                ..bound()
            };
            assert_eq!(
                b.check_times(now),
                want.map_err(String::from),
                "{iat} {nbf} {exp} {now}"
            );
        }
    }

    #[test]
    fn legacy_claims_as_upstream() {
        let l = Legacy {
            namespace: "ns".into(),
            service_account: Ref::new("builder", "sa-uid"),
            secret_name: "builder-token".into(),
        };
        let c = l.to_json();
        assert_eq!(c["iss"], LEGACY_ISSUER);
        assert_eq!(
            c["kubernetes.io/serviceaccount/secret.name"],
            "builder-token"
        );
        assert_eq!(Legacy::from_json(&c), Ok(l));
        for (field, want) in [
            (
                "kubernetes.io/serviceaccount/namespace",
                "namespace claim is missing",
            ),
            (
                "kubernetes.io/serviceaccount/secret.name",
                "secretName claim is missing",
            ),
            (
                "kubernetes.io/serviceaccount/service-account.uid",
                "serviceAccountUID claim is missing",
            ),
            ("sub", "sub claim is invalid"),
        ] {
            let mut bad = c.clone();
            bad.as_object_mut().unwrap().remove(field);
            assert_eq!(Legacy::from_json(&bad), Err(want.to_string()), "{field}");
        }
    }
}
