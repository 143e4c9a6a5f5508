//! `tokenreviews` (authentication.k8s.io/v1, create-only, never stored; k8s:
//! pkg/registry/authentication/tokenreview/storage.go): is this token valid, and whose is it?
//! Answered by the ServiceAccount token authenticator.

use serde_json::{json, Value};

use super::{ApiServer, RequestContext};
use crate::api::status::ApiError;
use crate::auth::serviceaccount::{authenticator, TokenVerdict};
use crate::store::Store;

impl<S: Store> ApiServer<S> {
    /// The TokenReview `review` with its status filled in.
    pub async fn review_token(
        &self,
        mut review: Value,
        ctx: &RequestContext,
    ) -> Result<Value, ApiError> {
        if review
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
        {
            return Err(ApiError::bad_request(
                "namespace is not allowed on this type",
            ));
        }
        let token = review
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if token.is_empty() {
            return Err(ApiError::bad_request(
                "token is required for TokenReview in authentication",
            ));
        }
        let requested: Option<Vec<String>> = review
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            });
        // MERGE: the other token authenticators of the HTTP chain (static token file,
        // bootstrap tokens) are to be asked too when this one says NotMine.
        let verdict =
            authenticator::authenticate(self, &token, requested.as_deref(), ctx.now).await;
        review["apiVersion"] = json!("authentication.k8s.io/v1");
        review["kind"] = json!("TokenReview");
        review["status"] = match verdict {
            TokenVerdict::User(user, audiences) => json!({
                "authenticated": true,
                "user": {"username": user.name, "uid": user.uid, "groups": user.groups,
                         "extra": user.extra},
                "audiences": audiences,
            }),
            TokenVerdict::Invalid(why) => json!({"user": {}, "error": why}),
            TokenVerdict::NotMine => json!({"user": {}}),
        };
        if !review["metadata"].is_object() {
            review["metadata"] = json!({});
        }
        review["metadata"]["creationTimestamp"] = Value::Null;
        Ok(review)
    }
}
