//! API errors as Kubernetes reports them: a `Status` with code, reason, message and details.
//! Messages follow the apiserver's wording, since users and clients match on them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

use crate::api::registry::ResourceInfo;
use crate::store::StoreError;

/// One invalid field: `field` is the JSON path (`spec.containers[0].name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    /// The cause type: `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`, ...
    pub kind: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: "FieldValueRequired",
            message: "Required value".into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        why: impl std::fmt::Display,
    ) -> Self {
        FieldError {
            field: field.into(),
            kind: "FieldValueInvalid",
            message: format!("Invalid value: \"{value}\": {why}"),
        }
    }

    pub fn forbidden(field: impl Into<String>, why: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            kind: "FieldValueForbidden",
            message: format!("Forbidden: {}", why.into()),
        }
    }

    pub fn duplicate(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        FieldError {
            field: field.into(),
            kind: "FieldValueDuplicate",
            message: format!("Duplicate value: \"{value}\""),
        }
    }

    pub fn not_supported(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        supported: &[&str],
    ) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        FieldError {
            field: field.into(),
            kind: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        }
    }

    /// `spec.x: Required value`, as it appears inside an Invalid message.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    /// Kubernetes' StatusReason (`NotFound`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Box<ErrorDetails>>,
}

/// What the error is about (a Status's `details`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorDetails {
    pub name: String,
    pub group: String,
    /// The resource's plural for most errors, its Kind for Invalid (as upstream).
    pub kind: String,
    pub causes: Vec<FieldError>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, res: &ResourceInfo, name: &str) -> Self {
        self.details = Some(Box::new(ErrorDetails {
            name: name.to_string(),
            group: res.group.to_string(),
            kind: res.plural.to_string(),
            causes: Vec::new(),
        }));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// k8s: a credential offered but not accepted (apiserver/pkg/endpoints/handlers/
    /// responsewriters.UnauthorizedNegotiated): 401 with the bare message "Unauthorized".
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_found(res: &ResourceInfo, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(res)),
        )
        .about(res, name)
    }

    pub fn already_exists(res: &ResourceInfo, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(res)),
        )
        .about(res, name)
    }

    /// k8s: the optimistic-concurrency message clients recognise.
    pub fn conflict(res: &ResourceInfo, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(res)
            ),
        )
        .about(res, name)
    }

    pub fn stale(res: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            res,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(res: &ResourceInfo, name: &str, causes: Vec<FieldError>) -> Self {
        let list: Vec<String> = causes.iter().map(FieldError::describe).collect();
        let joined = if list.len() == 1 {
            list[0].clone()
        } else {
            format!("[{}]", list.join(", "))
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {joined}", res.kind),
        );
        e.details = Some(Box::new(ErrorDetails {
            name: name.to_string(),
            group: res.group.to_string(),
            kind: res.kind.to_string(),
            causes,
        }));
        e
    }

    pub fn forbidden(res: &ResourceInfo, name: &str, why: impl std::fmt::Display) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{} \"{name}\" is forbidden: {why}", qualified(res)),
        )
        .about(res, name)
    }

    /// k8s: errors.NewForbidden(GroupResource{group, resource}, name, message), as the
    /// authorization filter answers: no resource gives `forbidden: <message>`.
    pub fn forbidden_resource(group: &str, resource: &str, name: &str, message: String) -> Self {
        let qualified = if group.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}.{group}")
        };
        let text = if resource.is_empty() {
            format!("forbidden: {message}")
        } else if name.is_empty() {
            format!("{qualified} is forbidden: {message}")
        } else {
            format!("{qualified} \"{name}\" is forbidden: {message}")
        };
        let mut e = Self::new(403, "Forbidden", text);
        e.details = Some(Box::new(ErrorDetails {
            name: name.to_string(),
            group: group.to_string(),
            kind: resource.to_string(),
            causes: Vec::new(),
        }));
        e
    }

    /// A URL that names no resource (k8s: no details, this exact message).
    pub fn no_such_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}); accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(504, "Timeout", message)
    }

    /// A store failure seen while serving `name` of `res`.
    pub fn from_store(res: &ResourceInfo, name: &str, e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(res, name),
            StoreError::AlreadyExists { .. } => Self::already_exists(res, name),
            StoreError::Conflict { .. } => Self::stale(res, name),
            StoreError::Expired {
                requested,
                compacted,
                ..
            } => Self::expired(format!(
                "too old resource version: {requested} ({})",
                compacted + 1
            )),
            StoreError::Timeout { .. } => Self::timeout(e.to_string()),
            StoreError::Unavailable { .. } | StoreError::WatchClosed { .. } => {
                Self::unavailable(e.to_string())
            }
            StoreError::Corrupt { .. } | StoreError::Io { .. } | StoreError::Invalid(_) => {
                Self::internal(e.to_string())
            }
        }
    }

    /// The `Status` object sent to clients.
    pub fn to_status(&self) -> Status {
        Status {
            status: Some("Failure".into()),
            message: Some(self.message.clone()),
            reason: Some(self.reason.into()),
            code: Some(self.code as i32),
            details: self.details.as_ref().map(|d| StatusDetails {
                name: Some(d.name.clone()).filter(|n| !n.is_empty()),
                group: Some(d.group.clone()).filter(|g| !g.is_empty()),
                kind: Some(d.kind.clone()),
                causes: (!d.causes.is_empty()).then(|| {
                    d.causes
                        .iter()
                        .map(|c| StatusCause {
                            field: Some(c.field.clone()),
                            message: Some(c.message.clone()),
                            reason: Some(c.kind.into()),
                        })
                        .collect()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// `pods`, or `deployments.apps` for a named group (upstream's GroupResource string).
fn qualified(res: &ResourceInfo) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::registry::by_plural;

    #[test]
    fn messages_match_the_apiserver() {
        let pods = by_plural("", "pods").unwrap();
        let deploys = by_plural("apps", "deployments").unwrap();
        let cases = [
            (ApiError::not_found(pods, "web"), 404, "NotFound", "pods \"web\" not found"),
            (
                ApiError::already_exists(deploys, "api"),
                409,
                "AlreadyExists",
                "deployments.apps \"api\" already exists",
            ),
            (
                ApiError::stale(pods, "web"),
                409,
                "Conflict",
                "Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            (
                ApiError::invalid(pods, "web", vec![FieldError::required("spec.containers")]),
                422,
                "Invalid",
                "Pod \"web\" is invalid: spec.containers: Required value",
            ),
        ];
        for (e, code, reason, message) in cases {
            assert_eq!(
                (e.code, e.reason, e.message.as_str()),
                (code, reason, message)
            );
            let status = e.to_status();
            assert_eq!(status.code, Some(code as i32));
            assert_eq!(status.status.as_deref(), Some("Failure"));
        }
        let status = ApiError::invalid(pods, "web", vec![FieldError::required("spec.containers")])
            .to_status();
        let details = status.details.unwrap();
        assert_eq!(details.kind.as_deref(), Some("Pod"));
        assert_eq!(
            details.causes.unwrap()[0].field.as_deref(),
            Some("spec.containers")
        );
    }
}
