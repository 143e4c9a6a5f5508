//! kube-proxy (issue 7): the sans-IO core that turns Services and EndpointSlices into a rule
//! table and picks a backend for each new connection. The real TCP proxy that carries
//! connections out lives in `host/proxy.rs`.
//!
//! * `rules.rs`: one Service port's frontends and backends, derived from the objects (ready
//!   endpoints, else serving+terminating ones).
//! * `affinity.rs`: `sessionAffinity: ClientIP`, the client → backend table with expiry.
//! * `core.rs`: the component: caches of Services, EndpointSlices and its Node, the rule
//!   table it publishes, and `pick`.
//! * `nftables.rs`: the rule table as an nftables transaction (kube-proxy's nftables mode):
//!   the kernel translates connections, no user-space copy.

pub mod affinity;
pub mod core;
pub mod nftables;
pub mod rules;

pub use self::core::{Proxy, ProxyConfig};
pub use rules::{Backend, Frontend, Rule, ServicePortKey};
