//! The pod status the kubelet reports: phase and conditions from its containers.
//! k8s: pkg/kubelet/kubelet_pods.go getPhase / generateAPIPodStatus (reference §4.2, §4.5)

/// What `phase` needs to know about one container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Running,
    /// Never terminated yet (creating, or waiting to start for the first time).
    Waiting,
    /// Terminated, or waiting with a previous termination; `succeeded` if it exited 0.
    Stopped {
        succeeded: bool,
    },
}

/// k8s: getPhase for regular containers (init containers are not modelled yet).
pub fn phase(containers: &[Seen], restart_policy: &str, terminating: bool) -> &'static str {
    let running = containers.iter().filter(|c| **c == Seen::Running).count();
    let waiting = containers.iter().filter(|c| **c == Seen::Waiting).count();
    let stopped = containers
        .iter()
        .filter(|c| matches!(c, Seen::Stopped { .. }))
        .count();
    let succeeded = containers
        .iter()
        .filter(|c| **c == Seen::Stopped { succeeded: true })
        .count();
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped > 0 {
        if terminating {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        return match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running", // OnFailure: restarting
        };
    }
    "Pending"
}

#[cfg(test)]
mod tests {
    use super::*;
    use Seen::*;

    #[test]
    fn phases() {
        let ok = Stopped { succeeded: true };
        let bad = Stopped { succeeded: false };
        let cases: &[(&[Seen], &str, bool, &str)] = &[
            (&[Waiting], "Always", false, "Pending"),
            (&[Running, Waiting], "Always", false, "Pending"),
            (&[Running, ok], "Always", false, "Running"),
            (&[bad], "Always", false, "Running"),
            (&[ok], "OnFailure", false, "Succeeded"),
            (&[bad], "OnFailure", false, "Running"),
            (&[ok, ok], "Never", false, "Succeeded"),
            (&[ok, bad], "Never", false, "Failed"),
            (&[ok], "Always", true, "Succeeded"),
            (&[bad], "Always", true, "Failed"),
            (&[], "Always", false, "Pending"),
        ];
        for (containers, policy, terminating, want) in cases {
            assert_eq!(
                phase(containers, policy, *terminating),
                *want,
                "{containers:?} {policy} {terminating}"
            );
        }
    }
}
