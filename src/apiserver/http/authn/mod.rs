//! Who sends a request (k8s: staging/src/k8s.io/apiserver/pkg/authentication): the HTTP
//! host turns a connection's client certificate or a request's bearer token into a
//! [`UserInfo`], puts it into the request's extensions (`Arc<UserInfo>`) for authorization
//! and the handlers, and answers a credential that is offered but not accepted with 401.
//!
//! The chain, as upstream's union authenticator (k8s: pkg/kubeapiserver/authenticator
//! config.go): x509 client certificates, then the bearer-token authenticators in order, then
//! anonymous when no credential was offered at all.

pub mod token_file;
pub mod x509;

use std::sync::{Arc, OnceLock};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use futures::future::LocalBoxFuture;

use crate::api::status::ApiError;
use crate::auth::user::{ALL_AUTHENTICATED, SYSTEM_MASTERS};
use crate::auth::UserInfo;

/// k8s: the old insecure port's user (pkg/kubeapiserver/server/insecure_handler.go).
pub const UNSECURED_USER: &str = "system:unsecured";

/// One way of knowing a bearer token (k8s: authenticator.Token). `None`: not a token this
/// authenticator accepts (the next one is asked; when none accepts, the request is 401).
pub trait TokenAuthenticator: Send + Sync {
    fn authenticate<'a>(&'a self, token: &'a str) -> LocalBoxFuture<'a, Option<UserInfo>>;
}

/// The request authenticators of a server.
#[derive(Default)]
pub struct Authenticator {
    /// Every request is `system:unsecured` in `system:masters` (`--insecure-http`).
    pub insecure: bool,
    /// Tried in order for `Authorization: Bearer <token>`.
    // MERGE: the satoken helper's ServiceAccount JWT authenticator
    // (src/auth/serviceaccount/) is pushed here, after the static token file, as
    // kube-apiserver orders them (k8s: config.go: token file, then service accounts, then
    // bootstrap tokens).
    pub tokens: Vec<Box<dyn TokenAuthenticator>>,
}

/// What a request offers to prove who sends it.
#[derive(Debug, PartialEq, Eq)]
pub enum Credential<'a> {
    None,
    Bearer(&'a str),
    /// An Authorization header of another scheme (Basic, ...), or an empty token.
    Unsupported,
}

/// k8s: request/bearertoken: the trimmed header split at single spaces, `Bearer` in any case,
/// the token the second part (a third part is ignored, an empty token is none).
pub fn credential(authorization: Option<&str>) -> Credential<'_> {
    let Some(value) = authorization else {
        return Credential::None;
    };
    let mut parts = value.trim().splitn(3, ' ');
    let (scheme, token) = (parts.next().unwrap_or(""), parts.next());
    match token {
        Some(token) if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() => {
            Credential::Bearer(token)
        }
        _ => Credential::Unsupported,
    }
}

/// Every authenticated user is in `system:authenticated` (k8s: group.AuthenticatedGroupAdder).
pub fn authenticated(mut user: UserInfo) -> UserInfo {
    if !user.in_group(ALL_AUTHENTICATED) {
        user.groups.push(ALL_AUTHENTICATED.to_string());
    }
    user
}

impl Authenticator {
    /// The user of one request: the client certificate's, else the bearer token's, else
    /// anonymous; `Err` (401) for a token nobody accepts. The certificate's user is the
    /// connection's (made once per connection), shared by its requests.
    pub async fn authenticate(
        &self,
        certificate_user: Option<&Arc<UserInfo>>,
        authorization: Option<&str>,
    ) -> Result<Arc<UserInfo>, ApiError> {
        static UNSECURED: OnceLock<Arc<UserInfo>> = OnceLock::new();
        static ANONYMOUS: OnceLock<Arc<UserInfo>> = OnceLock::new();
        let anonymous = || {
            ANONYMOUS
                .get_or_init(|| Arc::new(UserInfo::anonymous()))
                .clone()
        };
        if self.insecure {
            return Ok(UNSECURED
                .get_or_init(|| {
                    Arc::new(UserInfo::new(
                        UNSECURED_USER,
                        &[SYSTEM_MASTERS, ALL_AUTHENTICATED],
                    ))
                })
                .clone());
        }
        if let Some(user) = certificate_user {
            if user.in_group(ALL_AUTHENTICATED) {
                return Ok(user.clone());
            }
            return Ok(Arc::new(authenticated(UserInfo::clone(user))));
        }
        match credential(authorization) {
            Credential::None => Ok(anonymous()),
            // k8s: the Basic scheme is not served since v1.19; an unknown scheme is not a
            // bearer token and authenticates nobody (anonymous).
            Credential::Unsupported => Ok(anonymous()),
            Credential::Bearer(token) => {
                for a in &self.tokens {
                    if let Some(user) = a.authenticate(token).await {
                        return Ok(Arc::new(authenticated(user)));
                    }
                }
                // k8s: bearertoken.go: "invalid bearer token".
                Err(ApiError::unauthorized())
            }
        }
    }
}

/// The middleware's work on one request: its user into the extensions, or a 401 answer.
pub async fn authenticate_request(
    authn: &Authenticator,
    req: &ServiceRequest,
) -> Result<Arc<UserInfo>, ApiError> {
    let cert_user = req.conn_data::<x509::PeerUser>().and_then(|p| p.0.as_ref());
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = authn.authenticate(cert_user, authorization).await?;
    req.extensions_mut().insert(user.clone());
    Ok(user)
}

/// The authentication middleware (k8s: filters.WithAuthentication): the request's user into
/// its extensions, or 401 with a Status; with the -v=4 line of every request, its user and
/// its answer's code. The [`Authenticator`] is the app's data.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // The request line only when it is logged (-v=4).
    let line = tracing::enabled!(tracing::Level::DEBUG)
        .then(|| (req.method().clone(), req.path().to_string()));
    let authn = req.app_data::<web::Data<Authenticator>>().cloned();
    let outcome = match &authn {
        Some(authn) => authenticate_request(authn, &req).await,
        None => Err(ApiError::internal("no authenticator")),
    };
    match outcome {
        Ok(user) => {
            let res = next.call(req).await?;
            if let Some((method, path)) = &line {
                tracing::debug!(
                    "{method} {path} {} user={:?} groups={:?}",
                    res.status().as_u16(),
                    user.name,
                    user.groups
                );
            }
            Ok(res.map_into_left_body())
        }
        Err(e) => {
            if let Some((method, path)) = &line {
                tracing::debug!("{method} {path} {} ({})", e.code, e.message);
            }
            Ok(refused(req, &e).map_into_right_body())
        }
    }
}

/// The user a handler runs for (anonymous if no middleware put one in: never so in a server).
pub fn user_of(req: &actix_web::HttpRequest) -> Arc<UserInfo> {
    req.extensions()
        .get::<Arc<UserInfo>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(UserInfo::anonymous()))
}

/// The response for a request that failed authentication, for the middleware.
pub fn refused(req: ServiceRequest, e: &ApiError) -> ServiceResponse {
    req.into_response(super::respond::error(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn file() -> Box<dyn TokenAuthenticator> {
        Box::new(token_file::TokenFile::parse("good,alice,1,\"dev,ops\"\n").unwrap())
    }

    /// A user's name and groups, or the refusal's code.
    type Want = Result<(&'static str, &'static str), u16>;
    /// A client certificate's user, an Authorization header, and the outcome.
    type Case<'a> = (Option<&'a Arc<UserInfo>>, Option<&'a str>, Want);

    #[test]
    fn the_chain_decides_as_upstream() {
        let chain = Authenticator {
            insecure: false,
            tokens: vec![file()],
        };
        let cert = Arc::new(UserInfo::new("system:admin", &["system:masters"]));
        let names = |u: &UserInfo| (u.name.clone(), u.groups.join(","));
        // (client certificate user, Authorization header, user name and groups or 401)
        let cases: Vec<Case<'_>> = vec![
            (
                None,
                None,
                Ok(("system:anonymous", "system:unauthenticated")),
            ),
            (
                None,
                Some("Bearer good"),
                Ok(("alice", "dev,ops,system:authenticated")),
            ),
            (
                None,
                Some(" bearer good extra "),
                Ok(("alice", "dev,ops,system:authenticated")),
            ),
            // k8s: split at single spaces: a second blank makes the token empty.
            (
                None,
                Some("Bearer  good"),
                Ok(("system:anonymous", "system:unauthenticated")),
            ),
            (None, Some("Bearer nonsense"), Err(401)),
            (
                None,
                Some("Basic YWxpY2U6cHc="),
                Ok(("system:anonymous", "system:unauthenticated")),
            ),
            (
                None,
                Some("Bearer "),
                Ok(("system:anonymous", "system:unauthenticated")),
            ),
            // k8s: the x509 authenticator comes first in the union: a certificate wins.
            (
                Some(&cert),
                None,
                Ok(("system:admin", "system:masters,system:authenticated")),
            ),
            (
                Some(&cert),
                Some("Bearer nonsense"),
                Ok(("system:admin", "system:masters,system:authenticated")),
            ),
        ];
        for (cert, header, want) in cases {
            let got = chain
                .authenticate(cert, header)
                .now_or_never()
                .unwrap()
                .map(|u| names(&u))
                .map_err(|e| e.code);
            let want = want.map(|(n, g)| (n.to_string(), g.to_string()));
            assert_eq!(got, want, "{cert:?} {header:?}");
        }
        let insecure = Authenticator {
            insecure: true,
            tokens: Vec::new(),
        };
        let u = insecure
            .authenticate(None, Some("Bearer nonsense"))
            .now_or_never()
            .unwrap()
            .unwrap();
        assert_eq!(
            names(&u),
            (
                "system:unsecured".into(),
                "system:masters,system:authenticated".into()
            )
        );
    }

    #[test]
    fn unauthorized_is_upstreams_status() {
        let s = super::super::respond::status(&ApiError::unauthorized());
        assert_eq!(
            s,
            serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": "Unauthorized",
                               "reason": "Unauthorized", "code": 401})
        );
    }
}
