//! Controllers as sans-IO state machines, and the machinery they share: the work queue and
//! the informer cache (kube-rs `runtime` / controller-runtime style: level-triggered
//! `reconcile(key)` against a cache fed by watch events).

pub mod cache;
pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod endpointutil;
pub mod eventttl;
pub mod garbagecollector;
pub mod namespace;
pub mod nodelifecycle;
pub mod ownership;
pub mod podgc;
pub mod queue;
pub mod replicaset;
pub mod tainteviction;
