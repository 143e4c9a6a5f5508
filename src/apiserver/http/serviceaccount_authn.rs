//! The ServiceAccount token authenticator for the HTTP authentication chain: a bearer token
//! that is one of our JWTs becomes its ServiceAccount's user, checked at the wall clock's
//! time for the API audiences.

use std::sync::Arc;

use futures::future::LocalBoxFuture;
use futures::FutureExt;

use crate::apiserver::ApiServer;
use crate::auth::serviceaccount::{authenticator, TokenVerdict};
use crate::auth::UserInfo;
use crate::store::backend::Backend;

/// k8s: the service-account token authenticator of kube-apiserver's union (after the token
/// file, before bootstrap tokens).
pub struct ServiceAccountTokens(pub Arc<ApiServer<Backend>>);

impl super::authn::TokenAuthenticator for ServiceAccountTokens {
    fn authenticate<'a>(&'a self, token: &'a str) -> LocalBoxFuture<'a, Option<UserInfo>> {
        self.user_of(token)
    }
}

impl ServiceAccountTokens {
    /// The user of `token`, or `None` when it is not ours or not valid (the chain then tries
    /// the next authenticator and answers 401 when none accepts it).
    pub fn user_of<'a>(&'a self, token: &'a str) -> LocalBoxFuture<'a, Option<UserInfo>> {
        async move {
            let now = k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(
                super::wall_clock().as_nanos(),
            ))
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
            match authenticator::authenticate(&self.0, token, None, now).await {
                TokenVerdict::User(user, _) => Some(user),
                TokenVerdict::Invalid(why) => {
                    tracing::debug!("service account token refused: {why}");
                    None
                }
                TokenVerdict::NotMine => None,
            }
        }
        .boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_plural;
    use crate::auth::serviceaccount::es256::Es256Keys;
    use crate::auth::serviceaccount::TokenConfig;
    use crate::store::backend::BackendConfig;
    use serde_json::json;

    #[tokio::test]
    async fn our_tokens_are_users_and_others_are_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Backend::open(&BackendConfig::Embedded {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let keys = Arc::new(Es256Keys::generate().unwrap().0);
        let api = Arc::new(ApiServer::new(store).with_tokens(TokenConfig::new(keys)));
        let mut rng = rand::rngs::mock::StepRng::new(1, 7);
        let mut ctx =
            || crate::apiserver::RequestContext::from_rng(super::super::wall_clock(), &mut rng);
        let ns = json!({"metadata": {"name": "default"}});
        api.create(by_plural("", "namespaces").unwrap(), None, ns, &ctx())
            .await
            .unwrap();
        let sa = json!({"metadata": {"name": "robot"}});
        let sas = by_plural("", "serviceaccounts").unwrap();
        api.create(sas, Some("default"), sa, &ctx()).await.unwrap();
        let issued = api
            .create_token("default", "robot", json!({}), &ctx())
            .await
            .unwrap();
        let token = issued.request["status"]["token"]
            .as_str()
            .unwrap()
            .to_string();
        let authn = ServiceAccountTokens(api);
        let user = authn.user_of(&token).await.expect("our token");
        assert_eq!(user.name, "system:serviceaccount:default:robot");
        assert_eq!(authn.user_of("not-a-jwt").await, None);
        // One character of the signature changed.
        let at = token.rfind('.').unwrap() + 10;
        let swap = if &token[at..=at] == "A" { "B" } else { "A" };
        let tampered = format!("{}{swap}{}", &token[..at], &token[at + 1..]);
        assert_eq!(authn.user_of(&tampered).await, None);
    }
}
