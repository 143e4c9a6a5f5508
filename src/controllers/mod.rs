//! Controllers as sans-IO state machines, and the machinery they share: the work queue and
//! the informer cache (kube-rs `runtime` / controller-runtime style: level-triggered
//! `reconcile(key)` against a cache fed by watch events).

pub mod cache;
pub mod clusterroleaggregation;
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
pub mod rootcacertpublisher;
pub mod serviceaccount_tokens;
pub mod serviceaccounts;
pub mod tainteviction;

/// The control plane's cores other than the kubelets, in the order the simulator starts them:
/// the scheduler and every controller of the controller-manager (`node_monitor_grace`: k8s
/// --node-monitor-grace-period). `gantry server` and `gantry-sim` both run this list.
pub fn control_plane(
    node_monitor_grace: std::time::Duration,
) -> Vec<Box<dyn crate::component::Component>> {
    vec![
        Box::new(crate::scheduler::Scheduler::new()),
        Box::new(replicaset::ReplicaSetController::new()),
        Box::new(deployment::DeploymentController::new()),
        Box::new(replicaset::ReplicaSetController::for_replication_controllers()),
        Box::new(nodelifecycle::NodeLifecycleController::with_monitor_grace(
            node_monitor_grace,
        )),
        Box::new(tainteviction::TaintEvictionController::new()),
        Box::new(podgc::PodGc::default()),
        Box::new(eventttl::EventTtl::new()),
        Box::new(namespace::NamespaceController::new()),
        Box::new(garbagecollector::GarbageCollector::new()),
        Box::new(endpoints::EndpointsController::new()),
        Box::new(endpointslice::EndpointSliceController::new()),
        Box::new(clusterroleaggregation::ClusterRoleAggregation::new()),
    ]
}

/// The cores that need the apiserver's ServiceAccount key and CA, run by `gantry server` only
/// (the simulator has no key; its traces stay as they were): the tokens controller, the
/// root CA publisher and the ServiceAccounts controller (which ServiceAccount admission, on
/// with the key, relies on).
pub fn service_account_cores(
    tokens: &crate::auth::serviceaccount::TokenConfig,
) -> Vec<Box<dyn crate::component::Component>> {
    vec![
        Box::new(serviceaccount_tokens::TokensController::new(
            tokens.keys.clone(),
            tokens.root_ca_pem.clone(),
        )),
        Box::new(rootcacertpublisher::RootCaPublisher::new(
            tokens.root_ca_pem.clone(),
        )),
        Box::new(serviceaccounts::ServiceAccountsController::new()),
    ]
}
