//! `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`, `Impersonate-Extra-<key>`
//! (`kubectl --as`, `--as-group`): the request acts as another user if its own may
//! `impersonate` each part. k8s: staging/src/k8s.io/apiserver/pkg/endpoints/filters/impersonation.go

use std::collections::BTreeMap;

use actix_web::HttpRequest;

use super::State;
use crate::api::status::ApiError;
use crate::auth::rbac::{forbidden, Attributes};
use crate::auth::user::{
    UserInfo, ALL_AUTHENTICATED, ALL_SERVICE_ACCOUNTS_GROUP, ALL_UNAUTHENTICATED, ANONYMOUS,
    SERVICE_ACCOUNT_USER_PREFIX,
};

const EXTRA_PREFIX: &str = "impersonate-extra-";

/// One part asked for. k8s: buildImpersonationRequests' ObjectReferences.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    ServiceAccount(String, String),
    User(String),
    Group(String),
    Extra(String, String),
    Uid(String),
}

/// k8s: unescapeExtraKey — keys are percent-encoded in header names.
fn unescape(key: &str) -> String {
    let b = key.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// k8s: buildImpersonationRequests, from (lower-cased header name, value) pairs.
fn parts(headers: &[(String, String)]) -> Result<Vec<Part>, ApiError> {
    let mut out = Vec::new();
    let user = headers
        .iter()
        .find(|(k, v)| k == "impersonate-user" && !v.is_empty())
        .map(|(_, v)| v.clone());
    if let Some(u) = &user {
        let sa = u
            .strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'));
        out.push(match sa {
            Some((ns, name)) => Part::ServiceAccount(ns.into(), name.into()),
            None => Part::User(u.clone()),
        });
    }
    for (k, v) in headers {
        if k == "impersonate-group" {
            out.push(Part::Group(v.clone()));
        }
    }
    for (k, v) in headers {
        if let Some(key) = k.strip_prefix(EXTRA_PREFIX) {
            out.push(Part::Extra(unescape(key), v.clone()));
        }
    }
    if let Some((_, uid)) = headers
        .iter()
        .find(|(k, v)| k == "impersonate-uid" && !v.is_empty())
    {
        out.push(Part::Uid(uid.clone()));
    }
    if user.is_none() && !out.is_empty() {
        return Err(ApiError::internal(format!(
            "requested {out:?} without impersonating a user"
        )));
    }
    Ok(out)
}

/// The user the request acts as, if it impersonates (each part authorized as `requestor`).
pub fn impersonate_as(
    authorize: impl Fn(&UserInfo, &Attributes) -> Result<(), ApiError>,
    requestor: &UserInfo,
    headers: &[(String, String)],
) -> Result<Option<UserInfo>, ApiError> {
    let parts = parts(headers)?;
    if parts.is_empty() {
        return Ok(None);
    }
    let groups_given = parts.iter().any(|p| matches!(p, Part::Group(_)));
    let mut name = String::new();
    let mut groups: Vec<String> = Vec::new();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut uid = String::new();
    for p in &parts {
        let a = match p {
            Part::ServiceAccount(ns, n) => {
                name = format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{n}");
                if !groups_given {
                    groups.push(ALL_SERVICE_ACCOUNTS_GROUP.into());
                    groups.push(format!("{ALL_SERVICE_ACCOUNTS_GROUP}:{ns}"));
                }
                Attributes::resource("impersonate", "", "serviceaccounts", ns, n)
            }
            Part::User(n) => {
                name = n.clone();
                Attributes::resource("impersonate", "", "users", "", n)
            }
            Part::Group(g) => {
                groups.push(g.clone());
                Attributes::resource("impersonate", "", "groups", "", g)
            }
            Part::Extra(k, v) => {
                extra.entry(k.clone()).or_default().push(v.clone());
                Attributes::resource("impersonate", "authentication.k8s.io", "userextras", "", v)
                    .with_subresource(k)
            }
            Part::Uid(u) => {
                uid = u.clone();
                Attributes::resource("impersonate", "authentication.k8s.io", "uids", "", u)
            }
        };
        authorize(requestor, &a)?;
    }
    // k8s: a non-anonymous user is in system:authenticated unless the groups given say
    // otherwise; anonymous in system:unauthenticated.
    if name != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED || g == ALL_UNAUTHENTICATED)
        {
            groups.push(ALL_AUTHENTICATED.into());
        }
    } else if !groups.iter().any(|g| g == ALL_UNAUTHENTICATED) {
        groups.push(ALL_UNAUTHENTICATED.into());
    }
    tracing::debug!(requestor = %requestor.name, user = %name, "impersonating");
    Ok(Some(UserInfo {
        name,
        uid,
        groups,
        extra,
    }))
}

/// The impersonated user of an HTTP request, if it asks for one.
pub fn impersonate(state: &State, req: &HttpRequest) -> Result<Option<UserInfo>, ApiError> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str().starts_with("impersonate-"))
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    if headers.is_empty() {
        return Ok(None);
    }
    let requestor = super::authz::request_user(req);
    impersonate_as(
        |u, a| match state.api.authorize(u, a) {
            d if d.allowed() => Ok(()),
            d => Err(forbidden::error(&u.name, a, d.reason())),
        },
        &requestor,
        &headers,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// k8s: impersonation_test.go — what may be impersonated, and the user that results.
    #[test]
    fn impersonation_as_upstream() {
        // The requestor may impersonate users, groups `devs` and the SA builder only.
        let allow = |_: &UserInfo, a: &Attributes| {
            let ok = a.verb == "impersonate"
                && match a.resource {
                    "users" => true,
                    "groups" => a.name == "devs",
                    "serviceaccounts" => a.namespace == "ci" && a.name == "builder",
                    "userextras" => a.subresource == "scopes",
                    _ => false,
                };
            if ok {
                Ok(())
            } else {
                Err(forbidden::error("admin", a, ""))
            }
        };
        let admin = UserInfo::new("admin", &[]);
        let as_ = |headers: &[(&str, &str)]| impersonate_as(allow, &admin, &h(headers));
        assert_eq!(as_(&[]).unwrap(), None);
        let u = as_(&[("impersonate-user", "dev")]).unwrap().unwrap();
        assert_eq!(
            (u.name.as_str(), u.groups.clone()),
            ("dev", vec!["system:authenticated".to_string()])
        );
        let u = as_(&[("impersonate-user", "dev"), ("impersonate-group", "devs")])
            .unwrap()
            .unwrap();
        assert_eq!(u.groups, ["devs", "system:authenticated"]);
        let u = as_(&[("impersonate-user", "system:serviceaccount:ci:builder")])
            .unwrap()
            .unwrap();
        assert_eq!(
            u.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ci",
                "system:authenticated"
            ]
        );
        let u = as_(&[
            ("impersonate-user", "dev"),
            ("impersonate-extra-scopes", "view"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(u.extra["scopes"], ["view"]);
        let e = as_(&[
            ("impersonate-user", "dev"),
            ("impersonate-group", "system:masters"),
        ])
        .unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(e.message, "groups \"system:masters\" is forbidden: User \"admin\" cannot impersonate resource \"groups\" in API group \"\" at the cluster scope");
        let e = as_(&[("impersonate-user", "system:serviceaccount:ci:other")]).unwrap_err();
        assert_eq!(e.message, "serviceaccounts \"other\" is forbidden: User \"admin\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ci\"");
        assert_eq!(as_(&[("impersonate-group", "devs")]).unwrap_err().code, 500);
        let u = as_(&[("impersonate-user", "system:anonymous")])
            .unwrap()
            .unwrap();
        assert_eq!(u.groups, ["system:unauthenticated"]);
    }
}
