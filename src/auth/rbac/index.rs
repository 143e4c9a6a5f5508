//! The stored Roles, ClusterRoles and their bindings, indexed for the authorizer: bindings by
//! subject (a user's name, each group), so that a request looks at the few bindings naming
//! its user rather than at all of them. The apiserver core applies every RBAC write it
//! commits (k8s reads the same objects from informer caches).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;

use super::rule::Rule;
use crate::auth::user::SERVICE_ACCOUNT_USER_PREFIX;

/// What a binding refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// `Role` or `ClusterRole`.
    pub role_kind: String,
    pub role_name: String,
    /// The subjects as index keys: users (ServiceAccounts as their user names) and groups.
    pub users: Vec<String>,
    pub groups: Vec<String>,
}

impl Binding {
    /// Every subject with whether it is a user (else a group).
    fn subjects(&self) -> impl Iterator<Item = (bool, &String)> {
        let users = self.users.iter().map(|u| (true, u));
        users.chain(self.groups.iter().map(|g| (false, g)))
    }

    /// From a stored RoleBinding (`namespace` Some) or ClusterRoleBinding.
    pub fn from_json(obj: &Value, namespace: Option<&str>) -> Binding {
        let mut b = Binding {
            role_kind: obj["roleRef"]["kind"].as_str().unwrap_or("").to_string(),
            role_name: obj["roleRef"]["name"].as_str().unwrap_or("").to_string(),
            users: Vec::new(),
            groups: Vec::new(),
        };
        for s in obj["subjects"].as_array().into_iter().flatten() {
            let name = s["name"].as_str().unwrap_or("");
            match s["kind"].as_str() {
                Some("User") => b.users.push(name.to_string()),
                Some("Group") => b.groups.push(name.to_string()),
                // k8s: appliesToUser — a RoleBinding's ServiceAccount without a namespace is
                // in the binding's.
                Some("ServiceAccount") => {
                    let ns = s["namespace"]
                        .as_str()
                        .filter(|n| !n.is_empty())
                        .or(namespace)
                        .unwrap_or("");
                    b.users
                        .push(format!("{SERVICE_ACCOUNT_USER_PREFIX}{ns}:{name}"));
                }
                _ => {}
            }
        }
        b
    }
}

/// The bindings naming one subject.
#[derive(Clone, Debug, Default)]
struct Bound {
    cluster: BTreeSet<String>,
    /// namespace → RoleBinding names.
    namespaced: BTreeMap<String, BTreeSet<String>>,
}

impl Bound {
    fn is_empty(&self) -> bool {
        self.cluster.is_empty() && self.namespaced.is_empty()
    }
}

/// A ClusterRole as the index keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterRoleEntry {
    pub rules: Arc<[Rule]>,
    pub labels: BTreeMap<String, String>,
    /// `aggregationRule.clusterRoleSelectors`, as stored (`None`: not aggregated).
    pub aggregation: Option<Vec<Value>>,
}

#[derive(Clone, Debug, Default)]
pub struct RbacIndex {
    /// namespace → name → rules.
    roles: BTreeMap<String, BTreeMap<String, Arc<[Rule]>>>,
    cluster_roles: BTreeMap<String, ClusterRoleEntry>,
    /// namespace → name → binding.
    role_bindings: BTreeMap<String, BTreeMap<String, Binding>>,
    cluster_role_bindings: BTreeMap<String, Binding>,
    users: BTreeMap<String, Bound>,
    groups: BTreeMap<String, Bound>,
}

/// Which RBAC kind a storage plural is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl Kind {
    pub fn of_plural(plural: &str) -> Option<Kind> {
        Some(match plural {
            "roles" => Kind::Role,
            "clusterroles" => Kind::ClusterRole,
            "rolebindings" => Kind::RoleBinding,
            "clusterrolebindings" => Kind::ClusterRoleBinding,
            _ => return None,
        })
    }
}

/// A role a binding names but that does not exist (k8s: the visitor's errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingRole {
    pub kind: &'static str,
    pub name: String,
}

impl std::fmt::Display for MissingRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.rbac.authorization.k8s.io {:?} not found",
            self.kind, self.name
        )
    }
}

impl RbacIndex {
    /// Applies one stored object (`Some`) or its deletion (`None`).
    pub fn apply(&mut self, kind: Kind, namespace: &str, name: &str, obj: Option<&Value>) {
        match kind {
            Kind::Role => match obj {
                Some(o) => {
                    self.roles
                        .entry(namespace.to_string())
                        .or_default()
                        .insert(name.to_string(), Rule::of(o).into());
                }
                None => {
                    if let Some(m) = self.roles.get_mut(namespace) {
                        m.remove(name);
                        if m.is_empty() {
                            self.roles.remove(namespace);
                        }
                    }
                }
            },
            Kind::ClusterRole => match obj {
                Some(o) => {
                    let labels = o["metadata"]["labels"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect();
                    let aggregation = o["aggregationRule"].as_object().map(|a| {
                        a.get("clusterRoleSelectors")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                    });
                    self.cluster_roles.insert(
                        name.to_string(),
                        ClusterRoleEntry {
                            rules: Rule::of(o).into(),
                            labels,
                            aggregation,
                        },
                    );
                }
                None => {
                    self.cluster_roles.remove(name);
                }
            },
            Kind::RoleBinding => {
                let old = self
                    .role_bindings
                    .get_mut(namespace)
                    .and_then(|m| m.remove(name));
                if let Some(old) = old {
                    self.unindex(&old, Some(namespace), name);
                }
                if self
                    .role_bindings
                    .get(namespace)
                    .is_some_and(BTreeMap::is_empty)
                {
                    self.role_bindings.remove(namespace);
                }
                if let Some(o) = obj {
                    let b = Binding::from_json(o, Some(namespace));
                    self.index(&b, Some(namespace), name);
                    self.role_bindings
                        .entry(namespace.to_string())
                        .or_default()
                        .insert(name.to_string(), b);
                }
            }
            Kind::ClusterRoleBinding => {
                if let Some(old) = self.cluster_role_bindings.remove(name) {
                    self.unindex(&old, None, name);
                }
                if let Some(o) = obj {
                    let b = Binding::from_json(o, None);
                    self.index(&b, None, name);
                    self.cluster_role_bindings.insert(name.to_string(), b);
                }
            }
        }
    }

    fn index(&mut self, b: &Binding, namespace: Option<&str>, name: &str) {
        for (is_user, subject) in b.subjects() {
            let map = if is_user {
                &mut self.users
            } else {
                &mut self.groups
            };
            let bound = map.entry(subject.clone()).or_default();
            match namespace {
                Some(ns) => {
                    bound
                        .namespaced
                        .entry(ns.to_string())
                        .or_default()
                        .insert(name.to_string());
                }
                None => {
                    bound.cluster.insert(name.to_string());
                }
            }
        }
    }

    fn unindex(&mut self, b: &Binding, namespace: Option<&str>, name: &str) {
        for (is_user, subject) in b.subjects() {
            let map = if is_user {
                &mut self.users
            } else {
                &mut self.groups
            };
            let Some(bound) = map.get_mut(subject) else {
                continue;
            };
            match namespace {
                Some(ns) => {
                    if let Some(names) = bound.namespaced.get_mut(ns) {
                        names.remove(name);
                        if names.is_empty() {
                            bound.namespaced.remove(ns);
                        }
                    }
                }
                None => {
                    bound.cluster.remove(name);
                }
            }
            if bound.is_empty() {
                map.remove(subject);
            }
        }
    }

    /// The rules a binding grants (a RoleBinding's Role is in its namespace).
    pub fn rules_of(&self, b: &Binding, namespace: &str) -> Result<&Arc<[Rule]>, MissingRole> {
        let found = match b.role_kind.as_str() {
            "Role" => self.role(namespace, &b.role_name),
            _ => self.cluster_roles.get(&b.role_name).map(|c| &c.rules),
        };
        found.ok_or_else(|| MissingRole {
            kind: if b.role_kind == "Role" {
                "role"
            } else {
                "clusterrole"
            },
            name: b.role_name.clone(),
        })
    }

    /// Calls `visit` with the rules of every binding that applies to a user (`name`,
    /// `groups`) in `namespace` ("" for cluster scope): the ClusterRoleBindings, then the
    /// namespace's RoleBindings, until `visit` answers false. k8s: VisitRulesFor.
    pub fn visit_rules<'s>(
        &'s self,
        name: &str,
        groups: &[String],
        namespace: &str,
        mut visit: impl FnMut(Result<&'s [Rule], MissingRole>) -> bool,
    ) {
        let bounds = std::iter::once(self.users.get(name))
            .chain(groups.iter().map(|g| self.groups.get(g.as_str())))
            .flatten();
        for bound in bounds.clone() {
            for crb in &bound.cluster {
                if let Some(b) = self.cluster_role_bindings.get(crb) {
                    if !visit(self.rules_of(b, "").map(|r| &**r)) {
                        return;
                    }
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        for bound in bounds {
            let Some(names) = bound.namespaced.get(namespace) else {
                continue;
            };
            let Some(bindings) = self.role_bindings.get(namespace) else {
                continue;
            };
            for rb in names {
                if let Some(b) = bindings.get(rb) {
                    if !visit(self.rules_of(b, namespace).map(|r| &**r)) {
                        return;
                    }
                }
            }
        }
    }

    pub fn cluster_role(&self, name: &str) -> Option<&ClusterRoleEntry> {
        self.cluster_roles.get(name)
    }

    pub fn role(&self, namespace: &str, name: &str) -> Option<&Arc<[Rule]>> {
        self.roles.get(namespace).and_then(|m| m.get(name))
    }

    /// Every ClusterRole, by name.
    pub fn cluster_roles(&self) -> impl Iterator<Item = (&String, &ClusterRoleEntry)> {
        self.cluster_roles.iter()
    }

    pub fn binding_count(&self) -> usize {
        self.role_bindings
            .values()
            .map(BTreeMap::len)
            .sum::<usize>()
            + self.cluster_role_bindings.len()
    }
}
