//! The RBAC kinds' policy-based storage (k8s: pkg/registry/rbac/role/policybased,
//! clusterrole/policybased, rolebinding/policybased, clusterrolebinding/policybased,
//! pkg/registry/rbac/escalation_check.go): writes of Roles and bindings may not grant more
//! than the writer holds, unless it may `escalate` (roles) or `bind` (bindings).

use serde_json::Value;

use super::ApiServer;
use crate::api::registry::{ResourceInfo, RBAC_GROUP};
use crate::api::status::ApiError;
use crate::auth::rbac::escalation::confirm_no_escalation;
use crate::auth::rbac::index::Binding;
use crate::auth::rbac::{Attributes, Rule};
use crate::auth::user::{UserInfo, SYSTEM_MASTERS};
use crate::store::Store;

impl<S: Store> ApiServer<S> {
    /// `Ok` if `user` may store `obj` (a Role, ClusterRole or binding in `namespace`).
    pub(crate) fn confirm_rbac_write(
        &self,
        res: &ResourceInfo,
        namespace: &str,
        name: &str,
        obj: &Value,
        user: &UserInfo,
    ) -> Result<(), ApiError> {
        // k8s: EscalationAllowed — system:masters (the apiserver's own loopback) may.
        if res.group != RBAC_GROUP || user.in_group(SYSTEM_MASTERS) {
            return Ok(());
        }
        let forbidden = |why: String| ApiError::forbidden(res, name, why);
        match res.plural {
            "roles" | "clusterroles" => {
                // k8s: RoleEscalationAuthorized
                let escalate =
                    Attributes::resource("escalate", RBAC_GROUP, res.plural, namespace, name);
                if self.authorize(user, &escalate).allowed() {
                    return Ok(());
                }
                confirm_no_escalation(&self.rbac(), user, namespace, &Rule::of(obj))
                    .map_err(forbidden)
            }
            "rolebindings" | "clusterrolebindings" => {
                let b = Binding::from_json(obj, Some(namespace));
                let resource = if b.role_kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                // k8s: BindingAuthorized — in the binding's namespace ("" for a
                // ClusterRoleBinding).
                let bind =
                    Attributes::resource("bind", RBAC_GROUP, resource, namespace, &b.role_name);
                if self.authorize(user, &bind).allowed() {
                    return Ok(());
                }
                let index = self.rbac();
                // k8s: GetRoleReferenceRules — a missing role is its NotFound.
                let rules = match index.rules_of(&b, namespace) {
                    Ok(rules) => rules.to_vec(),
                    Err(_) => {
                        let role_res = crate::api::registry::by_plural(RBAC_GROUP, resource)
                            .expect("registered");
                        return Err(ApiError::not_found(role_res, &b.role_name));
                    }
                };
                confirm_no_escalation(&index, user, namespace, &rules).map_err(forbidden)
            }
            _ => Ok(()),
        }
    }
}
