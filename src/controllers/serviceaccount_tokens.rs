//! The tokens controller (k8s: pkg/controller/serviceaccount/tokens_controller.go): a Secret
//! of type `kubernetes.io/service-account-token` annotated with a ServiceAccount's name gets a
//! legacy (non-expiring) token of that account, the namespace and the CA bundle; such Secrets
//! go when their ServiceAccount does. It signs, so it is given the apiserver's key: `gantry
//! server` runs it, the simulator (which has no key) does not.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::RngCore;
use serde_json::{json, Value};

use crate::api::registry::{self, ResourceInfo};
use crate::apiserver::{EventType, Part};
use crate::auth::serviceaccount::claims::{Legacy, Ref};
use crate::auth::serviceaccount::{jwt, TokenKeys};
use crate::component::{ApiOp, Component, Effect, Input, WatchSpec};
use crate::time::Time;

/// k8s: v1.SecretTypeServiceAccountToken and its annotations and keys.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";

fn secrets() -> &'static ResourceInfo {
    registry::by_plural("", "secrets").expect("registered")
}

fn service_accounts() -> &'static ResourceInfo {
    registry::by_plural("", "serviceaccounts").expect("registered")
}

fn key(obj: &Value) -> String {
    crate::controllers::cache::object_key(obj)
}

fn annotation<'a>(obj: &'a Value, name: &str) -> &'a str {
    obj["metadata"]["annotations"][name].as_str().unwrap_or("")
}

/// What a request in flight was for.
enum Pending {
    /// A live lookup of the ServiceAccount of this Secret (a cache miss).
    Lookup(String),
    /// A write to this Secret.
    Write(String),
}

pub struct TokensController {
    keys: Arc<dyn TokenKeys>,
    ca: String,
    /// ServiceAccount `ns/name` → uid.
    accounts: BTreeMap<String, String>,
    /// Token Secrets by `ns/name`.
    tokens: BTreeMap<String, Value>,
    pending: BTreeMap<u64, Pending>,
    next_id: u64,
    /// Both lists have arrived.
    listed: (bool, bool),
}

impl TokensController {
    /// `ca` is the cluster CA bundle for the Secrets' `ca.crt` (left out when empty, as
    /// upstream).
    pub fn new(keys: Arc<dyn TokenKeys>, ca: impl Into<String>) -> Self {
        TokensController {
            keys,
            ca: ca.into(),
            accounts: BTreeMap::new(),
            tokens: BTreeMap::new(),
            pending: BTreeMap::new(),
            next_id: 0,
            listed: (false, false),
        }
    }

    fn busy(&self, secret: &str) -> bool {
        self.pending.values().any(|p| match p {
            Pending::Lookup(k) | Pending::Write(k) => k == secret,
        })
    }

    fn request(&mut self, pending: Pending, op: ApiOp, out: &mut Vec<Effect>) {
        self.next_id += 1;
        self.pending.insert(self.next_id, pending);
        out.push(Effect::Api {
            id: self.next_id,
            op,
        });
    }

    fn delete(&mut self, secret: &Value, out: &mut Vec<Effect>) {
        let op = ApiOp::Delete {
            resource: secrets(),
            namespace: secret["metadata"]["namespace"].as_str().map(String::from),
            name: secret["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            grace_period_seconds: None,
            precondition_uid: secret["metadata"]["uid"].as_str().map(String::from),
            precondition_resource_version: None,
            propagation_policy: None,
        };
        self.request(Pending::Write(key(secret)), op, out);
    }

    /// k8s: syncSecret.
    fn sync(&mut self, secret_key: &str, out: &mut Vec<Effect>) {
        if self.listed != (true, true) || self.busy(secret_key) {
            return;
        }
        let Some(secret) = self.tokens.get(secret_key).cloned() else {
            return;
        };
        if secret.pointer("/metadata/deletionTimestamp").is_some() {
            return;
        }
        let ns = secret["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let sa_name = annotation(&secret, NAME_ANNOTATION).to_string();
        let sa_key = format!("{ns}/{sa_name}");
        let Some(sa_uid) = self.accounts.get(&sa_key).cloned() else {
            // k8s: a cache miss is looked up live before the Secret is deleted.
            let op = ApiOp::Get {
                resource: service_accounts(),
                namespace: Some(ns),
                name: sa_name,
            };
            self.request(Pending::Lookup(secret_key.to_string()), op, out);
            return;
        };
        let wanted_uid = annotation(&secret, UID_ANNOTATION);
        if !wanted_uid.is_empty() && wanted_uid != sa_uid {
            // Made for an earlier ServiceAccount of that name.
            self.delete(&secret, out);
            return;
        }
        let has_token = secret["data"]["token"]
            .as_str()
            .is_some_and(|t| !t.is_empty());
        if has_token && !wanted_uid.is_empty() {
            return;
        }
        let mut body = secret;
        if !has_token {
            let claims = Legacy {
                namespace: ns.clone(),
                service_account: Ref::new(&sa_name, &sa_uid),
                secret_name: body["metadata"]["name"].as_str().unwrap_or("").to_string(),
            };
            let token = match jwt::sign(&*self.keys, &claims.to_json()) {
                Ok(t) => t,
                Err(e) => {
                    out.push(Effect::Log {
                        v: 0,
                        message: format!("cannot sign a token for {secret_key}: {e}"),
                    });
                    return;
                }
            };
            if !body["data"].is_object() {
                body["data"] = json!({});
            }
            let b64 = |s: &str| json!(crate::apiserver::protobuf::base64(s.as_bytes()));
            body["data"]["token"] = b64(&token);
            body["data"]["namespace"] = b64(&ns);
            if !self.ca.is_empty() {
                body["data"]["ca.crt"] = b64(&self.ca);
            }
        }
        body["metadata"]["annotations"][UID_ANNOTATION] = json!(sa_uid);
        let op = ApiOp::Update {
            resource: secrets(),
            namespace: Some(ns),
            name: body["metadata"]["name"].as_str().unwrap_or("").to_string(),
            body,
            part: Part::Main,
        };
        self.request(Pending::Write(secret_key.to_string()), op, out);
    }

    fn sync_all(&mut self, out: &mut Vec<Effect>) {
        let keys: Vec<String> = self.tokens.keys().cloned().collect();
        for k in keys {
            self.sync(&k, out);
        }
    }

    /// k8s: syncServiceAccount — a deleted ServiceAccount's token Secrets are deleted.
    fn account_deleted(&mut self, ns: &str, name: &str, uid: &str, out: &mut Vec<Effect>) {
        let doomed: Vec<Value> = self
            .tokens
            .values()
            .filter(|s| {
                s["metadata"]["namespace"] == ns
                    && annotation(s, NAME_ANNOTATION) == name
                    && [uid, ""].contains(&annotation(s, UID_ANNOTATION))
            })
            .cloned()
            .collect();
        for s in doomed {
            if !self.busy(&key(&s)) {
                self.delete(&s, out);
            }
        }
    }
}

impl Component for TokensController {
    /// k8s: the tokens controller runs with the controller-manager's own credentials
    /// (kube-controller-manager's rootClientBuilder), not a ServiceAccount of its own.
    fn user(&self) -> crate::auth::UserInfo {
        crate::auth::UserInfo::new(
            "system:kube-controller-manager",
            &[crate::auth::user::ALL_AUTHENTICATED],
        )
    }

    fn name(&self) -> &str {
        "serviceaccount-token-controller"
    }

    fn watches(&self) -> Vec<WatchSpec> {
        vec![
            WatchSpec::all(service_accounts()),
            WatchSpec {
                resource: secrets(),
                field_selector: Some(format!("type={SECRET_TYPE}")),
            },
        ]
    }

    fn step(&mut self, _now: Time, input: Input, _rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        match input {
            Input::Listed {
                resource, items, ..
            } => {
                if resource == service_accounts() {
                    self.accounts = items
                        .iter()
                        .map(|sa| (key(sa), sa["metadata"]["uid"].as_str().unwrap_or("").into()))
                        .collect();
                    self.listed.0 = true;
                } else {
                    self.tokens = items
                        .into_iter()
                        .filter(|s| s["type"] == SECRET_TYPE)
                        .map(|s| (key(&s), s))
                        .collect();
                    self.listed.1 = true;
                }
                self.sync_all(out);
            }
            Input::Watched { resource, event } => {
                let obj = &*event.object;
                let k = key(obj);
                if resource == service_accounts() {
                    if event.type_ == EventType::Deleted {
                        let uid = self.accounts.remove(&k).unwrap_or_default();
                        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
                        let name = obj["metadata"]["name"].as_str().unwrap_or("");
                        self.account_deleted(ns, name, &uid, out);
                    } else {
                        self.accounts
                            .insert(k, obj["metadata"]["uid"].as_str().unwrap_or("").into());
                        self.sync_all(out);
                    }
                } else if event.type_ == EventType::Deleted || obj["type"] != SECRET_TYPE {
                    self.tokens.remove(&k);
                } else {
                    self.tokens.insert(k.clone(), obj.clone());
                    self.sync(&k, out);
                }
            }
            Input::ApiResult { id, result } => match self.pending.remove(&id) {
                Some(Pending::Lookup(secret)) => match result {
                    Ok(sa) => {
                        self.accounts.insert(
                            key(&sa),
                            sa["metadata"]["uid"].as_str().unwrap_or("").into(),
                        );
                        self.sync(&secret, out);
                    }
                    Err(e) if e.reason == "NotFound" => {
                        if let Some(s) = self.tokens.get(&secret).cloned() {
                            self.delete(&s, out);
                        }
                    }
                    Err(_) => {}
                },
                // A conflict or failure: the watch brings the Secret's current state back.
                Some(Pending::Write(secret)) => {
                    if let Ok(obj) = result {
                        if obj["type"] == SECRET_TYPE {
                            self.tokens.insert(secret, (*obj).clone());
                        }
                    }
                }
                None => {}
            },
            Input::Timer { .. } | Input::RuntimeResult { .. } | Input::ContainerExited { .. } => {}
        }
    }
}

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;
    use crate::apiserver::ApiServer;
    use crate::auth::serviceaccount::es256::Es256Keys;
    use crate::auth::serviceaccount::{authenticator, TokenConfig, TokenVerdict};
    use crate::store::mem::MemStore;
    use crate::testkit::Driver;
    use futures::FutureExt;

    fn driver() -> (Driver, Arc<dyn TokenKeys>) {
        let keys: Arc<dyn TokenKeys> = Arc::new(Es256Keys::generate().unwrap().0);
        let mut d = Driver::new(7);
        let api = std::mem::replace(&mut d.api, ApiServer::new(MemStore::default()));
        d.api = api.with_tokens(TokenConfig::new(keys.clone()));
        (d, keys)
    }

    fn create(d: &mut Driver, res: &'static ResourceInfo, body: Value) -> Value {
        let op = ApiOp::Create {
            resource: res,
            namespace: Some("default".into()),
            body,
        };
        d.client(op).unwrap()
    }

    fn get(d: &Driver, res: &'static ResourceInfo, name: &str) -> Option<Value> {
        d.api
            .get(res, Some("default"), name)
            .now_or_never()
            .unwrap()
            .ok()
    }

    fn delete(d: &mut Driver, res: &'static ResourceInfo, name: &str) {
        d.client(ApiOp::Delete {
            resource: res,
            namespace: Some("default".into()),
            name: name.into(),
            grace_period_seconds: None,
            precondition_uid: None,
            precondition_resource_version: None,
            propagation_policy: None,
        })
        .unwrap();
    }

    fn token_secret(name: &str, sa: &str) -> Value {
        json!({"metadata": {"name": name, "annotations": {NAME_ANNOTATION: sa}}, "type": SECRET_TYPE})
    }

    fn verdict(d: &Driver, token: &str) -> TokenVerdict {
        let now = k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap();
        authenticator::authenticate(&d.api, token, None, now)
            .now_or_never()
            .unwrap()
    }

    #[test]
    fn token_secrets_are_filled_and_authenticate_while_their_account_lives() {
        let (mut d, keys) = driver();
        d.add(Box::new(TokensController::new(keys, "CA PEM")));
        let sa = create(
            &mut d,
            service_accounts(),
            json!({"metadata": {"name": "robot"}}),
        );
        create(&mut d, secrets(), token_secret("robot-token", "robot"));
        let s = get(&d, secrets(), "robot-token").unwrap();
        assert_eq!(
            s["metadata"]["annotations"][UID_ANNOTATION],
            sa["metadata"]["uid"]
        );
        let data = |k: &str| {
            let v = s["data"][k]
                .as_str()
                .unwrap_or_else(|| panic!("{k} in {s}"));
            String::from_utf8(jwt::b64std_decode(v).unwrap()).unwrap()
        };
        assert_eq!(data("namespace"), "default");
        assert_eq!(data("ca.crt"), "CA PEM");
        let token = data("token");
        let claims = jwt::parse(&token).unwrap().claims;
        assert_eq!(claims["iss"], "kubernetes/serviceaccount");
        assert_eq!(
            claims["kubernetes.io/serviceaccount/secret.name"],
            "robot-token"
        );
        assert!(claims.get("exp").is_none(), "legacy tokens do not expire");
        match verdict(&d, &token) {
            TokenVerdict::User(u, _) => {
                assert_eq!(u.name, "system:serviceaccount:default:robot");
                assert_eq!(u.uid, sa["metadata"]["uid"].as_str().unwrap());
            }
            other => panic!("{other:?}"),
        }
        // A token that is not the Secret's copy does not pass, even if signed.
        let mut other = claims.clone();
        other["kubernetes.io/serviceaccount/secret.name"] = json!("robot-token");
        other["extra"] = json!(1);
        let forged = jwt::sign(&*d.api.tokens().unwrap().keys, &other).unwrap();
        assert_eq!(
            verdict(&d, &forged),
            TokenVerdict::Invalid("token does not match server's copy".into())
        );
        // The ServiceAccount goes, and its Secret with it.
        delete(&mut d, service_accounts(), "robot");
        assert!(get(&d, secrets(), "robot-token").is_none());
        assert_eq!(
            verdict(&d, &token),
            TokenVerdict::Invalid("token has been invalidated".into())
        );
    }

    #[test]
    fn a_token_secret_for_no_account_is_deleted() {
        let (mut d, keys) = driver();
        d.add(Box::new(TokensController::new(keys, "")));
        create(&mut d, secrets(), token_secret("stray", "nobody"));
        assert!(get(&d, secrets(), "stray").is_none());
        // Other Secrets are left alone.
        create(
            &mut d,
            secrets(),
            json!({"metadata": {"name": "plain"}, "stringData": {"a": "b"}}),
        );
        assert!(get(&d, secrets(), "plain").is_some());
    }
}
