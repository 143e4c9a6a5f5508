//! The cluster DNS server of `gantry server`: the `dns` core (Services and EndpointSlices,
//! listed and watched through the in-process API) answering UDP queries on one socket and TCP
//! queries on the same address. The
//! default address is the `kube-system/kube-dns` Service's ClusterIP on port 53, added to `lo`
//! as kube-proxy adds ClusterIPs; without the privilege (root or CAP_NET_ADMIN and
//! CAP_NET_BIND_SERVICE) it falls back to a loopback port and says so.

use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::rc::Rc;

use actix::Actor;
use rand::RngCore;

use super::component::{ComponentActor, NoRuntime};
use super::proxy::{is_local, loopback_address};
use super::ApiClient;
use crate::component::{Component, Effect, Input, WatchSpec};
use crate::dns::ClusterDns;
use crate::time::Time;

/// A bound DNS socket (and a TCP listener on the same address, when it could be had), and the
/// address this server added to `lo` for it (removed by `close`).
#[derive(Debug)]
pub struct DnsSocket {
    pub socket: UdpSocket,
    pub tcp: Option<TcpListener>,
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
    // TCP on the same address (for answers too large for UDP); without it, UDP only.
    let tcp = match TcpListener::bind(addr) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!("cluster DNS: cannot listen on tcp {addr} ({e}); UDP only");
            None
        }
    };
    Ok(DnsSocket {
        socket,
        tcp,
        addr,
        added,
    })
}

struct Hosted(Rc<RefCell<ClusterDns>>);

impl Component for Hosted {
    fn name(&self) -> &str {
        "cluster-dns"
    }

    fn user(&self) -> crate::auth::UserInfo {
        self.0.borrow().user()
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.0.borrow().watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        self.0.borrow_mut().step(now, input, rng, out);
    }
}

/// How long a TCP client may take to send its next query before the connection is closed.
const TCP_IDLE: std::time::Duration = std::time::Duration::from_secs(10);

/// Answers the queries of one TCP connection (RFC 1035 §4.2.2: each message prefixed with its
/// length) until the client closes it or goes quiet.
async fn serve_tcp(core: Rc<RefCell<ClusterDns>>, mut conn: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
        match tokio::time::timeout(TCP_IDLE, conn.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let answer = {
            let core = core.borrow();
            if !core.synced() {
                return;
            }
            core.answer_within(&msg, u16::MAX as usize)
        };
        let Some(answer) = answer else { return };
        let mut out = (answer.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&answer);
        if conn.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Starts the DNS core and its UDP (and TCP) server on the current actix arbiter.
pub fn start(sockets: DnsSocket, api: Rc<dyn ApiClient>, seed: u64) -> Result<(), String> {
    let DnsSocket { socket, tcp, .. } = sockets;
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
    if let Some(tcp) = tcp {
        tcp.set_nonblocking(true)
            .map_err(|e| format!("cluster DNS listener: {e}"))?;
        let tcp = tokio::net::TcpListener::from_std(tcp)
            .map_err(|e| format!("cluster DNS listener: {e}"))?;
        let core = core.clone();
        actix::spawn(async move {
            loop {
                match tcp.accept().await {
                    Ok((conn, _)) => {
                        actix::spawn(serve_tcp(core.clone(), conn));
                    }
                    Err(e) => {
                        tracing::debug!("cluster DNS: accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
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
