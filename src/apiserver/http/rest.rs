//! Generic REST for every registered resource: the URL names a resource (and a namespace, a
//! name, a subresource), the method names the verb, and the apiserver core does the rest.

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use futures::StreamExt;
use serde_json::{json, Value};

use super::paging;
use super::{duplicates, respond, scale, table, watch, State};
use crate::api::registry::{self, ResourceInfo, Verb};
use crate::api::selector::Selector;
use crate::api::status::ApiError;
use crate::apiserver::{
    object, patch, protobuf, strategy, DeleteOptions, FieldSelector, ListOptions, Part,
    RequestContext,
};

/// What a request's path names.
#[derive(Debug, PartialEq)]
pub(super) struct Target {
    pub res: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

/// Reads `[namespaces/<ns>/]<plural>[/<name>[/<subresource>]]` under a group/version.
pub(super) fn target(group: &str, version: &str, tail: &str) -> Result<Target, ApiError> {
    let segs: Vec<&str> = tail.split('/').filter(|s| !s.is_empty()).collect();
    let lookup = |plural: &str| {
        registry::by_plural(group, plural)
            .filter(|r| r.version == version)
            .ok_or_else(ApiError::no_such_path)
    };
    let owned = |s: Option<&&str>| s.map(|s| s.to_string());
    // `namespaces/<ns>/<plural>...` is a namespaced resource, unless the third segment is a
    // subresource of the namespace itself (`namespaces/<name>/status`).
    if group.is_empty() && segs.len() >= 3 && segs[0] == "namespaces" {
        let ns_res = lookup("namespaces")?;
        if segs.len() == 3 && ns_res.has_subresource(segs[2]) {
            return Ok(Target {
                res: ns_res,
                namespace: None,
                name: owned(segs.get(1)),
                sub: owned(segs.get(2)),
            });
        }
    }
    if segs.len() >= 3 && segs[0] == "namespaces" {
        let res = lookup(segs[2])?;
        if !res.namespaced || segs.len() > 5 {
            return Err(ApiError::no_such_path());
        }
        return Ok(Target {
            res,
            namespace: Some(segs[1].to_string()),
            name: owned(segs.get(3)),
            sub: owned(segs.get(4)),
        });
    }
    let Some(plural) = segs.first() else {
        return Err(ApiError::no_such_path());
    };
    let res = lookup(plural)?;
    // A namespaced resource is reached by name only through its namespace.
    if segs.len() > 3 || (res.namespaced && segs.len() > 1) {
        return Err(ApiError::no_such_path());
    }
    Ok(Target {
        res,
        namespace: None,
        name: owned(segs.get(1)),
        sub: owned(segs.get(2)),
    })
}

pub(super) async fn core(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let version = req.match_info().query("version").to_string();
    let tail = req.match_info().query("tail").to_string();
    serve(req, body, state, "", &version, &tail).await
}

pub(super) async fn grouped(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
) -> HttpResponse {
    let group = req.match_info().query("group").to_string();
    let version = req.match_info().query("version").to_string();
    let tail = req.match_info().query("tail").to_string();
    serve(req, body, state, &group, &version, &tail).await
}

async fn serve(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<State>,
    group: &str,
    version: &str,
    tail: &str,
) -> HttpResponse {
    let t = target(group, version, tail);
    // k8s: v1 Endpoints are deprecated from v1.33: every request is told so.
    let deprecated = matches!(&t, Ok(t) if t.res.group.is_empty() && t.res.plural == "endpoints");
    let outcome = async {
        let t = t?;
        // pods/exec upgrades the connection: its payload is the client's stream, not a body.
        if t.res.group.is_empty() && t.res.plural == "pods" && t.sub.as_deref() == Some("exec") {
            if let (Some(name), "GET" | "POST") = (t.name.as_deref(), req.method().as_str()) {
                let ns = t.namespace.as_deref();
                return super::exec::serve(&req, body, &state.api, ns, name).await;
            }
        }
        // SelfSubjectReview is answered from the request's user alone; the other reviews
        // (TokenReview, the access reviews) are creates the apiserver core answers.
        if t.res.group == "authentication.k8s.io" && t.res.plural == "selfsubjectreviews" {
            return create_only(&req, body, &state, &t).await;
        }
        let query = web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(|q| q.into_inner())
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
        let body = read_body(body, state.config.max_body_bytes).await?;
        handle(&req, &state, t, &query, &body).await
    };
    let response = match outcome.await {
        Ok(response) => response,
        Err(e) => respond::error(&e),
    };
    if deprecated {
        with_warnings(response, &[ENDPOINTS_DEPRECATED.to_string()])
    } else {
        response
    }
}

/// A review: POST to the collection only, answered from the request (k8s: a `rest.Creater`
/// without storage).
async fn create_only(
    req: &HttpRequest,
    body: web::Payload,
    state: &State,
    t: &Target,
) -> Result<HttpResponse, ApiError> {
    if req.method() != actix_web::http::Method::POST || t.name.is_some() || t.namespace.is_some() {
        return Err(ApiError::method_not_allowed(format!(
            "{} only supports create",
            t.res.plural
        )));
    }
    let body = read_body(body, state.config.max_body_bytes).await?;
    let user = super::authn::user_of(req);
    Ok(respond::json(
        201,
        &super::selfsubjectreview::review(&user, &body)?,
    ))
}

/// The warning upstream gives every v1 Endpoints request (k8s: the resource's deprecation
/// notice, v1.33).
const ENDPOINTS_DEPRECATED: &str =
    "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice";

async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn content_type(req: &HttpRequest) -> String {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

const BODY_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];

/// A request body as JSON: JSON, or YAML; no Content-Type means JSON (the Python client).
fn decode_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request has no body"));
    }
    match content_type {
        "" | "application/json" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => yaml_serde::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}"))),
        protobuf::CONTENT_TYPE => protobuf::decode(body),
        other => Err(ApiError::unsupported_media_type(other, BODY_TYPES)),
    }
}

fn list_options(
    res: &ResourceInfo,
    query: &HashMap<String, String>,
) -> Result<ListOptions, ApiError> {
    let label_selector = match query.get("labelSelector") {
        Some(s) => Selector::parse(s)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
        None => Selector::default(),
    };
    let field_selector = match query.get("fieldSelector") {
        Some(s) => FieldSelector::parse(res, s)?,
        None => FieldSelector::default(),
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
    })
}

/// `?fieldValidation=`: what unknown fields in a body do (k8s: Strict refuses them, Warn, the
/// default, answers with a Warning header each, Ignore drops them silently).
#[derive(Clone, Copy, Debug, PartialEq)]
enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    fn from_query(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        match query.get("fieldValidation").map(String::as_str) {
            Some("Strict") => Ok(Self::Strict),
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
            ))),
        }
    }

    /// The warnings `obj` earns, or the 400 a strict request gets.
    fn check(self, res: &ResourceInfo, obj: &Value) -> Result<Vec<String>, ApiError> {
        self.check_body(res, obj, "", b"")
    }

    /// The same, counting the fields a JSON body repeats (`body` as it came).
    fn check_body(
        self,
        res: &ResourceInfo,
        obj: &Value,
        content_type: &str,
        body: &[u8],
    ) -> Result<Vec<String>, ApiError> {
        if self == Self::Ignore {
            return Ok(Vec::new());
        }
        let mut unknown: Vec<String> = Vec::new();
        if matches!(content_type, "" | "application/json" | "*/*") && !body.is_empty() {
            unknown.extend(
                duplicates::duplicate_fields(body)
                    .into_iter()
                    .map(|f| format!("duplicate field \"{f}\"")),
            );
        }
        unknown.extend(
            strategy::unknown_fields(res, obj)?
                .into_iter()
                .map(|f| format!("unknown field \"{f}\"")),
        );
        if self == Self::Strict && !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                unknown.join(", "),
                kind = res.kind,
                version = res.version
            )));
        }
        Ok(unknown)
    }
}

/// `Warning: 299 - "..."` headers, as upstream sends them.
fn with_warnings(mut response: HttpResponse, warnings: &[String]) -> HttpResponse {
    for w in warnings {
        let value = format!("299 - {}", serde_json::Value::String(w.clone()));
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .append(actix_web::http::header::WARNING, v);
        }
    }
    response
}

fn truthy(query: &HashMap<String, String>, key: &str) -> bool {
    query
        .get(key)
        .is_some_and(|v| v == "true" || v == "1" || v.is_empty())
}

fn needs(res: &ResourceInfo, verb: Verb) -> Result<(), ApiError> {
    if res.supports(verb) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(format!(
            "{verb} is not supported on {}",
            res.plural
        )))
    }
}

async fn handle(
    req: &HttpRequest,
    state: &State,
    t: Target,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let api = &state.api;
    let res = t.res;
    let ns = t.namespace.as_deref();
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {other:?}: supported values: \"All\""
            )))
        }
    };
    let user = super::authz::request_user(req);
    let ctx = || {
        let mut c = state.ctx().as_user(user.clone());
        c.dry_run = dry_run;
        c
    };
    if let Some(sub) = t.sub.as_deref() {
        if !res.has_subresource(sub) {
            return Err(ApiError::no_such_path());
        }
    }
    let method = req.method().as_str();
    let name = t.name.as_deref();
    let validation = FieldValidation::from_query(query)?;
    match (method, name, t.sub.as_deref()) {
        ("GET", None, _) if truthy(query, "watch") => {
            needs(res, Verb::Watch)?;
            let tables = table::wanted(super::accept(req));
            watch::serve(state, res, ns, query, list_options(res, query)?, tables).await
        }
        ("GET", None, _) => {
            needs(res, Verb::List)?;
            let opts = list_options(res, query)?;
            let limit = paging::limit(query.get("limit"))?;
            let list_key = || paging::ListKey {
                resource: format!("{}/{}", res.group, res.plural),
                namespace: ns.unwrap_or("").to_string(),
                label_selector: query.get("labelSelector").cloned().unwrap_or_default(),
                field_selector: query.get("fieldSelector").cloned().unwrap_or_default(),
            };
            let page = match query.get("continue").filter(|c| !c.is_empty()) {
                Some(token) => {
                    // k8s: a continued list is at the first page's version.
                    if query.get("resourceVersion").is_some_and(|v| !v.is_empty()) {
                        return Err(ApiError::bad_request(
                            "specifying resource version is not allowed when using continue",
                        ));
                    }
                    let token = paging::decode_token(token)?;
                    // Only an inconsistent continue (after a 410) lists anew.
                    let current = if token.revision < 0 {
                        Some(api.list(res, ns, &opts).await?)
                    } else {
                        None
                    };
                    match state.snapshots.next(list_key(), &token, limit, move || {
                        current.unwrap_or_default()
                    }) {
                        Ok(page) => page,
                        Err(expired) => return Ok(respond::json(410, &expired.status())),
                    }
                }
                None => {
                    let (items, revision) = api.list(res, ns, &opts).await?;
                    match limit {
                        Some(limit) => state.snapshots.first(list_key(), items, revision, limit),
                        None => paging::Page {
                            items,
                            revision,
                            continue_token: None,
                            remaining: None,
                        },
                    }
                }
            };
            let paging::Page {
                ref items,
                revision,
                ..
            } = page;
            // k8s: a list "not older than" a version the store has not reached is refused
            // (upstream waits up to 3 s for its cache first; this store is never behind).
            if let Some(want) = query
                .get("resourceVersion")
                .filter(|v| !v.is_empty() && *v != "0")
            {
                let want = want.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(format!("resourceVersion: not a valid version: {want:?}"))
                })?;
                if want > revision {
                    return Err(ApiError::timeout(format!(
                        "Too large resource version: {want}, current: {revision}"
                    )));
                }
            }
            if table::wanted(super::accept(req)) {
                let mut t = table::table(res, items, Some(revision), super::now_seconds(), true);
                page.annotate(&mut t);
                return Ok(respond::json(200, &t));
            }
            let mut body = list_body(res, Vec::new(), revision);
            page.annotate(&mut body);
            body["items"] = Value::Array(page.items);
            Ok(respond::json(200, &body))
        }
        ("GET", Some(name), None | Some("status")) => {
            let obj = api.get(res, ns, name).await?;
            if table::wanted(super::accept(req)) {
                let t = table::table(res, &[obj], None, super::now_seconds(), true);
                return Ok(respond::json(200, &t));
            }
            Ok(respond::json(200, &obj))
        }
        ("GET", Some(name), Some("scale")) => Ok(respond::json(
            200,
            &scale::of(&api.get(res, ns, name).await?),
        )),
        ("PUT", Some(name), Some("scale")) => {
            let wanted = decode_body(&content_type(req), body)?;
            let obj = scale::apply(api.get(res, ns, name).await?, &wanted)?;
            let updated = api.update(res, ns, name, obj, Part::Main, &ctx()).await?;
            Ok(respond::json(200, &scale::of(&updated)))
        }
        ("PATCH", Some(name), Some("scale")) => {
            let kind = patch::Kind::from_content_type(&content_type(req))?;
            let doc = decode_body("application/json", body)?;
            for _ in 0..5 {
                let current = api.get(res, ns, name).await?;
                let wanted = patch::apply(kind, scale::of(&current), &doc, res)?;
                let obj = scale::apply(current, &wanted)?;
                match api.update(res, ns, name, obj, Part::Main, &ctx()).await {
                    Ok(updated) => return Ok(respond::json(200, &scale::of(&updated))),
                    Err(e) if e.reason == "Conflict" => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(ApiError::conflict(
                res,
                name,
                "the object keeps changing; try again",
            ))
        }
        ("GET", Some(name), Some("log")) => super::logs::serve(api, ns, name, query).await,
        ("POST", None, None) => {
            needs(res, Verb::Create)?;
            let obj = decode_body(&content_type(req), body)?;
            let warnings = validation.check_body(res, &obj, &content_type(req), body)?;
            let c = ctx();
            let created = api.create(res, ns, obj, &c).await?;
            if !c.dry_run {
                super::created(state, res, &created).await?;
            }
            Ok(with_warnings(respond::json(201, &*created), &warnings))
        }
        ("POST", Some(name), Some("binding")) => {
            let binding = decode_body(&content_type(req), body)?;
            let node = binding["target"]["name"].as_str().unwrap_or("");
            api.bind(ns.unwrap_or(""), name, node, &ctx()).await?;
            Ok(respond::json(201, &respond::success()))
        }
        ("POST", Some(name), Some("token")) => {
            let request = decode_body(&content_type(req), body)?;
            let issued = api
                .create_token(ns.unwrap_or(""), name, request, &ctx())
                .await?;
            Ok(with_warnings(
                respond::json(201, &issued.request),
                &issued.warnings,
            ))
        }
        ("POST", Some(name), Some("eviction")) => {
            let eviction = decode_body(&content_type(req), body)?;
            let opts = delete_options(&eviction["deleteOptions"], query)?;
            // k8s: NodeRestriction — a node evicts only its own pods.
            let user = super::authz::request_user(req);
            api.admit_node_write(
                &user,
                crate::auth::node::admission::Operation::Create,
                res,
                "eviction",
                ns.unwrap_or(""),
                name,
                None,
                Some(&eviction),
            )
            .await?;
            api.delete(res, ns, name, &opts, &ctx()).await?;
            Ok(respond::json(201, &respond::success()))
        }
        ("PUT", Some(name), sub @ (None | Some("status") | Some("finalize"))) => {
            needs(res, Verb::Update)?;
            let part = match sub {
                Some("status") => Part::Status,
                Some("finalize") => Part::Finalize,
                _ => Part::Main,
            };
            let obj = decode_body(&content_type(req), body)?;
            let warnings = validation.check_body(res, &obj, &content_type(req), body)?;
            let updated = api.update(res, ns, name, obj, part, &ctx()).await?;
            Ok(with_warnings(respond::json(200, &*updated), &warnings))
        }
        ("PATCH", Some(name), sub @ (None | Some("status"))) => {
            needs(res, Verb::Patch)?;
            let part = if sub == Some("status") {
                Part::Status
            } else {
                Part::Main
            };
            let kind = patch::Kind::from_content_type(&content_type(req))?;
            let doc = match kind {
                patch::Kind::Apply => decode_body("application/yaml", body)?,
                _ => decode_body("application/json", body)?,
            };
            let (obj, created, warnings) =
                patch_object(state, res, ns, name, (part, kind, validation), &doc, &ctx).await?;
            let code = if created { 201 } else { 200 };
            Ok(with_warnings(respond::json(code, &*obj), &warnings))
        }
        ("DELETE", Some(name), None) => {
            needs(res, Verb::Delete)?;
            let options = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Null
            } else {
                decode_body(&content_type(req), body)?
            };
            let opts = delete_options(&options, query)?;
            // kubectl puts a delete's dryRun in its DeleteOptions body.
            let mut c = ctx();
            c.dry_run |= options["dryRun"]
                .as_array()
                .is_some_and(|d| d.iter().any(|v| v == "All"));
            let obj = api.delete(res, ns, name, &opts, &c).await?;
            Ok(deleted(res, &obj))
        }
        ("DELETE", None, None) => {
            needs(res, Verb::DeleteCollection)?;
            let opts = delete_options(&Value::Null, query)?;
            let (items, revision) = api.list(res, ns, &list_options(res, query)?).await?;
            let mut gone = Vec::new();
            for item in items {
                let (ns, name) = (object::meta_str(&item, "namespace"), object::name(&item));
                match api.delete(res, ns, name, &opts, &ctx()).await {
                    Ok(obj) => gone.push((*obj).clone()),
                    Err(e) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(respond::json(200, &list_body(res, gone, revision)))
        }
        (_, _, Some(sub)) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}/{sub} by this server",
            res.plural
        ))),
        _ => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on this path"
        ))),
    }
}

fn list_body(res: &ResourceInfo, items: Vec<Value>, revision: u64) -> Value {
    json!({
        "kind": format!("{}List", res.kind),
        "apiVersion": res.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    })
}

/// k8s: pods, services and service accounts answer a delete with the object (their
/// registries' ReturnDeletedObject; the clients' models expect it); other kinds with a Success
/// Status once gone, or with the object (202) while finalizers hold it.
fn deleted(res: &ResourceInfo, obj: &Value) -> HttpResponse {
    if res.group.is_empty() && ["pods", "services", "serviceaccounts"].contains(&res.plural) {
        return respond::json(200, obj);
    }
    if object::is_deleting(obj) && !object::finalizers(obj).is_empty() {
        return respond::json(202, obj);
    }
    respond::json(200, &respond::deleted(res, obj))
}

/// DeleteOptions from a body (kubectl sends one without kind; the Python client none) and the
/// query parameters.
fn delete_options(
    body: &Value,
    query: &HashMap<String, String>,
) -> Result<DeleteOptions, ApiError> {
    if !(body.is_null() || body.is_object()) {
        return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
    }
    let grace = match query.get("gracePeriodSeconds") {
        Some(g) => Some(g.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: not an integer: {g:?}"))
        })?),
        None => body["gracePeriodSeconds"].as_i64(),
    };
    let policy = query
        .get("propagationPolicy")
        .cloned()
        .or_else(|| body["propagationPolicy"].as_str().map(String::from));
    if let Some(p) = policy.as_deref() {
        if !["Foreground", "Background", "Orphan"].contains(&p) {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(DeleteOptions {
        grace_period_seconds: grace,
        precondition_uid: body["preconditions"]["uid"].as_str().map(String::from),
        precondition_resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
        propagation_policy: policy,
        orphan_dependents: query
            .get("orphanDependents")
            .map(|v| v == "true")
            .or_else(|| body["orphanDependents"].as_bool()),
    })
}

/// Reads the object, applies the patch and writes the result on the version read; a
/// concurrent write makes it start over (k8s: the patcher retries on conflict). Server-side
/// apply creates a missing object (`true`: created).
async fn patch_object(
    state: &State,
    res: &'static ResourceInfo,
    ns: Option<&str>,
    name: &str,
    (part, kind, validation): (Part, patch::Kind, FieldValidation),
    doc: &Value,
    ctx: &impl Fn() -> RequestContext,
) -> Result<(std::sync::Arc<Value>, bool, Vec<String>), ApiError> {
    let api = &state.api;
    for _ in 0..5 {
        let current = match api.get(res, ns, name).await {
            Ok(obj) => obj,
            Err(e) if e.code == 404 && kind == patch::Kind::Apply && part == Part::Main => {
                let mut obj = doc.clone();
                if !obj.is_object() {
                    return Err(ApiError::bad_request("an apply patch must be an object"));
                }
                object::meta_mut(&mut obj).insert("name".into(), json!(name));
                let warnings = validation.check(res, &obj)?;
                let c = ctx();
                let created = api.create(res, ns, obj, &c).await?;
                if !c.dry_run {
                    super::created(state, res, &created).await?;
                }
                return Ok((created, true, warnings));
            }
            Err(e) => return Err(e),
        };
        let rv = object::meta_str(&current, "resourceVersion").map(String::from);
        let mut patched = patch::apply(kind, current, doc, res)?;
        let warnings = validation.check(res, &patched)?;
        // The version read is the precondition, unless the patch names its own.
        if object::meta_str(&patched, "resourceVersion").is_none_or(str::is_empty) {
            if let Some(rv) = &rv {
                object::meta_mut(&mut patched).insert("resourceVersion".into(), json!(rv));
            }
        }
        match api.update(res, ns, name, patched, part, &ctx()).await {
            Ok(obj) => return Ok((obj, false, warnings)),
            Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::conflict(
        res,
        name,
        "the object keeps changing; try again",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plural, namespace, name, subresource.
    type Named = (String, Option<String>, Option<String>, Option<String>);

    fn t(group: &str, version: &str, tail: &str) -> Result<Named, u16> {
        target(group, version, tail)
            .map(|t| (t.res.plural.to_string(), t.namespace, t.name, t.sub))
            .map_err(|e| e.code)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn paths_name_resources() {
        let cases = [
            (("", "v1", "pods"), Ok(("pods".into(), None, None, None))),
            (
                ("", "v1", "namespaces/default/pods"),
                Ok(("pods".into(), s("default"), None, None)),
            ),
            (
                ("", "v1", "namespaces/default/pods/web"),
                Ok(("pods".into(), s("default"), s("web"), None)),
            ),
            (
                ("", "v1", "namespaces/default/pods/web/status"),
                Ok(("pods".into(), s("default"), s("web"), s("status"))),
            ),
            (
                ("", "v1", "namespaces"),
                Ok(("namespaces".into(), None, None, None)),
            ),
            (
                ("", "v1", "namespaces/default"),
                Ok(("namespaces".into(), None, s("default"), None)),
            ),
            (
                ("", "v1", "namespaces/demo/finalize"),
                Ok(("namespaces".into(), None, s("demo"), s("finalize"))),
            ),
            (
                ("", "v1", "nodes/n1/status"),
                Ok(("nodes".into(), None, s("n1"), s("status"))),
            ),
            (
                ("apps", "v1", "namespaces/x/deployments/d/scale"),
                Ok(("deployments".into(), s("x"), s("d"), s("scale"))),
            ),
            (("", "v1", "pods/web"), Err(404)),
            (("", "v1", "namespaces/default/nodes/n1"), Err(404)),
            (("", "v1", "widgets"), Err(404)),
            (("apps", "v2", "deployments"), Err(404)),
            (("", "v1", ""), Err(404)),
            (("", "v1", "namespaces/a/pods/b/c/d"), Err(404)),
        ];
        for ((g, v, tail), want) in cases {
            assert_eq!(t(g, v, tail), want, "{g}/{v}/{tail}");
        }
    }

    #[test]
    fn bodies_are_json_or_yaml() {
        assert_eq!(decode_body("", b"{\"a\":1}").unwrap(), json!({"a": 1}));
        assert_eq!(
            decode_body("application/yaml", b"a: 1\n").unwrap(),
            json!({"a": 1})
        );
        let cases: [(&str, &[u8], u16); 5] = [
            ("application/json", b"{not json", 400),
            ("application/yaml", b"a: [1", 400),
            ("application/vnd.kubernetes.protobuf", b"k8s\0", 415),
            ("text/plain", b"hello", 415),
            ("application/json", b"  ", 400),
        ];
        for (ct, body, code) in cases {
            assert_eq!(decode_body(ct, body).unwrap_err().code, code, "{ct}");
        }
    }

    #[test]
    fn delete_options_come_from_the_body_and_the_query() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let o = delete_options(&json!({"propagationPolicy": "Background", "gracePeriodSeconds": 5, "preconditions": {"uid": "u"}}), &q(&[])).unwrap();
        assert_eq!(
            (
                o.grace_period_seconds,
                o.propagation_policy.as_deref(),
                o.precondition_uid.as_deref()
            ),
            (Some(5), Some("Background"), Some("u"))
        );
        let o = delete_options(&Value::Null, &q(&[("gracePeriodSeconds", "0")])).unwrap();
        assert_eq!(o.grace_period_seconds, Some(0));
        assert_eq!(
            delete_options(&Value::Null, &q(&[("gracePeriodSeconds", "x")]))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(
            delete_options(&json!({"propagationPolicy": "Sideways"}), &q(&[]))
                .unwrap_err()
                .code,
            400
        );
        assert_eq!(delete_options(&json!([1]), &q(&[])).unwrap_err().code, 400);
    }
}
