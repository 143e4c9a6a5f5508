//! The 403 a refused request gets.
//! k8s: staging/src/k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go
//! (forbiddenMessage, Forbidden) and apimachinery's errors.NewForbidden.

use super::attributes::Attributes;
use crate::api::status::ApiError;

/// k8s: forbiddenMessage.
pub fn message(user: &str, a: &Attributes) -> String {
    if !a.resource_request {
        return format!("User {user:?} cannot {} path {:?}", a.verb, a.path);
    }
    let resource = if a.subresource.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    if !a.namespace.is_empty() {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} in the namespace {:?}",
            a.verb, a.api_group, a.namespace
        )
    } else {
        format!(
            "User {user:?} cannot {} resource {resource:?} in API group {:?} at the cluster scope",
            a.verb, a.api_group
        )
    }
}

/// k8s: responsewriters.Forbidden — `<resource>[.<group>] ["name"] is forbidden: <message>[:
/// <reason>]`, details naming the group, the resource (as `kind`) and the name.
pub fn error(user: &str, a: &Attributes, reason: &str) -> ApiError {
    let mut msg = message(user, a);
    if !reason.is_empty() {
        msg = format!("{msg}: {reason}");
    }
    ApiError::forbidden_resource(a.api_group, a.resource, a.name, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k8s: responsewriters/errors_test.go TestForbidden.
    #[test]
    fn messages_are_upstreams() {
        let list = Attributes::resource("list", "", "pods", "y", "");
        let logs = Attributes::resource("get", "", "pods", "y", "web").with_subresource("log");
        let nodes = Attributes::resource("get", "", "nodes", "", "n1");
        let deploy = Attributes::resource("create", "apps", "deployments", "", "");
        let path = Attributes::non_resource("get", "/foo");
        let cases = [
            (list, "", "pods is forbidden: User \"x\" cannot list resource \"pods\" in API group \"\" in the namespace \"y\""),
            (logs, "", "pods \"web\" is forbidden: User \"x\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"y\""),
            (nodes, "", "nodes \"n1\" is forbidden: User \"x\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"),
            (deploy, "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found",
             "deployments.apps is forbidden: User \"x\" cannot create resource \"deployments\" in API group \"apps\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"),
            (path, "", "forbidden: User \"x\" cannot get path \"/foo\""),
        ];
        for (a, reason, want) in cases {
            let e = error("x", &a, reason);
            assert_eq!((e.code, e.reason), (403, "Forbidden"));
            assert_eq!(e.message, want);
        }
        let d = error("x", &logs, "").details.unwrap();
        assert_eq!(
            (d.kind.as_str(), d.name.as_str(), d.group.as_str()),
            ("pods", "web", "")
        );
        let d = error("x", &deploy, "").details.unwrap();
        assert_eq!((d.kind.as_str(), d.group.as_str()), ("deployments", "apps"));
    }
}
