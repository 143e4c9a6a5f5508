//! The HTTP apiserver (k8s: staging/src/k8s.io/apiserver/pkg/endpoints): Kubernetes' REST paths,
//! discovery, OpenAPI, watch streams and Status errors over the apiserver core, served by
//! actix-web. The wire contract is ../shared/reference/kubectl-compat.md.

pub mod authn;
mod authz;
mod discovery;
mod duplicates;
mod exec;
mod hub;
mod impersonation;
pub mod inprocess;
pub mod kubeconfig;
mod logs;
mod openapi;
mod paging;
mod respond;
mod rest;
mod scale;
mod selfsubjectreview;
pub mod serviceaccount_authn;
mod table;
pub mod tls;
mod version;
mod watch;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{ApiServer, RequestContext};
use crate::api::status::ApiError;
use crate::store::backend::Backend;
use crate::time::Time;

pub use version::MINOR as KUBERNETES_MINOR;

/// Limits and names a server is started with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Request bodies larger than this are refused with 413 (k8s: 3 MiB, etcd's value limit
    /// plus headroom).
    pub max_body_bytes: usize,
    /// `host:port` clients reach the server at (discovery's serverAddressByClientCIDRs).
    pub address: String,
    /// How long a watch without `timeoutSeconds` stays open (k8s: --min-request-timeout
    /// 1800 s).
    pub watch_timeout: Duration,
    /// How often a watch that allows bookmarks gets one (k8s: about every minute).
    pub bookmark_interval: Duration,
    /// Changes each resource's watch cache keeps for watches that resume; older versions get
    /// 410 Expired.
    pub watch_history: usize,
    /// Whether the server answers cluster DNS, and so has a `kube-system/kube-dns` Service.
    pub cluster_dns: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_body_bytes: 3 * 1024 * 1024,
            address: "127.0.0.1:6443".into(),
            watch_timeout: Duration::from_secs(1800),
            bookmark_interval: Duration::from_secs(60),
            watch_history: 10_000,
            cluster_dns: true,
        }
    }
}

/// What every request handler shares.
pub struct State {
    pub api: Arc<ApiServer<Backend>>,
    pub config: Config,
    hub: hub::Hub,
    rng: Mutex<ChaCha8Rng>,
    /// Recent paged lists (`?limit=`), which their continue tokens are cut from.
    snapshots: paging::ListSnapshots,
}

impl State {
    pub fn new(api: ApiServer<Backend>, config: Config) -> Arc<State> {
        Arc::new(State {
            api: Arc::new(api),
            hub: hub::Hub::new(config.watch_history),
            config,
            rng: Mutex::new(ChaCha8Rng::from_seed(os_seed())),
            snapshots: paging::ListSnapshots::default(),
        })
    }

    /// A request's time and randomness (UIDs, generateName suffixes).
    pub fn ctx(&self) -> RequestContext {
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        RequestContext::from_rng(wall_clock(), &mut *rng)
    }
}

/// What a fresh API holds besides the boot namespaces (kubectl-compat.md §4): the
/// `default/kubernetes` Service and its Endpoints and EndpointSlice pointing at this server,
/// and a `default`
/// ServiceAccount in each boot namespace. Existing objects are left as they are.
pub async fn boot_objects(state: &State) -> Result<(), ApiError> {
    use crate::api::registry::by_plural;
    state
        .api
        .ensure_kubernetes_service(&state.config.address, || state.ctx())
        .await?;
    let res = |group: &str, plural: &str| by_plural(group, plural).expect("registered");
    let dns_ip = state.api.service_ranges().cluster_ips.dns();
    if let Some(ip) = dns_ip.filter(|_| state.config.cluster_dns) {
        match state
            .api
            .create(
                res("", "services"),
                Some("kube-system"),
                kube_dns_service(ip),
                &state.ctx(),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.reason == "AlreadyExists" => {}
            Err(e) => return Err(e),
        }
    }
    // Namespaces made before (by an earlier run, or the boot ones) get theirs too.
    let namespaces = res("", "namespaces");
    let (all, _) = state
        .api
        .list(namespaces, None, &Default::default())
        .await?;
    for ns in all {
        if !crate::apiserver::object::is_deleting(&ns) {
            default_service_account(state, ns["metadata"]["name"].as_str().unwrap_or("")).await?;
        }
    }
    Ok(())
}

/// The `kube-system/kube-dns` Service in front of the server's cluster DNS (`host::dns`), as
/// kubeadm's CoreDNS addon makes it: no selector (the server answers, not pods), the
/// cluster-service label `kubectl cluster-info` lists, and the DNS ports.
pub fn kube_dns_service(ip: std::net::Ipv4Addr) -> serde_json::Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "namespace": "kube-system",
                     "labels": {"k8s-app": "kube-dns",
                                "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "CoreDNS"}},
        "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}})
}

/// What follows a create: a new namespace gets its `default` ServiceAccount (k8s: the
/// service account controller does this shortly after; here it is done before the answer).
async fn created(
    state: &State,
    res: &crate::api::registry::ResourceInfo,
    obj: &serde_json::Value,
) -> Result<(), ApiError> {
    if !(res.group.is_empty() && res.plural == "namespaces") {
        return Ok(());
    }
    let ns = obj["metadata"]["name"].as_str().unwrap_or("");
    default_service_account(state, ns).await
}

async fn default_service_account(state: &State, ns: &str) -> Result<(), ApiError> {
    let sa = crate::api::registry::by_plural("", "serviceaccounts").expect("registered");
    let body = serde_json::json!({"apiVersion": "v1", "kind": "ServiceAccount",
                                  "metadata": {"name": "default", "namespace": ns}});
    match state.api.create(sa, Some(ns), body, &state.ctx()).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

/// Starts the control plane's cores inside the server: the scheduler and the Deployment,
/// ReplicaSet, replication (ReplicationControllers), node lifecycle, taint eviction, namespace,
/// pod garbage collection, garbage collector, Endpoints and EndpointSlice controllers and the
/// Event expiry, each driven against this
/// server's API as the simulator drives them.
/// They run on a thread of their own (an actix arbiter), so that a busy controller never
/// holds up the watch caches' delivery to HTTP clients. Returns the arbiter (stopping it stops
/// them).
pub fn start_controllers(state: &Arc<State>, node_monitor_grace: Duration) -> actix::Arbiter {
    let arbiter = actix::Arbiter::new();
    let state = state.clone();
    // The cores are built on the arbiter's thread: they need not be Send.
    arbiter.spawn_fn(move || {
        for core in crate::controllers::control_plane(node_monitor_grace) {
            inprocess::spawn(state.clone(), core);
        }
        if let Some(tokens) = state.api.tokens() {
            for core in crate::controllers::service_account_cores(tokens) {
                inprocess::spawn(state.clone(), core);
            }
        }
    });
    arbiter
}

/// Starts the watch caches (after the boot objects, which they then hold).
pub async fn start_watch_caches(state: &State) -> Result<(), ApiError> {
    state.hub.start(&state.api).await
}

/// The host's clock in the cores' frame (the cores themselves never read one).
fn wall_clock() -> Time {
    crate::host::wall_clock()
}

/// Seconds since the epoch, for the ages in Tables.
fn now_seconds() -> i64 {
    i64::try_from(wall_clock().as_nanos() / 1_000_000_000).unwrap_or(i64::MAX)
}

/// 32 bytes from the OS for the UID generator (the time and the process id if it has none).
fn os_seed() -> [u8; 32] {
    use std::io::Read;
    let mut seed = [0u8; 32];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
    if from_os.is_err() {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        seed[..16].copy_from_slice(&t.to_le_bytes());
        seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    seed
}

/// Every route of the API, each behind the authorization filter.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(actix_web::middleware::from_fn(authz::authorize))
            .configure(unauthorized_routes),
    );
}

fn unauthorized_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/version", web::get().to(get_version))
        .route("/version/", web::get().to(get_version))
        .route("/healthz", web::get().to(ok))
        .route("/livez", web::get().to(ok))
        .route("/readyz", web::get().to(ok))
        .route("/api", web::get().to(api_root))
        .route("/api/", web::get().to(api_root))
        .route("/apis", web::get().to(apis_root))
        .route("/apis/", web::get().to(apis_root))
        .route(
            crate::auth::serviceaccount::oidc::CONFIGURATION_PATH,
            web::get().to(oidc_configuration),
        )
        .route(
            crate::auth::serviceaccount::oidc::JWKS_PATH,
            web::get().to(oidc_jwks),
        )
        .route("/openapi/v3", web::get().to(openapi_index))
        .route("/openapi/v3/{path:.*}", web::get().to(openapi_document))
        .route("/api/{version}", web::get().to(group_version))
        .route("/api/{version}/", web::get().to(group_version))
        .route("/apis/{group}/{version}", web::get().to(group_version))
        .route("/apis/{group}/{version}/", web::get().to(group_version))
        .route("/api/{version}/{tail:.*}", web::route().to(rest::core))
        .route(
            "/apis/{group}/{version}/{tail:.*}",
            web::route().to(rest::grouped),
        )
        .default_service(web::route().to(no_route));
}

async fn get_version() -> HttpResponse {
    respond::json(200, &version::version_info())
}

/// `/.well-known/openid-configuration` (k8s: served when the issuer has keys; 404 otherwise).
async fn oidc_configuration(state: web::Data<State>) -> HttpResponse {
    match state.api.tokens() {
        Some(cfg) => respond::json(200, &crate::auth::serviceaccount::oidc::configuration(cfg)),
        None => respond::error(&ApiError::no_such_path()),
    }
}

/// `/openid/v1/jwks`: the public keys, as `application/jwk-set+json`.
async fn oidc_jwks(state: web::Data<State>) -> HttpResponse {
    match state.api.tokens() {
        Some(cfg) => HttpResponse::Ok()
            .content_type("application/jwk-set+json")
            .body(crate::auth::serviceaccount::oidc::jwks(cfg).to_string()),
        None => respond::error(&ApiError::no_such_path()),
    }
}

async fn ok() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

fn accept(req: &HttpRequest) -> &str {
    req.headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Whether one media range of an Accept header has all of `parameters` (`as=Table`, ...).
fn accepts(accept: &str, parameters: &[&str]) -> bool {
    accept.split(',').any(|range| {
        let range = range.replace(' ', "");
        parameters.iter().all(|p| range.contains(p))
    })
}

fn aggregated() -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::Ok();
    r.content_type(discovery::AGGREGATED_CONTENT_TYPE);
    r
}

async fn api_root(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if discovery::wants_aggregated(accept(&req)) {
        return aggregated().body(discovery::aggregated(true).to_string());
    }
    respond::json(200, &discovery::api_versions(&state.config.address))
}

async fn apis_root(req: HttpRequest) -> HttpResponse {
    if discovery::wants_aggregated(accept(&req)) {
        return aggregated().body(discovery::aggregated(false).to_string());
    }
    respond::json(200, &discovery::api_group_list())
}

async fn group_version(req: HttpRequest) -> HttpResponse {
    let group = req.match_info().get("group").unwrap_or("");
    let version = req.match_info().get("version").unwrap_or("");
    match discovery::api_resource_list(group, version) {
        Some(list) => respond::json(200, &list),
        None => respond::error(&ApiError::no_such_path()),
    }
}

async fn openapi_index() -> HttpResponse {
    respond::json(200, &openapi::index())
}

async fn openapi_document(req: HttpRequest) -> HttpResponse {
    match openapi::document(req.match_info().query("path")) {
        Some(doc) => respond::json(200, &doc),
        None => respond::error(&ApiError::no_such_path()),
    }
}

async fn no_route() -> HttpResponse {
    respond::error(&ApiError::no_such_path())
}
