//! ImageLocality: prefer nodes that already have the pod's images, scaled by how widely each
//! image is spread (score, weight 1). Needs node `status.images`, which a kubelet may not report.
//! k8s: pkg/scheduler/framework/plugins/imagelocality/image_locality.go (§5.2)

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::{CycleState, ScorePlugin, Snapshot, MAX_NODE_SCORE};
use crate::scheduler::node_info::{normalized_image, NodeInfo};

pub struct ImageLocality;

const MB: i64 = 1024 * 1024;
/// k8s: minThreshold 23 MB, maxContainerThreshold 1000 MB
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// The pod's images with the share of nodes having each (k8s: ImageStateSummary.NumNodes /
/// total nodes), and its container count.
#[derive(Clone, Debug, Default)]
pub struct ScoreState {
    spread: BTreeMap<String, f64>,
    containers: i64,
}

fn images(pod: &Pod) -> impl Iterator<Item = &str> {
    pod.spec.iter().flat_map(|s| {
        s.init_containers
            .iter()
            .flatten()
            .chain(s.containers.iter())
            .map(|c| c.image.as_deref().unwrap_or(""))
    })
}

/// k8s: calculatePriority
fn priority(sum: i64, containers: i64) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * containers.max(1);
    let sum = sum.clamp(MIN_THRESHOLD, max);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn weight(&self) -> i64 {
        1
    }

    fn pre_score(
        &self,
        pod: &Pod,
        state: &mut CycleState,
        snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
    ) {
        if snapshot.image_nodes.is_empty() {
            return; // no node reports images: every score is 0
        }
        let total = snapshot.nodes.len().max(1) as f64;
        let mut s = ScoreState::default();
        for image in images(pod) {
            s.containers += 1;
            let name = normalized_image(image);
            let n = snapshot.image_nodes.get(&name).copied().unwrap_or(0);
            s.spread.insert(name, n as f64 / total);
        }
        state.image_score = Some(s);
    }

    fn score(&self, _pod: &Pod, state: &CycleState, node: &NodeInfo) -> i64 {
        let Some(s) = state.image_score.as_ref() else {
            return 0;
        };
        // k8s: sumImageScores — size × spread for each container's image on the node.
        let sum: i64 = s
            .spread
            .iter()
            .filter_map(|(name, spread)| {
                node.images
                    .get(name)
                    .map(|size| (*size as f64 * spread) as i64)
            })
            .sum();
        priority(sum, s.containers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::plugins::testing::{pod, score_all};
    use serde_json::json;

    #[test]
    fn image_sizes_scaled_by_spread() {
        let node = |name: &str, images: serde_json::Value| {
            NodeInfo::new(
                serde_json::from_value(json!({"metadata": {"name": name},
                    "status": {"images": images}}))
                .unwrap(),
            )
        };
        let big = json!([{"names": ["registry/big:1"], "sizeBytes": 523 * MB}]);
        let small = json!([{"names": ["small"], "sizeBytes": 10 * MB}]);
        let nodes: BTreeMap<String, NodeInfo> = [
            node("a", big.clone()),
            node("b", json!([])),
            node("c", small),
            node("d", big),
        ]
        .into_iter()
        .map(|n| (n.name().to_string(), n))
        .collect();
        let image_nodes = BTreeMap::from([
            ("registry/big:1".to_string(), 2),
            ("small:latest".to_string(), 1),
        ]);
        // (containers' images, scores a b c d) — k8s: 100 × (Σ size × spread − 23 MB) /
        // (1000 MB × containers − 23 MB); spread = nodes with it / all nodes
        let cases = [
            (vec!["registry/big:1"], [24, 0, 0, 24]), // 261.5 MB
            (vec!["small"], [0, 0, 0, 0]),            // below the 23 MB floor
            (vec!["registry/big:1", "small"], [12, 0, 0, 12]),
            (vec!["other"], [0, 0, 0, 0]),
        ];
        for (i, (imgs, want)) in cases.into_iter().enumerate() {
            let containers: Vec<_> = imgs
                .iter()
                .enumerate()
                .map(|(j, im)| json!({"name": format!("c{j}"), "image": im}))
                .collect();
            let p = pod("p", json!({}), json!({"containers": containers}));
            let got: Vec<i64> = score_all(&ImageLocality, &p, &nodes, &image_nodes)
                .into_values()
                .collect();
            assert_eq!(got, want, "case {i}");
        }
    }
}
