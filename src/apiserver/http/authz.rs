//! The authorization filter (k8s: staging/src/k8s.io/apiserver/pkg/endpoints/filters/
//! authorization.go): every request, resource or not, is resolved to its attributes and
//! authorized as its user before any handler runs; a refusal is a 403 Status.

use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};

use super::{respond, State};
use crate::auth::request_info;
use crate::auth::UserInfo;

/// The user a request acts as: the authenticated (or impersonated) one.
/// A request the authentication middleware did not see is anonymous (never so in a server).
pub fn request_user(req: &HttpRequest) -> Arc<UserInfo> {
    super::authn::user_of(req)
}

pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<State>>().cloned() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let user = match super::impersonation::impersonate(&state, req.request()) {
        Ok(Some(u)) => Arc::new(u),
        Ok(None) => request_user(req.request()),
        Err(e) => {
            let res = respond::error(&e);
            return Ok(req.into_response(res).map_into_right_body());
        }
    };
    let info = request_info::resolve(req.method().as_str(), req.path(), req.query_string());
    let mut checks = vec![info.attributes()];
    // k8s: AuthorizePodWebsocketUpgradeCreatePermission (on in v1.33) — a websocket GET of
    // pods/exec, attach or portforward also needs `create`.
    let upgrade = info.verb == "get"
        && info.resource == "pods"
        && matches!(info.subresource.as_str(), "exec" | "attach" | "portforward");
    if upgrade {
        checks.push(crate::auth::rbac::Attributes {
            verb: "create",
            ..info.attributes()
        });
    }
    for a in &checks {
        if let Err(e) = state.api.check(&user, a) {
            return Ok(req.into_response(respond::error(&e)).map_into_right_body());
        }
    }
    req.extensions_mut().insert(user);
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}
