//! SelfSubjectReview (k8s: pkg/registry/authentication/selfsubjectreview): a create that
//! answers with the requester's own user as authentication saw it, storing nothing. `kubectl
//! auth whoami` is built on it.

use serde_json::{json, Value};

use crate::api::status::ApiError;
use crate::auth::UserInfo;

/// The review for `user`; `body` is the request's (its metadata is echoed, as upstream).
pub fn review(user: &UserInfo, body: &[u8]) -> Result<Value, ApiError> {
    // A protobuf body (kubectl's clients may send one) carries nothing the answer needs.
    let json_body = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let metadata = if !json_body {
        json!({})
    } else {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body is not a SelfSubjectReview: {e}"))
        })?;
        v.get("metadata").cloned().unwrap_or_else(|| json!({}))
    };
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    Ok(json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": metadata,
        "status": {"userInfo": info},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_with_the_requester() {
        let admin = UserInfo::new("system:admin", &["system:masters", "system:authenticated"]);
        let r = review(&admin, b"").unwrap();
        assert_eq!(r["status"]["userInfo"]["username"], "system:admin");
        assert_eq!(
            r["status"]["userInfo"]["groups"],
            json!(["system:masters", "system:authenticated"])
        );
        assert!(r["status"]["userInfo"].get("uid").is_none());
        let mut sa = UserInfo::service_account("ns", "app");
        sa.uid = "u-1".into();
        sa.extra.insert(
            "authentication.kubernetes.io/pod-name".into(),
            vec!["p".into()],
        );
        let r = review(&sa, br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview","metadata":{"name":"x"}}"#)
            .unwrap();
        assert_eq!(r["metadata"]["name"], "x");
        assert_eq!(r["status"]["userInfo"]["uid"], "u-1");
        assert_eq!(
            r["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"],
            json!(["p"])
        );
        assert_eq!(review(&sa, b"{not json").unwrap_err().code, 400);
        assert_eq!(review(&sa, b"k8s\0\x0a").unwrap()["metadata"], json!({}));
    }
}
