//! Service traffic in the simulator: a stream of requests from a node to a Service, each a
//! new connection whose backend the node's kube-proxy core picks (the same `Proxy` the node
//! agents run). A request succeeds when the backend pod's node is alive and reachable; it
//! fails when there is no backend (refused), or when the backend is on a node that is dead or
//! cut off — which is what Kubernetes shows while a lost node's endpoints are still listed as
//! ready (until the node is Unknown and its pods leave the ready set).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gantry::component::{Component, Effect, Input, WatchSpec};
use gantry::proxy::{Proxy, ProxyConfig, ServicePortKey};
use gantry::time::Time;
use rand::RngCore;

/// A node's kube-proxy core, shared between its slot (which feeds it) and the traffic
/// generator (which asks it for backends).
pub struct SharedProxy {
    name: String,
    pub proxy: Rc<RefCell<Proxy>>,
}

impl SharedProxy {
    pub fn new(node: &str) -> (SharedProxy, Rc<RefCell<Proxy>>) {
        let proxy = Rc::new(RefCell::new(Proxy::new(ProxyConfig {
            node_name: Some(node.to_string()),
            node_ip: None,
        })));
        let shared = SharedProxy {
            name: format!("kube-proxy/{node}"),
            proxy: proxy.clone(),
        };
        (shared, proxy)
    }
}

impl Component for SharedProxy {
    fn name(&self) -> &str {
        &self.name
    }

    fn user(&self) -> gantry::auth::UserInfo {
        self.proxy.borrow().user()
    }

    fn watches(&self) -> Vec<WatchSpec> {
        self.proxy.borrow().watches()
    }

    fn step(&mut self, now: Time, input: Input, rng: &mut dyn RngCore, out: &mut Vec<Effect>) {
        self.proxy.borrow_mut().step(now, input, rng, out)
    }
}

/// One `traffic` step: requests every `every` until `until`.
#[derive(Clone, Debug)]
pub struct Stream {
    pub key: ServicePortKey,
    pub from: String,
    pub every: Duration,
    pub until: Time,
}

/// How one request went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub at: Time,
    /// `namespace/name` of the Service.
    pub service: String,
    /// The pod that served it (`None`: refused or failed before a pod).
    pub pod: Option<String>,
    pub ok: bool,
}

/// What the checks read: every request so far, in time order.
#[derive(Default)]
pub struct Log {
    pub requests: Vec<Request>,
}

impl Log {
    /// (failed, succeeded, distinct serving pods) for `service` from `after` on.
    pub fn since(&self, service: &str, after: Time) -> (usize, usize, usize) {
        let mut pods = std::collections::BTreeSet::new();
        let (mut failed, mut ok) = (0, 0);
        let start = self.requests.partition_point(|r| r.at < after);
        for r in self.requests[start..]
            .iter()
            .filter(|r| r.service == service)
        {
            if r.ok {
                ok += 1;
                if let Some(p) = &r.pod {
                    pods.insert(p.clone());
                }
            } else {
                failed += 1;
            }
        }
        (failed, ok, pods.len())
    }
}
