//! `serviceaccounts/<name>/token`: TokenRequest (k8s: pkg/registry/core/serviceaccount/storage/
//! token.go) — a bound token for a ServiceAccount, for the audiences asked (default: the API
//! audiences), for a while (default an hour), optionally bound to a Pod, Secret or Node.

use serde_json::{json, Value};

use super::{object, ApiServer, RequestContext};
use crate::api::registry::{self, ResourceInfo};
use crate::api::status::{ApiError, FieldError};
use crate::auth::serviceaccount::claims::{
    Bound, Ref, EXPIRATION_EXTENSION_SECONDS, WARN_ONLY_EXPIRATION_SECONDS,
};
use crate::auth::serviceaccount::jwt;
use crate::store::Store;

/// TokenRequest is not stored: this entry only names it in errors.
const TOKEN_REQUESTS: ResourceInfo = ResourceInfo {
    group: "authentication.k8s.io",
    version: "v1",
    kind: "TokenRequest",
    plural: "tokenrequests",
    singular: "tokenrequest",
    namespaced: true,
    short_names: &[],
    categories: &[],
    verbs: &[],
    subresources: &[],
};

/// k8s: SetDefaults_TokenRequestSpec.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;

/// k8s: ValidateTokenRequest's bounds.
const MIN_EXPIRATION_SECONDS: i64 = 10 * 60;
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// A TokenRequest answered: the request with its status, and warnings for the client.
pub struct Issued {
    pub request: Value,
    pub warnings: Vec<String>,
}

fn core(plural: &str) -> &'static ResourceInfo {
    registry::by_plural("", plural).expect("registered")
}

impl<S: Store> ApiServer<S> {
    /// POST `serviceaccounts/<name>/token` in `namespace`.
    pub async fn create_token(
        &self,
        namespace: &str,
        name: &str,
        mut req: Value,
        ctx: &RequestContext,
    ) -> Result<Issued, ApiError> {
        let Some(cfg) = self.tokens.as_ref() else {
            return Err(ApiError::bad_request(
                "serviceaccounts/token: this apiserver has no service-account signing key",
            ));
        };
        // k8s: NodeRestriction — a node asks only for tokens bound to its own pods.
        let sas = crate::api::registry::by_plural("", "serviceaccounts").expect("registered");
        self.admit_node_write(
            &ctx.user,
            crate::auth::node::admission::Operation::Create,
            sas,
            "token",
            namespace,
            name,
            None,
            Some(&req),
        )
        .await?;
        if !req.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON or YAML object",
            ));
        }
        for (field, want) in [
            ("apiVersion", "authentication.k8s.io/v1"),
            ("kind", "TokenRequest"),
        ] {
            if let Some(got) = req[field].as_str().filter(|g| !g.is_empty() && *g != want) {
                return Err(ApiError::bad_request(format!(
                    "{field} {got:?} is not {want:?}: the body of serviceaccounts/token is a TokenRequest"
                )));
            }
        }
        req["apiVersion"] = json!("authentication.k8s.io/v1");
        req["kind"] = json!("TokenRequest");
        if !req["spec"].is_object() {
            req["spec"] = json!({});
        }
        let spec = &mut req["spec"];
        if spec["expirationSeconds"].is_null() {
            spec["expirationSeconds"] = json!(DEFAULT_EXPIRATION_SECONDS);
        }
        let audiences: Vec<String> = match &spec["audiences"] {
            Value::Array(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => cfg.api_audiences.clone(),
        };
        spec["audiences"] = json!(audiences);
        let Some(mut expiration) = spec["expirationSeconds"].as_i64() else {
            return Err(ApiError::bad_request(
                "spec.expirationSeconds must be an integer",
            ));
        };
        let mut errs = Vec::new();
        if expiration < MIN_EXPIRATION_SECONDS {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration less than 10 minutes",
            ));
        }
        if expiration > MAX_EXPIRATION_SECONDS {
            errs.push(FieldError::invalid(
                "spec.expirationSeconds",
                expiration,
                "may not specify a duration larger than 2^32 seconds",
            ));
        }
        if !errs.is_empty() {
            return Err(ApiError::invalid(&TOKEN_REQUESTS, "", errs));
        }

        let sa = self
            .get(core("serviceaccounts"), Some(namespace), name)
            .await?;
        let mut claims = Bound {
            issuer: cfg.issuer.clone(),
            audiences: audiences.clone(),
            jti: ctx.uid(),
            namespace: namespace.to_string(),
            service_account: Ref::new(name, object::meta_str(&sa, "uid").unwrap_or("")),
            ..Bound::default()
        };
        if let Some(r) = req["spec"]["boundObjectRef"].as_object().cloned() {
            self.bind_token(namespace, name, &r, &mut claims).await?;
        }
        let mut warnings = Vec::new();
        if cfg.max_expiration_seconds > 0 && expiration > cfg.max_expiration_seconds {
            warnings.push(format!(
                "requested expiration of {expiration} seconds shortened to {} seconds",
                cfg.max_expiration_seconds
            ));
            expiration = cfg.max_expiration_seconds;
            req["spec"]["expirationSeconds"] = json!(expiration);
        }
        // k8s: the kubelet's projected tokens (3607 s, pod-bound, for the API) are valid for a
        // year and only warn after their requested lifetime, for clients that do not reload.
        let mut lifetime = expiration;
        if cfg.extend_expiration
            && claims.pod.is_some()
            && expiration == WARN_ONLY_EXPIRATION_SECONDS
            && audiences.iter().all(|a| cfg.api_audiences.contains(a))
        {
            claims.warn_after = Some(expiration);
            lifetime = EXPIRATION_EXTENSION_SECONDS;
        }
        let now = ctx.now.as_second();
        claims.issued_at = now;
        claims.not_before = now;
        claims.expiry = now + lifetime;
        if let Some(w) = claims.warn_after.as_mut() {
            *w += now;
        }
        let token = jwt::sign(&*cfg.keys, &claims.to_json()).map_err(ApiError::internal)?;
        let expires = object::rfc3339_seconds(now + expiration).unwrap_or_default();
        req["status"] = json!({"token": token, "expirationTimestamp": expires});
        tracing::debug!(
            namespace,
            name,
            expiration,
            "issued a service account token"
        );
        Ok(Issued {
            request: req,
            warnings,
        })
    }

    /// k8s: the boundObjectRef switch of TokenREST.Create.
    async fn bind_token(
        &self,
        namespace: &str,
        sa_name: &str,
        r: &serde_json::Map<String, Value>,
        claims: &mut Bound,
    ) -> Result<(), ApiError> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
        let (api_version, kind, name, want_uid) = (s("apiVersion"), s("kind"), s("name"), s("uid"));
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let uid = match (group, kind) {
            ("", "Pod") => {
                let pod = self.get(core("pods"), Some(namespace), name).await?;
                let pod_sa =
                    object::field_string(&pod, "spec.serviceAccountName").unwrap_or_default();
                if pod_sa != sa_name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                    )));
                }
                let uid = object::meta_str(&pod, "uid").unwrap_or("").to_string();
                claims.pod = Some(Ref::new(name, &uid));
                // k8s: ServiceAccountTokenPodNodeInfo — the pod's node, with its UID if found.
                if let Some(node) =
                    object::field_string(&pod, "spec.nodeName").filter(|n| !n.is_empty())
                {
                    let node_uid = match self.get(core("nodes"), None, &node).await {
                        Ok(n) => object::meta_str(&n, "uid").unwrap_or("").to_string(),
                        Err(e) if e.reason == "NotFound" => String::new(),
                        Err(e) => return Err(e),
                    };
                    claims.node = Some(Ref::new(&node, &node_uid));
                }
                uid
            }
            ("", "Secret") => {
                let secret = self.get(core("secrets"), Some(namespace), name).await?;
                let uid = object::meta_str(&secret, "uid").unwrap_or("").to_string();
                claims.secret = Some(Ref::new(name, &uid));
                uid
            }
            ("", "Node") => {
                let node = self.get(core("nodes"), None, name).await?;
                let uid = object::meta_str(&node, "uid").unwrap_or("").to_string();
                claims.node = Some(Ref::new(name, &uid));
                uid
            }
            _ => {
                let gvk = if group.is_empty() {
                    format!("/{api_version}, Kind={kind}")
                } else {
                    format!("{api_version}, Kind={kind}")
                };
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {gvk}"
                )));
            }
        };
        if !want_uid.is_empty() && want_uid != uid {
            let named = ResourceInfo {
                group: "",
                plural: if kind == "Pod" {
                    "Pod"
                } else if kind == "Secret" {
                    "Secret"
                } else {
                    "Node"
                },
                ..TOKEN_REQUESTS
            };
            return Err(ApiError::conflict(
                &named,
                name,
                &format!("the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"),
            ));
        }
        Ok(())
    }
}
