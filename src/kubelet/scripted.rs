//! The simulated container runtime: containers behave as a script says, keyed by image.
//! Deterministic and clock-free: the host asks it what happens and when.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::component::{RuntimeOp, RuntimeResult};
use crate::time::Time;

/// How containers of one image behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    /// The container exits on its own this long after it starts (never if `None`).
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    /// Starting fails with this waiting reason and message (e.g. `ErrImagePull`).
    pub start_error: Option<(String, String)>,
    /// Readiness probes fail until the container has run this long.
    pub ready_after: Duration,
    /// Liveness probes fail once the container has run this long.
    pub liveness_fails_after: Option<Duration>,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            exit_after: None,
            exit_code: 0,
            start_error: None,
            ready_after: Duration::ZERO,
            liveness_fails_after: None,
        }
    }
}

#[derive(Debug)]
struct Container {
    image: String,
    started_at: Time,
}

/// What a runtime operation leads to: the answer now, and maybe a later exit.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: RuntimeResult,
    /// The container will exit at this time with this code (`ContainerExited`).
    pub exit: Option<(String, Time, i32)>,
}

#[derive(Debug, Default)]
pub struct ScriptedRuntime {
    pub behaviors: BTreeMap<String, Behavior>,
    containers: BTreeMap<String, Container>,
    next: u64,
}

impl ScriptedRuntime {
    fn behavior(&self, image: &str) -> Behavior {
        self.behaviors.get(image).cloned().unwrap_or_default()
    }

    pub fn run(&mut self, op: &RuntimeOp, now: Time) -> Outcome {
        match op {
            RuntimeOp::Start { container, .. } => {
                let image = container.image.clone().unwrap_or_default();
                let b = self.behavior(&image);
                if let Some((reason, message)) = b.start_error {
                    return Outcome {
                        result: RuntimeResult::StartFailed { reason, message },
                        exit: None,
                    };
                }
                self.next += 1;
                let id = format!("sim://{:012x}", self.next);
                self.containers.insert(
                    id.clone(),
                    Container {
                        image,
                        started_at: now,
                    },
                );
                Outcome {
                    result: RuntimeResult::Started {
                        container_id: id.clone(),
                    },
                    exit: b.exit_after.map(|d| (id, now + d, b.exit_code)),
                }
            }
            RuntimeOp::Stop { container_id, .. } => {
                // SIGTERM is honoured at once: exit code 143 (128 + 15).
                let existed = self.containers.remove(container_id).is_some();
                Outcome {
                    result: RuntimeResult::Stopped {
                        exit_code: if existed { 143 } else { 0 },
                    },
                    exit: None,
                }
            }
            RuntimeOp::Probe {
                container_id, kind, ..
            } => {
                let Some(c) = self.containers.get(container_id) else {
                    return Outcome {
                        result: RuntimeResult::ProbeFailed {
                            message: "container not running".into(),
                        },
                        exit: None,
                    };
                };
                let b = self.behavior(&c.image);
                let ran = now.since(c.started_at);
                let ok = match *kind {
                    "readiness" => ran >= b.ready_after,
                    _ => b.liveness_fails_after.is_none_or(|d| ran < d),
                };
                Outcome {
                    result: if ok {
                        RuntimeResult::ProbeSucceeded
                    } else {
                        RuntimeResult::ProbeFailed {
                            message: format!("{kind} probe failed"),
                        }
                    },
                    exit: None,
                }
            }
        }
    }

    /// A container exited on its own: forget it (returns false if it was already gone).
    pub fn exited(&mut self, container_id: &str) -> bool {
        self.containers.remove(container_id).is_some()
    }

    /// Everything vanishes (the node crashed).
    pub fn crash(&mut self) {
        self.containers.clear();
    }

    pub fn running(&self) -> usize {
        self.containers.len()
    }
}
