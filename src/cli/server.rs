//! `gantry server`: the HTTP apiserver over the embedded store (or etcd), writing a kubeconfig
//! for clients into its data directory.

use std::path::PathBuf;
use std::rc::Rc;

use actix_web::{web, App, HttpServer};
use clap::Args;
use gantry::apiserver::http::authn::token_file::TokenFile;
use gantry::apiserver::http::authn::{self, Authenticator, TokenAuthenticator};
use gantry::apiserver::http::{self, kubeconfig, Config, State};
use gantry::apiserver::ApiServer;
use gantry::host::pki;
use gantry::host::ApiClient;
use gantry::store::backend::{Backend, BackendConfig};
use gantry::store::Store;

use super::node_args::NodeArgs;

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Data directory: the embedded store and the kubeconfig written for clients
    /// [default: $XDG_DATA_HOME/gantry, or ~/.local/share/gantry].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Address to serve on (`127.0.0.1:0` picks a free port; the kubeconfig names it).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: String,
    /// Keep the data in etcd at this endpoint (e.g. http://127.0.0.1:2379) instead of the data
    /// directory.
    #[arg(long)]
    etcd: Option<String>,
    /// Largest request body accepted, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 3 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Changes each resource's watch cache keeps for watches that resume; a watch from an
    /// older resourceVersion gets 410 Expired and relists.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// Seconds between the bookmarks of watches that allow them (tests shorten it).
    #[arg(long, default_value_t = 60)]
    watch_bookmark_seconds: u64,
    /// Run no node agent for this machine (nodes join with `gantry agent`).
    #[arg(long)]
    no_node: bool,
    #[command(flatten)]
    node: NodeArgs,
    /// Seconds without a heartbeat before a node is marked Unknown (k8s:
    /// --node-monitor-grace-period 50s).
    #[arg(long, default_value_t = 50)]
    node_monitor_grace_seconds: u64,
    /// Seconds pods tolerate a NotReady node before eviction, unless they say otherwise (k8s:
    /// --default-not-ready-toleration-seconds).
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// Seconds pods tolerate an unreachable node before eviction, unless they say otherwise
    /// (k8s: --default-unreachable-toleration-seconds).
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
    /// The IPv4 CIDR Service ClusterIPs are allocated from; the `default/kubernetes` Service
    /// gets its first address (k8s: kube-apiserver --service-cluster-ip-range).
    #[arg(long, default_value = gantry::apiserver::service_alloc::DEFAULT_SERVICE_CIDR)]
    service_cluster_ip_range: String,
    /// The ports NodePort Services are allocated from, `first-last` (k8s: kube-apiserver
    /// --service-node-port-range).
    #[arg(long, default_value = gantry::apiserver::service_alloc::DEFAULT_NODE_PORT_RANGE)]
    service_node_port_range: String,
    /// Where the cluster DNS answers (UDP `ip:port`, or `none`). By default the
    /// `kube-system/kube-dns` Service's ClusterIP (the service range's tenth address) on port
    /// 53, added to `lo`; without the privilege for that, a loopback port (logged).
    #[arg(long)]
    cluster_dns: Option<String>,
    /// Another name or IP for the serving certificate's SANs (repeatable; k8s: k3s --tls-san).
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// A static token file: CSV lines `token,user,uid[,"group1,group2"]` (k8s: kube-apiserver
    /// --token-auth-file).
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Serve plain HTTP without TLS, every request as `system:unsecured` in `system:masters`
    /// (k8s: the old insecure port). Only for experiments on a trusted machine.
    #[arg(long)]
    insecure_http: bool,
    /// Days the leaf certificates issued at this start are valid (tests shorten it to see
    /// them renewed).
    #[arg(long, default_value_t = gantry::host::pki::issue::LEAF_DAYS, hide = true)]
    tls_leaf_days: i64,
    /// The `iss` of the ServiceAccount tokens the server issues, and the API audience they
    /// are for (k8s: kube-apiserver --service-account-issuer).
    #[arg(long, default_value = gantry::auth::serviceaccount::DEFAULT_ISSUER)]
    service_account_issuer: String,
    /// Longest lifetime of a requested token, in seconds (0: no cap; k8s:
    /// --service-account-max-token-expiration).
    #[arg(long, default_value_t = 0)]
    service_account_max_token_expiration: i64,
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("gantry");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/gantry"),
        None => PathBuf::from("gantry-data"),
    }
}

/// The IP part of `host:port`; an unspecified address means loopback.
fn listener_ip(address: &str) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(a) if !a.ip().is_unspecified() => a.ip().to_string(),
        _ => "127.0.0.1".into(),
    }
}

pub fn run(args: ServerArgs) -> Result<(), String> {
    actix_web::rt::System::new().block_on(serve(args))
}

async fn serve(args: ServerArgs) -> Result<(), String> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    // k8s: k3s keeps its data dir 0700: it holds the CA keys.
    gantry::host::pki::private_dir(&data_dir).map_err(|e| format!("the data directory: {e}"))?;
    let backend = match &args.etcd {
        Some(endpoint) => BackendConfig::Etcd {
            endpoint: endpoint.clone(),
        },
        None => BackendConfig::Embedded {
            data_dir: data_dir.clone(),
        },
    };
    use gantry::apiserver::service_alloc::{Ipv4Cidr, PortRange, ServiceRanges};
    let ranges = ServiceRanges {
        cluster_ips: Ipv4Cidr::parse(&args.service_cluster_ip_range)
            .map_err(|e| format!("--service-cluster-ip-range: {e}"))?,
        node_ports: PortRange::parse(&args.service_node_port_range)
            .map_err(|e| format!("--service-node-port-range: {e}"))?,
    };
    let store = Backend::open(&backend).await.map_err(|e| e.to_string())?;
    let described = store.describe();
    let listener = std::net::TcpListener::bind(&args.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?
        .to_string();
    let pki = if args.insecure_http {
        tracing::warn!(
            "--insecure-http: serving plain HTTP without authentication; every request is \
             system:unsecured in system:masters"
        );
        None
    } else {
        let names = pki::serving_names(
            listener.local_addr().ok().map(|a| a.ip()),
            pki::hostname().as_deref(),
            Some(ranges.cluster_ips.first()),
            &args.tls_san,
        );
        let opts = pki::Options {
            names,
            leaf_days: args.tls_leaf_days.max(1),
        };
        Some(pki::ensure(
            &data_dir,
            &opts,
            time::OffsetDateTime::now_utc(),
        )?)
    };
    // k8s: --service-account-signing-key-file; made at first start (as k3s does).
    let key_path = data_dir.join("tls").join("service-account.key");
    let keys = gantry::auth::serviceaccount::es256::Es256Keys::load_or_create(&key_path)?;
    let mut tokens = gantry::auth::serviceaccount::TokenConfig::with_issuer(
        &args.service_account_issuer,
        std::sync::Arc::new(keys),
    );
    tokens.max_expiration_seconds = args.service_account_max_token_expiration.max(0);
    // The CA that signs the serving certificate: pods trust it (ca.crt, kube-root-ca.crt).
    tokens.root_ca_pem = pki
        .as_ref()
        .map(|p| p.server_ca.cert_pem.clone())
        .unwrap_or_default();
    let state = State::new(
        ApiServer::new(store)
            .with_service_ranges(ranges)
            .with_tokens(tokens),
        Config {
            max_body_bytes: args.max_body_bytes,
            address: address.clone(),
            watch_history: args.watch_history,
            bookmark_interval: std::time::Duration::from_secs(args.watch_bookmark_seconds.max(1)),
            cluster_dns: args.cluster_dns.as_deref() != Some("none"),
            ..Config::default()
        },
    );
    state
        .api
        .bootstrap(|| state.ctx())
        .await
        .map_err(|e| format!("cannot create the boot namespaces: {}", e.message))?;
    http::boot_objects(&state)
        .await
        .map_err(|e| format!("cannot create the boot objects: {}", e.message))?;
    http::start_watch_caches(&state)
        .await
        .map_err(|e| format!("cannot start the watch caches: {}", e.message))?;
    gantry::api::admission::set_default_toleration_seconds(
        args.default_not_ready_toleration_seconds,
        args.default_unreachable_toleration_seconds,
    );
    let controllers = http::start_controllers(
        &state,
        std::time::Duration::from_secs(args.node_monitor_grace_seconds.max(1)),
    );
    let dns = match args.cluster_dns.as_deref() {
        Some("none") => None,
        Some(a) => {
            let addr = a
                .parse()
                .map_err(|e| format!("--cluster-dns {a:?}: not ip:port ({e})"))?;
            Some(gantry::host::dns::bind(addr, false).map_err(|e| format!("--cluster-dns: {e}"))?)
        }
        None => match ranges.cluster_ips.dns() {
            Some(ip) => Some(gantry::host::dns::bind((ip, 53).into(), true)?),
            None => None,
        },
    };
    let dns_added = dns.as_ref().and_then(|d| d.added());
    // Containers can be pointed only at a non-loopback address on port 53 (resolv.conf
    // names no port).
    let dns_for_pods = dns
        .as_ref()
        .filter(|d| d.addr.port() == 53 && !d.addr.ip().is_loopback())
        .map(|d| d.addr.ip().to_string());
    if let Some(dns) = dns {
        let proto = if dns.tcp.is_some() { "udp+tcp" } else { "udp" };
        tracing::info!("cluster DNS serving {proto} {} for cluster.local", dns.addr);
        println!("cluster DNS on {proto} {}", dns.addr);
        let api = Rc::new(http::inprocess::InProcessApi(state.clone())) as Rc<dyn ApiClient>;
        gantry::host::dns::start(dns, api, state.ctx().random)?;
    }
    let node = if args.no_node {
        None
    } else {
        // The node is reached where the server is (loopback unless it listens elsewhere).
        let ip = listener_ip(&address);
        let mut opts = args.node.options(&data_dir, ip)?;
        opts.cluster_dns = dns_for_pods;
        let state = state.clone();
        let seed = state.ctx().random;
        let agent = gantry::host::node::start(
            opts,
            move || Rc::new(http::inprocess::InProcessApi(state)) as Rc<dyn ApiClient>,
            seed,
        )
        .await?;
        Some(agent)
    };
    // k8s: kube-apiserver's token authenticators in order: the token file, then
    // ServiceAccount tokens.
    let mut tokens: Vec<Box<dyn TokenAuthenticator>> = Vec::new();
    if let Some(path) = &args.token_auth_file {
        let file = TokenFile::read(path)?;
        tracing::info!("{} tokens from {}", file.len(), path.display());
        tokens.push(Box::new(file));
    }
    tokens.push(Box::new(http::serviceaccount_authn::ServiceAccountTokens(
        state.api.clone(),
    )));
    let authn = Authenticator {
        insecure: args.insecure_http,
        tokens,
    };
    // The admin reaches a server on every address at loopback (0.0.0.0 names no host the
    // certificate could be for).
    let reach = match listener.local_addr() {
        Ok(a) if a.ip().is_unspecified() => format!("{}:{}", listener_ip(&address), a.port()),
        _ => address.clone(),
    };
    let url = match pki {
        Some(_) => format!("https://{reach}"),
        None => format!("http://{reach}"),
    };
    let kubeconfig_path = data_dir.join("kubeconfig");
    let credentials = pki.as_ref().map(|p| kubeconfig::Credentials {
        ca_pem: &p.server_ca.cert_pem,
        cert_pem: &p.admin.cert_pem,
        key_pem: &p.admin.key_pem,
    });
    pki::write_file(
        &kubeconfig_path,
        &kubeconfig::render(&url, credentials.as_ref()),
        0o600,
    )?;
    tracing::info!(
        "gantry server (Kubernetes v1.{}) serving {url} on {described}",
        http::KUBERNETES_MINOR
    );
    println!("gantry server listening on {url}");
    println!(
        "use it with: export KUBECONFIG={}; kubectl get namespaces",
        kubeconfig_path.display()
    );
    let data = web::Data::from(state);
    let authn = web::Data::new(authn);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(authn.clone())
            .wrap(actix_web::middleware::from_fn(authn::middleware))
            .configure(http::routes)
    })
    .workers(2)
    .disable_signals()
    // k8s: watches end at shutdown (clients resume elsewhere); requests get a moment to finish.
    .shutdown_timeout(3);
    let server = match &pki {
        Some(pki) => server
            .on_connect(authn::x509::on_connect)
            .listen_rustls_0_23(listener, http::tls::server_config(pki)?),
        None => server.listen(listener),
    }
    .map_err(|e| format!("cannot serve on {address}: {e}"))?
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("interrupted: stopping");
            handle.stop(true).await;
        }
    });
    let served = server.await.map_err(|e| format!("the server failed: {e}"));
    controllers.stop();
    if let Some(node) = node {
        node.stop().await;
    }
    gantry::host::dns::DnsSocket::close(dns_added);
    served
}
