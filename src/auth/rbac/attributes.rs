//! What a request asks to do, as an authorizer sees it (k8s: authorizer.AttributesRecord;
//! the user is passed beside it).

/// A resource request (`get pods/log web in ns`) or a non-resource one (`get /healthz`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attributes<'a> {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`, or
    /// the lower-cased HTTP method of a non-resource request; also `impersonate`, `bind`,
    /// `escalate`, `use`, `proxy`.
    pub verb: &'a str,
    pub namespace: &'a str,
    pub api_group: &'a str,
    pub api_version: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    /// The URL path (non-resource requests are matched on it).
    pub path: &'a str,
    pub resource_request: bool,
}

impl<'a> Attributes<'a> {
    /// A resource request.
    pub fn resource(
        verb: &'a str,
        api_group: &'a str,
        resource: &'a str,
        namespace: &'a str,
        name: &'a str,
    ) -> Self {
        Attributes {
            verb,
            namespace,
            api_group,
            resource,
            name,
            resource_request: true,
            ..Default::default()
        }
    }

    /// A non-resource request for `path`.
    pub fn non_resource(verb: &'a str, path: &'a str) -> Self {
        Attributes {
            verb,
            path,
            ..Default::default()
        }
    }

    pub fn with_subresource(mut self, subresource: &'a str) -> Self {
        self.subresource = subresource;
        self
    }
}

/// An authorizer's answer (k8s: authorizer.Decision), with its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(String),
    Deny(String),
    NoOpinion(String),
}

impl Decision {
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow(r) | Decision::Deny(r) | Decision::NoOpinion(r) => r,
        }
    }
}
