//! The node agent's flags, shared by `gantry server` (its own node) and `gantry agent`.

use std::path::Path;

use clap::Args;
use gantry::host::node::{NodeOptions, RuntimeKind};
use gantry::host::proxy::ProxyMode;

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// The node's name [default: this machine's hostname].
    #[arg(long = "node-name", alias = "name")]
    pub node_name: Option<String>,
    /// How containers run: `process` (host processes from command/args; the image is recorded,
    /// not pulled) or `docker` (the Docker Engine on this machine).
    #[arg(long, value_enum, default_value = "process")]
    pub runtime: RuntimeKind,
    /// Port of the node agent's endpoint the apiserver reads container logs from (0: any free
    /// port; the node reports the one it got).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The address range pods get theirs from with the process runtime: a /16 in 127.0.0.0/8,
    /// one loopback address per pod (docs/networking.md).
    #[arg(long, default_value = "127.1.0.0/16")]
    pub pod_cidr: String,
    /// The address the node reports and serves its endpoint on [default: the address this
    /// machine reaches the apiserver from].
    #[arg(long)]
    pub node_ip: Option<String>,
    /// A label for the node, `key=value` (repeatable).
    #[arg(long = "node-label")]
    pub node_labels: Vec<String>,
    /// The node's Lease duration; it is renewed every quarter of it (k8s: kubelet
    /// nodeLeaseDurationSeconds 40). A renewal must come well within the server's
    /// --node-monitor-grace-seconds: shorten both together.
    #[arg(long, default_value_t = 40)]
    pub node_lease_duration_seconds: i64,
    /// How the node's kube-proxy carries Service connections: `nftables` (the kernel
    /// translates them; needs root or CAP_NET_ADMIN and the `nft` tool), `userspace` (the
    /// agent copies them), or `auto`: nftables where it can, else userspace.
    #[arg(long, value_enum, default_value = "auto")]
    pub proxy_mode: ProxyMode,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `127.N.0.0/16` → `[127, N]`.
fn pod_range(cidr: &str) -> Result<[u8; 2], String> {
    let bad = || {
        format!("--pod-cidr {cidr:?}: the process runtime needs a /16 in 127.0.0.0/8, like 127.1.0.0/16")
    };
    let (ip, bits) = cidr.split_once('/').ok_or_else(bad)?;
    let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let o = ip.octets();
    if bits != "16" || o[0] != 127 || o[2] != 0 || o[3] != 0 || o[1] == 0 {
        return Err(bad());
    }
    Ok([o[0], o[1]])
}

/// `gantry-shim` beside this binary (installed with it), or else this binary's `shim`
/// subcommand.
fn shim_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the gantry binary for the shim: {e}"))?;
    let small = exe.with_file_name("gantry-shim");
    Ok(if small.is_file() { small } else { exe })
}

impl NodeArgs {
    /// The agent's options, its state under `dir`, reporting `node_ip`.
    pub fn options(&self, dir: &Path, default_ip: String) -> Result<NodeOptions, String> {
        let name = self.node_name.clone().unwrap_or_else(hostname);
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.node_labels {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("--node-label {l:?}: expected key=value"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        Ok(NodeOptions {
            dir: dir.join("nodes").join(&name),
            name,
            runtime: self.runtime,
            node_ip: self.node_ip.clone().unwrap_or(default_ip),
            kubelet_port: self.kubelet_port,
            pod_range: pod_range(&self.pod_cidr)?,
            labels,
            lease_duration_seconds: self.node_lease_duration_seconds.max(1),
            shim: shim_binary()?,
            cluster_dns: None,
            proxy_mode: self.proxy_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ranges() {
        assert_eq!(pod_range("127.1.0.0/16"), Ok([127, 1]));
        assert_eq!(pod_range("127.42.0.0/16"), Ok([127, 42]));
        for bad in [
            "10.0.0.0/16",
            "127.1.0.0/24",
            "127.0.0.0/16",
            "127.1.2.0/16",
            "x",
        ] {
            assert!(pod_range(bad).is_err(), "{bad}");
        }
    }
}
