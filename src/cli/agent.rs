//! `gantry agent`: a node agent that joins a gantry server over HTTP (kube-rs) and runs the
//! pods the scheduler binds to its node.

use std::path::PathBuf;
use std::rc::Rc;

use clap::Args;
use gantry::host::remote::RemoteApi;
use gantry::host::ApiClient;

use super::node_args::NodeArgs;

#[derive(Args, Debug)]
pub struct AgentArgs {
    /// The kubeconfig to reach the server with (`gantry server` writes one into its data
    /// directory).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// The server's URL, instead of the kubeconfig's.
    #[arg(long)]
    server: Option<String>,
    /// The agent's own state: its containers' state, logs and volumes
    /// [default: $XDG_DATA_HOME/gantry-agent, or ~/.local/share/gantry-agent].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The cluster DNS server's IP handed to Docker containers whose pod uses it (k8s: kubelet
    /// --cluster-dns; `gantry server` answers on the kube-dns ClusterIP, 10.96.0.10 by
    /// default).
    #[arg(long)]
    cluster_dns: Option<std::net::IpAddr>,
    #[command(flatten)]
    node: NodeArgs,
}

fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("gantry-agent");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/gantry-agent"),
        None => PathBuf::from("gantry-agent-data"),
    }
}

/// The local address this machine uses to reach `url`'s host: the node's InternalIP.
fn address_towards(url: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_matches(|c| c == '[' || c == ']');
    let port = uri.port_u16().unwrap_or(443);
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect((host, port)).ok()?;
    Some(socket.local_addr().ok()?.ip().to_string())
}

pub fn run(args: AgentArgs) -> Result<(), String> {
    actix_web::rt::System::new().block_on(serve(args))
}

async fn serve(args: AgentArgs) -> Result<(), String> {
    let client = RemoteApi::from_kubeconfig(&args.kubeconfig, args.server.as_deref()).await?;
    let server_url = match &args.server {
        Some(s) => s.clone(),
        None => kube::config::Kubeconfig::read_from(&args.kubeconfig)
            .ok()
            .and_then(|k| {
                k.clusters
                    .first()
                    .and_then(|c| c.cluster.as_ref()?.server.clone())
            })
            .unwrap_or_default(),
    };
    // Fail early, with the reason, when the server cannot be reached.
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| format!("cannot reach the server at {server_url}: {e}"))?;
    let ip = address_towards(&server_url).unwrap_or_else(|| "127.0.0.1".into());
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut opts = args.node.options(&data_dir, ip)?;
    opts.cluster_dns = args.cluster_dns.map(|ip| ip.to_string());
    let name = opts.name.clone();
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
    let agent = gantry::host::node::start(
        opts,
        move || Rc::new(RemoteApi::new(client)) as Rc<dyn ApiClient>,
        seed,
    )
    .await?;
    println!(
        "gantry agent: node {name} joined {server_url} (Kubernetes {}), logs on port {}",
        version.git_version, agent.kubelet_port
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    tracing::info!("interrupted: stopping the node agent (its containers keep running)");
    agent.stop().await;
    Ok(())
}
