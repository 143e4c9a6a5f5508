//! TokenRequest and TokenReview on the MemStore apiserver with a real ES256 key.

use std::sync::Arc;

use futures::FutureExt;
use serde_json::{json, Value};

use super::*;
use crate::auth::serviceaccount::es256::Es256Keys;
use crate::auth::serviceaccount::{jwt, TokenConfig, TokenKeys, DEFAULT_ISSUER};
use crate::store::mem::MemStore;

const T0: i64 = 1_700_000_000;

fn ready<F: std::future::Future>(f: F) -> F::Output {
    f.now_or_never().expect("MemStore futures are always ready")
}

fn res(plural: &str) -> &'static ResourceInfo {
    registry::RESOURCES
        .iter()
        .find(|r| r.plural == plural)
        .unwrap()
}

struct H {
    api: ApiServer<MemStore>,
    n: u64,
}

impl H {
    fn new() -> H {
        let (keys, _) = Es256Keys::generate().unwrap();
        H::with_keys(Arc::new(keys))
    }

    fn with_keys(keys: Arc<dyn TokenKeys>) -> H {
        let api = ApiServer::new(MemStore::default()).with_tokens(TokenConfig::new(keys));
        let mut h = H { api, n: 0 };
        let mut n = 0;
        ready(h.api.bootstrap(|| {
            n += 1;
            ctx_at(n, T0)
        }))
        .unwrap();
        h.n = 100;
        h.create(
            "serviceaccounts",
            Some("default"),
            json!({"metadata": {"name": "builder"}}),
        );
        h
    }

    fn ctx(&mut self, t: i64) -> RequestContext {
        self.n += 1;
        ctx_at(self.n, t)
    }

    fn create(&mut self, plural: &str, ns: Option<&str>, body: Value) -> Value {
        let ctx = self.ctx(T0);
        Arc::unwrap_or_clone(ready(self.api.create(res(plural), ns, body, &ctx)).unwrap())
    }

    fn request(&mut self, sa: &str, spec: Value) -> Result<Value, ApiError> {
        let ctx = self.ctx(T0);
        let body =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
        ready(self.api.create_token("default", sa, body, &ctx)).map(|i| i.request)
    }

    fn token(&mut self, spec: Value) -> String {
        let r = self.request("builder", spec).unwrap();
        r["status"]["token"].as_str().unwrap().to_string()
    }

    fn review(&mut self, token: &str, audiences: Option<Value>, at: i64) -> Value {
        let ctx = self.ctx(at);
        let mut spec = json!({"token": token});
        if let Some(a) = audiences {
            spec["audiences"] = a;
        }
        let body =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
        let out = ready(self.api.create(res("tokenreviews"), None, body, &ctx)).unwrap();
        out["status"].clone()
    }
}

fn ctx_at(n: u64, secs: i64) -> RequestContext {
    RequestContext::new(
        Timestamp::from_second(secs).unwrap(),
        format!("00000000-0000-4000-8000-{n:012}"),
        n * 7919,
    )
}

fn claims(token: &str) -> (Value, Value) {
    let p = jwt::parse(token).unwrap();
    (p.header, p.claims)
}

#[test]
fn token_request_defaults_as_upstream() {
    let mut h = H::new();
    let r = h.request("builder", json!({})).unwrap();
    assert_eq!(r["spec"]["expirationSeconds"], 3600);
    assert_eq!(r["spec"]["audiences"], json!([DEFAULT_ISSUER]));
    assert_eq!(
        r["status"]["expirationTimestamp"],
        object::rfc3339_seconds(T0 + 3600).unwrap()
    );
    let (header, c) = claims(r["status"]["token"].as_str().unwrap());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["kid"], h.api.tokens().unwrap().keys.key_id());
    assert_eq!(c["iss"], DEFAULT_ISSUER);
    assert_eq!(c["sub"], "system:serviceaccount:default:builder");
    assert_eq!(c["aud"], json!([DEFAULT_ISSUER]));
    assert_eq!(
        (c["iat"].as_i64(), c["nbf"].as_i64(), c["exp"].as_i64()),
        (Some(T0), Some(T0), Some(T0 + 3600))
    );
    let sa = h
        .api
        .get(res("serviceaccounts"), Some("default"), "builder");
    let sa_uid = ready(sa).unwrap()["metadata"]["uid"].clone();
    assert_eq!(
        c["kubernetes.io"],
        json!({"namespace": "default", "serviceaccount": {"name": "builder", "uid": sa_uid}})
    );
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()));
}

#[test]
fn token_requests_are_checked_as_upstream() {
    let mut h = H::new();
    let someone = json!({"metadata": {"name": "someone"}});
    h.create("serviceaccounts", Some("default"), someone);
    h.create(
        "pods",
        Some("default"),
        json!({"metadata": {"name": "other-sa"},
        "spec": {"serviceAccountName": "someone", "containers": [{"name": "c", "image": "x"}]}}),
    );
    // k8s: token.go and ValidateTokenRequest.
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "builder",
            json!({"expirationSeconds": 599}),
            422,
            "may not specify a duration less than 10 minutes",
        ),
        (
            "builder",
            json!({"expirationSeconds": (1i64 << 32) + 1}),
            422,
            "may not specify a duration larger than 2^32 seconds",
        ),
        (
            "nobody",
            json!({}),
            404,
            "serviceaccounts \"nobody\" not found",
        ),
        (
            "builder",
            json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "gone"}}),
            404,
            "pods \"gone\" not found",
        ),
        (
            "builder",
            json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "other-sa"}}),
            400,
            "to pod running with different serviceaccount name",
        ),
        (
            "builder",
            json!({"boundObjectRef": {"kind": "Deployment", "apiVersion": "apps/v1", "name": "d"}}),
            400,
            "cannot bind token to object of type apps/v1, Kind=Deployment",
        ),
    ];
    for (sa, spec, code, want) in cases {
        let e = h.request(sa, spec.clone()).unwrap_err();
        assert_eq!(e.code, code, "{spec}: {}", e.message);
        assert!(e.message.contains(want), "{spec}: {}", e.message);
    }
    assert!(h
        .request("builder", json!({"expirationSeconds": 600}))
        .is_ok());
}

#[test]
fn tokens_bound_to_a_pod_name_it_and_its_node() {
    let mut h = H::new();
    let node = h.create("nodes", None, json!({"metadata": {"name": "n1"}}));
    let pod = h.create("pods", Some("default"), json!({"metadata": {"name": "web"},
        "spec": {"serviceAccountName": "builder", "nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}));
    let pod_uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let bound = |uid: &str| json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": uid}});
    let e = h.request("builder", bound("not-the-uid")).unwrap_err();
    assert_eq!(e.code, 409, "{}", e.message);
    assert!(
        e.message.contains("does not match the UID in record"),
        "{}",
        e.message
    );
    let token = h.token(bound(&pod_uid));
    let (_, c) = claims(&token);
    assert_eq!(
        c["kubernetes.io"]["pod"],
        json!({"name": "web", "uid": pod_uid})
    );
    assert_eq!(
        c["kubernetes.io"]["node"],
        json!({"name": "n1", "uid": node["metadata"]["uid"]})
    );
    let status = h.review(&token, None, T0 + 10);
    assert_eq!(status["authenticated"], true, "{status}");
    let extra = &status["user"]["extra"];
    assert_eq!(
        extra["authentication.kubernetes.io/pod-name"],
        json!(["web"])
    );
    assert_eq!(
        extra["authentication.kubernetes.io/pod-uid"],
        json!([pod_uid])
    );
    assert_eq!(
        extra["authentication.kubernetes.io/node-name"],
        json!(["n1"])
    );
    assert_eq!(
        extra["authentication.kubernetes.io/credential-id"],
        json!([format!("JTI={}", c["jti"].as_str().unwrap())])
    );
    // The kubelet's 3607 s token lives a year and warns after its hour (k8s: token.go).
    let mut spec = bound(&pod_uid);
    spec["expirationSeconds"] = json!(3607);
    let r = h.request("builder", spec).unwrap();
    let (_, c) = claims(r["status"]["token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64(), Some(T0 + 24 * 365 * 3600));
    assert_eq!(c["kubernetes.io"]["warnafter"].as_i64(), Some(T0 + 3607));
    assert_eq!(
        r["status"]["expirationTimestamp"],
        object::rfc3339_seconds(T0 + 3607).unwrap()
    );
    // Once the pod is gone, so is its token.
    let ctx = h.ctx(T0);
    ready(h.api.delete(
        res("pods"),
        Some("default"),
        "web",
        &DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
        &ctx,
    ))
    .unwrap();
    let status = h.review(&token, None, T0 + 10);
    assert_eq!(status["authenticated"], Value::Null, "{status}");
    assert_eq!(
        status["error"],
        "service account token has been invalidated"
    );
}

#[test]
fn a_requested_token_reviews_as_its_service_account_until_it_is_deleted() {
    let mut h = H::new();
    let token = h.token(json!({}));
    let status = h.review(&token, None, T0 + 10);
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:builder"
    );
    assert_eq!(
        status["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    let sa = ready(
        h.api
            .get(res("serviceaccounts"), Some("default"), "builder"),
    )
    .unwrap();
    assert_eq!(status["user"]["uid"], sa["metadata"]["uid"]);
    assert_eq!(status["audiences"], json!([DEFAULT_ISSUER]));
    let ctx = h.ctx(T0);
    ready(h.api.delete(
        res("serviceaccounts"),
        Some("default"),
        "builder",
        &DeleteOptions::default(),
        &ctx,
    ))
    .unwrap();
    let status = h.review(&token, None, T0 + 10);
    assert_eq!(status["authenticated"], Value::Null);
    assert_eq!(
        status["error"],
        "service account token has been invalidated"
    );
    // A new ServiceAccount of the same name is another account.
    h.create(
        "serviceaccounts",
        Some("default"),
        json!({"metadata": {"name": "builder"}}),
    );
    let status = h.review(&token, None, T0 + 10);
    assert!(
        status["error"]
            .as_str()
            .unwrap()
            .contains("does not match claim"),
        "{status}"
    );
}

#[test]
fn bad_tokens_are_not_authenticated() {
    let mut h = H::new();
    let token = h.token(json!({}));
    let other_aud = h.token(json!({"audiences": ["vault"]}));
    let (header, c) = claims(&token);
    let parts: Vec<&str> = token.split('.').collect();
    let resign = |keys: &dyn TokenKeys, header: &Value, claims: &Value| {
        let mut t = jwt::b64url(header.to_string().as_bytes());
        t.push('.');
        t.push_str(&jwt::b64url(claims.to_string().as_bytes()));
        let sig = keys.sign(t.as_bytes()).unwrap();
        format!("{t}.{}", jwt::b64url(&sig))
    };
    let keys = h.api.tokens().unwrap().keys.clone();
    let (stranger, _) = Es256Keys::generate().unwrap();
    let mut flipped_sig = parts[2].as_bytes().to_vec();
    flipped_sig[5] = if flipped_sig[5] == b'A' { b'B' } else { b'A' };
    let mut other_iss = c.clone();
    other_iss["iss"] = json!("https://accounts.example.com");
    let mut with_kid = header.clone();
    with_kid["kid"] = json!("not-our-key");
    let mut as_admin = c.clone();
    as_admin["sub"] = json!("system:serviceaccount:default:admin");
    // (what, token, audiences asked, review time, error wanted; "" = not ours, no error)
    let cases: Vec<(&str, String, Option<Value>, i64, &str)> = vec![
        (
            "expired",
            token.clone(),
            None,
            T0 + 3600 + 61,
            "service account token has expired",
        ),
        (
            "within the leeway",
            token.clone(),
            None,
            T0 + 3600 + 60,
            "OK",
        ),
        (
            "not yet valid",
            token.clone(),
            None,
            T0 - 61,
            "service account token is not valid yet",
        ),
        (
            "wrong audience asked",
            token.clone(),
            Some(json!(["vault"])),
            T0,
            "is invalid for the target audiences",
        ),
        (
            "token for another audience",
            other_aud.clone(),
            None,
            T0,
            "is invalid for the target audiences",
        ),
        (
            "its audience asked",
            other_aud,
            Some(json!(["vault"])),
            T0,
            "OK",
        ),
        (
            "bad signature",
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                String::from_utf8(flipped_sig).unwrap()
            ),
            None,
            T0,
            "error in cryptographic primitive",
        ),
        (
            "claims changed",
            format!(
                "{}.{}.{}",
                parts[0],
                jwt::b64url(as_admin.to_string().as_bytes()),
                parts[2]
            ),
            None,
            T0,
            "error in cryptographic primitive",
        ),
        (
            "another key, our kid",
            resign(&stranger, &header, &c),
            None,
            T0,
            "error in cryptographic primitive",
        ),
        (
            "unknown kid",
            resign(&*keys, &with_kid, &c),
            None,
            T0,
            "no key found for kid \"not-our-key\"",
        ),
        (
            "another issuer",
            resign(&*keys, &header, &other_iss),
            None,
            T0,
            "",
        ),
        ("not a JWT", "abcdef.123456".into(), None, T0, ""),
    ];
    for (what, token, audiences, at, want) in cases {
        let status = h.review(&token, audiences, at);
        if want == "OK" {
            assert_eq!(status["authenticated"], true, "{what}: {status}");
            continue;
        }
        assert_eq!(status["authenticated"], Value::Null, "{what}: {status}");
        assert_eq!(status["user"], json!({}), "{what}");
        match want {
            "" => assert!(status.get("error").is_none(), "{what}: {status}"),
            want => assert!(
                status["error"].as_str().unwrap_or("").contains(want),
                "{what}: {status}"
            ),
        }
    }
}

#[test]
fn token_review_needs_a_token_and_no_signer_means_no_tokens() {
    let mut h = H::new();
    let ctx = h.ctx(T0);
    let e = ready(
        h.api
            .create(res("tokenreviews"), None, json!({"spec": {}}), &ctx),
    )
    .unwrap_err();
    assert_eq!(e.code, 400);
    // Reviews are never stored.
    let (items, _) = ready(
        h.api
            .list(res("tokenreviews"), None, &ListOptions::default()),
    )
    .unwrap();
    assert!(items.is_empty());
    let plain = ApiServer::new(MemStore::default());
    let e = ready(plain.create_token("default", "x", json!({}), &ctx))
        .err()
        .unwrap();
    assert!(
        e.message.contains("no service-account signing key"),
        "{}",
        e.message
    );
}

#[test]
fn the_published_key_verifies_requested_tokens() {
    use crate::auth::serviceaccount::oidc;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
    let mut h = H::new();
    let token = h.token(json!({}));
    let cfg = h.api.tokens().unwrap();
    let discovery = oidc::configuration(cfg);
    assert_eq!(discovery["issuer"], DEFAULT_ISSUER);
    assert_eq!(
        discovery["jwks_uri"],
        format!("{DEFAULT_ISSUER}/openid/v1/jwks")
    );
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(discovery["response_types_supported"], json!(["id_token"]));
    assert_eq!(discovery["subject_types_supported"], json!(["public"]));
    let jwks = oidc::jwks(cfg);
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["use"].as_str(),
            key["alg"].as_str(),
            key["kty"].as_str()
        ),
        (Some("sig"), Some("ES256"), Some("EC"))
    );
    let (header, _) = claims(&token);
    assert_eq!(key["kid"], header["kid"]);
    // The point from the JWK alone checks the token's signature.
    let mut point = vec![4u8];
    for c in ["x", "y"] {
        point.extend(jwt::b64url_decode(key[c].as_str().unwrap()).unwrap());
    }
    let p = jwt::parse(&token).unwrap();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point);
    assert!(public
        .verify(p.signing_input.as_bytes(), &p.signature)
        .is_ok());
    assert!(public.verify(b"something else", &p.signature).is_err());
}

fn pod_spec(spec: Value) -> Value {
    json!({"metadata": {"name": "web"}, "spec": spec})
}

fn try_pod(h: &mut H, body: Value) -> Result<Value, ApiError> {
    let ctx = h.ctx(T0);
    ready(h.api.create(res("pods"), Some("default"), body, &ctx)).map(Arc::unwrap_or_clone)
}

#[test]
fn pods_get_the_default_service_account_and_its_token_volume() {
    let mut h = H::new();
    h.create(
        "serviceaccounts",
        Some("default"),
        json!({"metadata": {"name": "default"}}),
    );
    let pod = try_pod(
        &mut h,
        pod_spec(json!({
        "initContainers": [{"name": "init", "image": "x"}],
        "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x",
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}]})),
    )
    .unwrap();
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    let volumes = spec["volumes"].as_array().unwrap();
    assert_eq!(volumes.len(), 2);
    let name = volumes[1]["name"].as_str().unwrap();
    assert!(
        name.starts_with("kube-api-access-") && name.len() == "kube-api-access-".len() + 5,
        "{name}"
    );
    // k8s: TokenVolumeSource.
    let sources = &volumes[1]["projected"]["sources"];
    assert_eq!(
        sources[0]["serviceAccountToken"],
        json!({"expirationSeconds": 3607, "path": "token"})
    );
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let want = json!({"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"});
    for c in spec["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(spec["containers"].as_array().unwrap())
    {
        let mounts = c["volumeMounts"].as_array().unwrap();
        assert_eq!(mounts.last().unwrap(), &want, "{}", c["name"]);
    }
    assert_eq!(spec["containers"][1]["volumeMounts"][0]["name"], "data");
}

#[test]
fn service_account_admission_follows_upstreams_rules() {
    let mut h = H::new();
    h.create(
        "serviceaccounts",
        Some("default"),
        json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false}),
    );
    let c = json!([{"name": "a", "image": "x"}]);
    let has_volume = |p: &Value| {
        p["spec"]["volumes"]
            .as_array()
            .is_some_and(|v| !v.is_empty())
    };
    // (what, spec, mounted?) — k8s: shouldAutomount, the pod's choice first.
    let cases = [
        (
            "named account",
            json!({"serviceAccountName": "builder", "containers": c}),
            true,
        ),
        (
            "account opts out",
            json!({"serviceAccountName": "quiet", "containers": c}),
            false,
        ),
        (
            "pod opts back in",
            json!({"serviceAccountName": "quiet", "automountServiceAccountToken": true, "containers": c}),
            true,
        ),
        (
            "pod opts out",
            json!({"serviceAccountName": "builder", "automountServiceAccountToken": false, "containers": c}),
            false,
        ),
        (
            "own mount at the path",
            json!({"serviceAccountName": "builder", "containers": [{"name": "a", "image": "x",
            "volumeMounts": [{"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "volumes": [{"name": "mine", "emptyDir": {}}]}),
            false,
        ),
    ];
    for (i, (what, spec, mounted)) in cases.into_iter().enumerate() {
        let mut body = pod_spec(spec);
        body["metadata"]["name"] = json!(format!("p{i}"));
        let pod = try_pod(&mut h, body).unwrap_or_else(|e| panic!("{what}: {}", e.message));
        let projected = pod["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v.get("projected").is_some());
        assert_eq!(projected, mounted, "{what}: {}", pod["spec"]);
        if !mounted && what != "own mount at the path" {
            assert!(!has_volume(&pod), "{what}");
        }
    }
    // No such account: refused as upstream (no default account here either).
    for (sa, want) in [("ghost", "ghost"), ("", "default")] {
        let e = try_pod(
            &mut h,
            pod_spec(json!({"serviceAccountName": sa, "containers": c})),
        )
        .unwrap_err();
        assert_eq!(e.code, 403, "{}", e.message);
        assert!(e.message.contains(&format!("error looking up service account default/{want}: serviceaccount \"{want}\" not found")), "{}", e.message);
    }
    // Without a signing key (the simulator) pods are left as they are.
    let plain = ApiServer::new(MemStore::default());
    let mut n = 0;
    ready(plain.bootstrap(|| {
        n += 1;
        ctx_at(n, T0)
    }))
    .unwrap();
    let pod = ready(plain.create(
        res("pods"),
        Some("default"),
        pod_spec(json!({"containers": c})),
        &ctx_at(500, T0),
    ))
    .unwrap();
    assert!(!has_volume(&pod), "{}", pod["spec"]);
}

#[test]
fn tokens_bound_to_a_secret_or_node_live_as_long_as_it_and_lifetimes_are_capped() {
    let mut h = H::new();
    let secret = h.create(
        "secrets",
        Some("default"),
        json!({"metadata": {"name": "s1"}}),
    );
    let node = h.create("nodes", None, json!({"metadata": {"name": "n1"}}));
    let bound = |kind: &str, name: &str, uid: &Value| json!({"boundObjectRef": {"kind": kind, "apiVersion": "v1", "name": name, "uid": uid}});
    let by_secret = h.token(bound("Secret", "s1", &secret["metadata"]["uid"]));
    let by_node = h.token(bound("Node", "n1", &node["metadata"]["uid"]));
    let (_, c) = claims(&by_secret);
    assert_eq!(c["kubernetes.io"]["secret"]["name"], "s1");
    for t in [&by_secret, &by_node] {
        assert_eq!(h.review(t, None, T0 + 1)["authenticated"], true);
    }
    let status = h.review(&by_node, None, T0 + 1);
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/node-uid"],
        json!([node["metadata"]["uid"]])
    );
    let ctx = h.ctx(T0);
    let gone = DeleteOptions::default();
    ready(
        h.api
            .delete(res("secrets"), Some("default"), "s1", &gone, &ctx),
    )
    .unwrap();
    ready(h.api.delete(res("nodes"), None, "n1", &gone, &ctx)).unwrap();
    for t in [&by_secret, &by_node] {
        let status = h.review(t, None, T0 + 1);
        assert_eq!(
            status["error"],
            "service account token has been invalidated"
        );
    }
    // k8s: --service-account-max-token-expiration shortens, with a warning.
    let keys = h.api.tokens().unwrap().keys.clone();
    let mut cfg = TokenConfig::new(keys);
    cfg.max_expiration_seconds = 1200;
    let api = std::mem::replace(&mut h.api, ApiServer::new(MemStore::default()));
    h.api = api.with_tokens(cfg);
    let ctx = h.ctx(T0);
    let body = json!({"spec": {"expirationSeconds": 7200}});
    let issued = ready(h.api.create_token("default", "builder", body, &ctx)).unwrap();
    assert_eq!(issued.request["spec"]["expirationSeconds"], 1200);
    assert_eq!(
        issued.warnings,
        ["requested expiration of 7200 seconds shortened to 1200 seconds"]
    );
    let (_, c) = claims(issued.request["status"]["token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64(), Some(T0 + 1200));
}
