//! The ServiceAccount token authenticator (k8s: pkg/serviceaccount/jwt.go, lookup.go and
//! legacy.go): a token of ours — signed by our key, issued by us — becomes the
//! ServiceAccount's user while the ServiceAccount (and the object the token is bound to)
//! still exists with the UID the token names.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::claims::{Bound, Legacy, Ref, LEEWAY_SECONDS, LEGACY_ISSUER};
use super::{jwt, TokenConfig};
use crate::api::registry;
use crate::apiserver::ApiServer;
use crate::auth::UserInfo;
use crate::store::Store;

/// k8s: serviceaccount.PodNameKey and the other extra keys of a ServiceAccount's user.
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";

/// What the authenticator makes of a bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenVerdict {
    /// Ours and valid: the user, and the audiences it is valid for (the requested ones it
    /// names).
    User(UserInfo, Vec<String>),
    /// Ours (our issuer) but not valid: why (a 401 for the request).
    Invalid(String),
    /// Not a JWT, or another issuer's: the next authenticator may take it.
    NotMine,
}

/// Authenticates `token` for `requested` audiences (`None`: the API audiences, as for a
/// request to this server) at `now`.
pub async fn authenticate<S: Store>(
    api: &ApiServer<S>,
    token: &str,
    requested: Option<&[String]>,
    now: Timestamp,
) -> TokenVerdict {
    let Some(cfg) = api.tokens() else {
        return TokenVerdict::NotMine;
    };
    let Some(parsed) = jwt::parse(token) else {
        return TokenVerdict::NotMine;
    };
    // k8s: hasCorrectIssuer, read before the signature is checked.
    let issuer = parsed.claims["iss"].as_str().unwrap_or("");
    let legacy = issuer == LEGACY_ISSUER;
    if !legacy && issuer != cfg.issuer {
        return TokenVerdict::NotMine;
    }
    if let Err(why) = check_signature(cfg, &parsed) {
        return TokenVerdict::Invalid(why);
    }
    let (user, token_audiences) = if legacy {
        match validate_legacy(api, token, &parsed.claims).await {
            Ok(user) => (user, Vec::new()),
            Err(why) => return TokenVerdict::Invalid(why),
        }
    } else {
        match validate_bound(api, &parsed.claims, now).await {
            Ok(ok) => ok,
            Err(why) => return TokenVerdict::Invalid(why),
        }
    };
    // k8s: a token without audiences (legacy) is for the API audiences only; the audiences
    // it is good for are those it names that the request asks for.
    let token_audiences = if token_audiences.is_empty() {
        cfg.api_audiences.clone()
    } else {
        token_audiences
    };
    let requested = requested.unwrap_or(&cfg.api_audiences);
    let audiences: Vec<String> = token_audiences
        .iter()
        .filter(|a| requested.contains(a))
        .cloned()
        .collect();
    if audiences.is_empty() {
        return TokenVerdict::Invalid(format!(
            "token audiences {token_audiences:?} is invalid for the target audiences {requested:?}"
        ));
    }
    TokenVerdict::User(user, audiences)
}

fn check_signature(cfg: &TokenConfig, parsed: &jwt::Parsed<'_>) -> Result<(), String> {
    let keys = &*cfg.keys;
    let alg = parsed.header["alg"].as_str().unwrap_or("");
    if alg != keys.algorithm() {
        return Err(format!(
            "invalid bearer token, unexpected signature algorithm {alg:?}"
        ));
    }
    if let Some(kid) = parsed.header["kid"].as_str() {
        if kid != keys.key_id() {
            return Err(format!(
                "invalid bearer token, no key found for kid {kid:?}"
            ));
        }
    }
    if !keys.verify(parsed.signing_input.as_bytes(), &parsed.signature) {
        return Err(
            "invalid bearer token, square/go-jose: error in cryptographic primitive".into(),
        );
    }
    Ok(())
}

/// An object a token points at, or `None` when it is gone.
async fn lookup<S: Store>(
    api: &ApiServer<S>,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<Value> {
    let res = registry::by_plural("", plural).expect("registered");
    api.get(res, namespace, name).await.ok()
}

/// Whether `obj` was deleted long enough ago (k8s: deletionTimestamp before now − leeway).
fn deleted_before(obj: &Value, now: i64) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<Timestamp>().ok())
        .is_some_and(|t| t.as_second() < now - LEEWAY_SECONDS)
}

fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// k8s: validator.Validate of lookup.go.
async fn validate_bound<S: Store>(
    api: &ApiServer<S>,
    claims: &Value,
    now: Timestamp,
) -> Result<(UserInfo, Vec<String>), String> {
    let b = Bound::from_json(claims)?;
    let now = now.as_second();
    b.check_times(now)?;
    let ns = b.namespace.as_str();
    let sa = &b.service_account;
    let found = lookup(api, "serviceaccounts", Some(ns), &sa.name)
        .await
        .ok_or("service account token has been invalidated")?;
    if uid(&found) != sa.uid {
        return Err(format!(
            "service account UID ({}) does not match claim ({})",
            uid(&found),
            sa.uid
        ));
    }
    if deleted_before(&found, now) {
        return Err(format!("service account {ns}/{} has been deleted", sa.name));
    }
    // The object the token is bound to must be there with the UID named.
    let bound: [(&str, &str, &Option<Ref>); 2] =
        [("secret", "secrets", &b.secret), ("pod", "pods", &b.pod)];
    for (what, plural, r) in bound {
        let Some(r) = r else { continue };
        let obj = lookup(api, plural, Some(ns), &r.name)
            .await
            .ok_or("service account token has been invalidated")?;
        if uid(&obj) != r.uid {
            return Err(format!(
                "{what} UID ({}) does not match service account {what} ref claim ({})",
                uid(&obj),
                r.uid
            ));
        }
        if deleted_before(&obj, now) {
            return Err(format!("{what} {ns}/{} has been deleted", r.name));
        }
    }
    // k8s: a node-bound token (not one for a pod on the node) needs its node.
    if let (Some(node), None) = (&b.node, &b.pod) {
        let obj = lookup(api, "nodes", None, &node.name)
            .await
            .ok_or("service account token has been invalidated")?;
        if uid(&obj) != node.uid {
            return Err(format!(
                "node UID ({}) does not match service account node ref claim ({})",
                uid(&obj),
                node.uid
            ));
        }
        if deleted_before(&obj, now) {
            return Err(format!("node {} has been deleted", node.name));
        }
    }
    // k8s: ServiceAccountInfo.UserInfo.
    let mut user = UserInfo::service_account(ns, &sa.name);
    user.uid = sa.uid.clone();
    let mut extra = |k: &str, v: &str| {
        user.extra.insert(k.to_string(), vec![v.to_string()]);
    };
    if let Some(p) = b
        .pod
        .as_ref()
        .filter(|p| !p.name.is_empty() && !p.uid.is_empty())
    {
        extra(POD_NAME_KEY, &p.name);
        extra(POD_UID_KEY, &p.uid);
    }
    if !b.jti.is_empty() {
        extra(CREDENTIAL_ID_KEY, &format!("JTI={}", b.jti));
    }
    if let Some(n) = b.node.as_ref().filter(|n| !n.name.is_empty()) {
        extra(NODE_NAME_KEY, &n.name);
        if !n.uid.is_empty() {
            extra(NODE_UID_KEY, &n.uid);
        }
    }
    Ok((user, b.audiences))
}

/// k8s: legacy.go's Validate: the Secret holds this very token, and the ServiceAccount it
/// names is there with the UID named.
async fn validate_legacy<S: Store>(
    api: &ApiServer<S>,
    token: &str,
    claims: &Value,
) -> Result<UserInfo, String> {
    let l = Legacy::from_json(claims)?;
    let ns = l.namespace.as_str();
    let secret = lookup(api, "secrets", Some(ns), &l.secret_name)
        .await
        .filter(|s| s.pointer("/metadata/deletionTimestamp").is_none())
        .ok_or("token has been invalidated")?;
    let stored = secret
        .pointer("/data/token")
        .and_then(Value::as_str)
        .and_then(jwt::b64std_decode);
    if stored.as_deref() != Some(token.as_bytes()) {
        return Err("token does not match server's copy".into());
    }
    let sa = &l.service_account;
    let found = lookup(api, "serviceaccounts", Some(ns), &sa.name)
        .await
        .ok_or_else(|| format!("serviceaccounts \"{}\" not found", sa.name))?;
    if found.pointer("/metadata/deletionTimestamp").is_some() {
        return Err(format!("ServiceAccount {ns}/{} has been deleted", sa.name));
    }
    if uid(&found) != sa.uid {
        return Err(format!(
            "ServiceAccount UID ({}) does not match claim ({})",
            uid(&found),
            sa.uid
        ));
    }
    let mut user = UserInfo::service_account(ns, &sa.name);
    user.uid = sa.uid.clone();
    Ok(user)
}
