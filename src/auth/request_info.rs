//! What an HTTP request asks to do, from its method, path and query, as the authorizer sees
//! it. k8s: staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go (NewRequestInfo)

use super::rbac::Attributes;

/// k8s: request.RequestInfo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    pub resource_request: bool,
    pub path: String,
    pub verb: String,
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
}

impl RequestInfo {
    pub fn attributes(&self) -> Attributes<'_> {
        Attributes {
            verb: &self.verb,
            namespace: &self.namespace,
            api_group: &self.api_group,
            api_version: &self.api_version,
            resource: &self.resource,
            subresource: &self.subresource,
            name: &self.name,
            path: &self.path,
            resource_request: self.resource_request,
        }
    }
}

/// The value of query parameter `key` (the first), percent-decoded.
fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `?watch=` asks for a watch (as the REST handler reads it).
pub fn watch_requested(query: &str) -> bool {
    query_value(query, "watch").is_some_and(|v| v == "true" || v == "1" || v.is_empty())
}

/// k8s: NewRequestInfo with APIPrefixes {api, apis}, GrouplessAPIPrefixes {api}.
pub fn resolve(method: &str, path: &str, query: &str) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_string(),
        verb: method.to_ascii_lowercase(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let parts: Vec<&str> = if parts == [""] { Vec::new() } else { parts };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return info;
    }
    info.api_prefix = parts[0].to_string();
    let mut rest = &parts[1..];
    if info.api_prefix == "apis" {
        if rest.len() < 3 {
            return info;
        }
        info.api_group = rest[0].to_string();
        rest = &rest[1..];
    }
    info.resource_request = true;
    info.api_version = rest[0].to_string();
    rest = &rest[1..];
    // k8s: specialVerbs — /watch/... and /proxy/...
    if matches!(rest[0], "watch" | "proxy") {
        if rest.len() < 2 {
            return info;
        }
        info.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
    }
    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        // k8s: namespaceSubresources — `namespaces/<name>/status|finalize` is the
        // namespace's own subresource.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && info.verb != "proxy" {
        info.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        info.name = rest[1].to_string();
    }
    if !rest.is_empty() {
        info.resource = rest[0].to_string();
    }
    if info.name.is_empty() && info.verb == "get" {
        info.verb = if watch_requested(query) {
            "watch"
        } else {
            "list"
        }
        .to_string();
        // k8s: a fieldSelector `metadata.name=<n>` names the object.
        if let Some(sel) = query_value(query, "fieldSelector") {
            if let Some(name) = sel
                .strip_prefix("metadata.name==")
                .or_else(|| sel.strip_prefix("metadata.name="))
                .filter(|n| {
                    !n.contains(',')
                        && !n.contains('/')
                        && !n.contains('%')
                        && *n != "."
                        && *n != ".."
                })
            {
                info.name = name.to_string();
            }
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".into();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    /// k8s: requestinfo_test.go TestGetAPIRequestInfo, and the non-resource cases.
    #[test]
    fn requests_resolve_as_upstream() {
        // method, path, query → verb, namespace, group, resource, subresource, name.
        type Want<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
        let cases: Vec<(&str, &str, &str, Want)> = vec![
            (
                "GET",
                "/api/v1/namespaces",
                "",
                ("list", "", "", "namespaces", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other",
                "",
                ("get", "other", "", "namespaces", "", "other"),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods",
                "",
                ("list", "other", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods/foo",
                "",
                ("get", "other", "", "pods", "", "foo"),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/other/pods/foo",
                "",
                ("get", "other", "", "pods", "", "foo"),
            ),
            ("GET", "/api/v1/pods", "", ("list", "", "", "pods", "", "")),
            (
                "GET",
                "/api/v1/pods",
                "watch=true",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/pods",
                "watch=false",
                ("list", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/watch/pods",
                "",
                ("watch", "", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/other/pods",
                "",
                ("watch", "other", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods",
                "fieldSelector=metadata.name%3Dfoo",
                ("list", "other", "", "pods", "", "foo"),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods",
                "watch=1&fieldSelector=metadata.name%3Dfoo",
                ("watch", "other", "", "pods", "", "foo"),
            ),
            (
                "POST",
                "/api/v1/namespaces/other/pods",
                "",
                ("create", "other", "", "pods", "", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/other/pods",
                "dryRun=All",
                ("create", "other", "", "pods", "", ""),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/pods/foo",
                "",
                ("update", "other", "", "pods", "", "foo"),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/other/pods/foo",
                "",
                ("patch", "other", "", "pods", "", "foo"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/other/pods/foo",
                "",
                ("delete", "other", "", "pods", "", "foo"),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/other/pods",
                "",
                ("deletecollection", "other", "", "pods", "", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods/foo/log",
                "",
                ("get", "other", "", "pods", "log", "foo"),
            ),
            (
                "POST",
                "/api/v1/namespaces/other/pods/foo/exec",
                "",
                ("create", "other", "", "pods", "exec", "foo"),
            ),
            (
                "GET",
                "/api/v1/namespaces/other/pods/foo/exec",
                "",
                ("get", "other", "", "pods", "exec", "foo"),
            ),
            (
                "POST",
                "/api/v1/namespaces/other/pods/foo/binding",
                "",
                ("create", "other", "", "pods", "binding", "foo"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/pods/foo/status",
                "",
                ("update", "other", "", "pods", "status", "foo"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/finalize",
                "",
                ("update", "other", "", "namespaces", "finalize", "other"),
            ),
            (
                "PUT",
                "/api/v1/namespaces/other/status",
                "",
                ("update", "other", "", "namespaces", "status", "other"),
            ),
            (
                "GET",
                "/api/v1/proxy/namespaces/other/pods/foo/a/b",
                "",
                ("proxy", "other", "", "pods", "", "foo"),
            ),
            (
                "GET",
                "/api/v1/nodes/n1/proxy/logs",
                "",
                ("get", "", "", "nodes", "proxy", "n1"),
            ),
            (
                "GET",
                "/apis/apps/v1/namespaces/other/deployments/d/scale",
                "",
                ("get", "other", "apps", "deployments", "scale", "d"),
            ),
            (
                "GET",
                "/apis/rbac.authorization.k8s.io/v1/clusterroles",
                "",
                (
                    "list",
                    "",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                ),
            ),
            (
                "POST",
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                "",
                (
                    "create",
                    "",
                    "authorization.k8s.io",
                    "selfsubjectaccessreviews",
                    "",
                    "",
                ),
            ),
        ];
        for (method, path, query, want) in cases {
            let i = resolve(method, path, query);
            assert!(i.resource_request, "{method} {path}");
            assert_eq!(
                (
                    i.verb.as_str(),
                    i.namespace.as_str(),
                    i.api_group.as_str(),
                    i.resource.as_str(),
                    i.subresource.as_str(),
                    i.name.as_str()
                ),
                want,
                "{method} {path}?{query}"
            );
        }
        for (method, path, verb) in [
            ("GET", "/healthz", "get"),
            ("GET", "/version", "get"),
            ("GET", "/", "get"),
            ("GET", "/api", "get"),
            ("GET", "/api/v1", "get"),
            ("GET", "/apis", "get"),
            ("GET", "/apis/apps", "get"),
            ("GET", "/apis/apps/v1", "get"),
            ("GET", "/openapi/v3/apis/apps/v1", "get"),
            ("POST", "/logs", "post"),
        ] {
            let i = resolve(method, path, "");
            assert!(!i.resource_request, "{path}");
            assert_eq!((i.verb.as_str(), i.path.as_str()), (verb, path));
        }
    }
}
