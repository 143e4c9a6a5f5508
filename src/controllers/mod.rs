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
