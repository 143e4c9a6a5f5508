//! Responses: objects as JSON, and every error as a Kubernetes `Status` with the same HTTP code
//! (kubectl-compat.md §3), which kubectl prints as `Error from server (<reason>): <message>`.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use serde_json::{json, Value};

use crate::api::registry::ResourceInfo;
use crate::api::status::ApiError;

pub fn json<T: Serialize + ?Sized>(code: u16, body: &T) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(status_code(code))
            .content_type("application/json")
            .body(bytes),
        Err(e) => error(&ApiError::internal(format!(
            "cannot encode the response: {e}"
        ))),
    }
}

/// The Status object of an error, as a body or a watch's ERROR event carries it.
pub fn status(e: &ApiError) -> Value {
    let mut status = serde_json::to_value(e.to_status()).unwrap_or_else(|_| json!({}));
    // k8s: a Status always names its kind and carries (empty) metadata.
    status["kind"] = json!("Status");
    status["apiVersion"] = json!("v1");
    status["metadata"] = json!({});
    status
}

pub fn error(e: &ApiError) -> HttpResponse {
    let status = status(e);
    let mut response = HttpResponse::build(status_code(e.code));
    if e.code == 429 {
        response.insert_header(("Retry-After", "1"));
    }
    response
        .content_type("application/json")
        .body(serde_json::to_vec(&status).unwrap_or_default())
}

/// k8s: the Status a delete answers with when the object is gone.
pub fn deleted(res: &ResourceInfo, obj: &Value) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {
            "name": obj["metadata"]["name"],
            "group": res.group,
            "kind": res.plural,
            "uid": obj["metadata"]["uid"],
        },
    })
}

/// The Status a binding or an eviction answers with.
pub fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

fn status_code(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_plural;
    use actix_web::body::MessageBody;

    fn body(r: HttpResponse) -> (u16, Value) {
        let code = r.status().as_u16();
        let bytes = r.into_body().try_into_bytes().unwrap();
        (code, serde_json::from_slice(&bytes).unwrap())
    }

    #[test]
    fn errors_are_status_objects_with_their_code() {
        let deploys = by_plural("apps", "deployments").unwrap();
        let (code, s) = body(error(&ApiError::not_found(deploys, "nope")));
        assert_eq!(code, 404);
        assert_eq!(
            s,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "deployments.apps \"nope\" not found", "reason": "NotFound",
                   "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404})
        );
        let (code, s) = body(error(&ApiError::no_such_path()));
        assert_eq!((code, s.get("details")), (404, None));
        let (code, s) = body(error(&ApiError::too_large(10)));
        assert_eq!(
            (code, s["reason"].as_str()),
            (413, Some("RequestEntityTooLarge"))
        );
    }
}
