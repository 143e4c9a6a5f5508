//! The cluster DNS server of `gantry server`: the `dns` core (Services and EndpointSlices,
//! listed and watched through the in-process API) answering UDP queries on one socket. The
//! default address is the `kube-system/kube-dns` Service's ClusterIP on port 53, added to `lo`
//! as kube-proxy adds ClusterIPs; without the privilege (root or CAP_NET_ADMIN and
//! CAP_NET_BIND_SERVICE) it falls back to a loopback port and says so.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;

use actix::Actor;
use rand::RngCore;

use super::component::{ComponentActor, NoRuntime};
use super::proxy::{is_local, loopback_address};
use super::ApiClient;
use crate::component::{Component, Effect, Input, WatchSpec};
use crate::dns::ClusterDns;
use crate::time::Time;

/// A bound DNS socket, and the address this server added to `lo` for it (removed by `close`).
#[derive(Debug)]
pub struct DnsSocket {
    pub socket: UdpSocket,
    pub addr: SocketAddr,
    added: Option<String>,
}

impl DnsSocket {
    /// Removes the address added for the socket, if any.
    pub fn close(added: Option<String>) {
        if let Some(ip) = added {
            if let Err(e) = loopback_address("del", &ip) {
                tracing::warn!("cluster DNS: cannot remove {ip} from lo: {e}");
            }
        }
    }

    pub fn added(&self) -> Option<String> {
        self.added.clone()
    }
}

/// Binds `addr`, adding its IP to `lo` first if this machine does not have it. With
/// `fallback`, a failure binds `127.0.0.1:0` instead (with a warning); without, it is an error.
pub fn bind(addr: SocketAddr, fallback: bool) -> Result<DnsSocket, String> {
    let ip = addr.ip().to_string();
    let mut added = None;
    let tried = (|| {
        if !is_local(&ip) {
            match loopback_address("add", &ip) {
                Ok(()) => added = Some(ip.clone()),
                Err(e) if e.contains("File exists") => {}
                Err(e) => return Err(format!("cannot add {ip} to lo: {e}")),
            }
        }
        UdpSocket::bind(addr).map_err(|e| format!("cannot listen on udp {addr}: {e}"))
    })();
    let socket = match tried {
        Ok(s) => s,
        Err(e) if fallback => {
            DnsSocket::close(added.take());
            let s = UdpSocket::bind("127.0.0.1:0")
                .map_err(|e| format!("cannot listen on udp 127.0.0.1:0: {e}"))?;
            tracing::warn!(
                "cluster DNS: {e}; serving on udp {} instead, which containers cannot be \
                 pointed at (run as root, or pass --cluster-dns)",
                s.local_addr()
                    .map_or_else(|_| "?".into(), |a| a.to_string())
            );
            s
        }
        Err(e) => return Err(e),
    };
    let addr = socket
        .local_addr()
        .map_err(|e| format!("cannot read the DNS address: {e}"))?;
    Ok(DnsSocket {
        socket,
        addr,
        added,
    })
}

struct Hosted(Rc<RefCell<ClusterDns>>);

impl Component for Hosted {
    fn name(&self) -> &str {
        "cluster-dns"
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.0.borrow().watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        self.0.borrow_mut().step(now, input, rng, out);
    }
}

/// Starts the DNS core and its UDP server on the current actix arbiter.
pub fn start(socket: UdpSocket, api: Rc<dyn ApiClient>, seed: u64) -> Result<(), String> {
    socket
        .set_nonblocking(true)
        .map_err(|e| format!("cluster DNS socket: {e}"))?;
    let socket =
        tokio::net::UdpSocket::from_std(socket).map_err(|e| format!("cluster DNS socket: {e}"))?;
    let core = Rc::new(RefCell::new(ClusterDns::default()));
    ComponentActor::new(
        Box::new(Hosted(core.clone())),
        api,
        Rc::new(NoRuntime),
        seed,
    )
    .start();
    actix::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, from) = match socket.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!("cluster DNS: receive: {e}");
                    continue;
                }
            };
            // k8s: CoreDNS answers SERVFAIL until its kubernetes plugin has synced; here
            // queries before the first list are dropped (clients retry).
            let answer = {
                let core = core.borrow();
                if !core.synced() {
                    continue;
                }
                core.answer(&buf[..n])
            };
            if let Some(a) = answer {
                if let Err(e) = socket.send_to(&a, from).await {
                    tracing::debug!("cluster DNS: send to {from}: {e}");
                }
            }
        }
    });
    Ok(())
}
