//! What a node agent reports about its machine (k8s: cadvisor's MachineInfo and the node
//! status setters): CPUs and memory from the OS, the machine, boot and kernel identity.

use crate::kubelet::NodeInfo;

/// The machine's capacity and identity.
#[derive(Clone, Debug)]
pub struct Machine {
    /// Logical CPUs, as a quantity (`2`).
    pub cpu: String,
    /// Memory as a quantity in Ki (`24576000Ki`), as the kubelet reports it.
    pub memory: String,
    pub info: NodeInfo,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `MemTotal` from /proc/meminfo, in KiB.
fn mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// PRETTY_NAME from /etc/os-release.
fn pretty_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// Go's GOARCH names, which the kubernetes.io/arch label uses.
fn goarch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl Machine {
    pub fn detect(runtime_version: String) -> Machine {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mem = read("/proc/meminfo")
            .as_deref()
            .and_then(mem_total_kib)
            .unwrap_or(0);
        let machine_id = read("/etc/machine-id")
            .or_else(|| read("/var/lib/dbus/machine-id"))
            .unwrap_or_default();
        Machine {
            cpu: cpus.to_string(),
            memory: format!("{mem}Ki"),
            info: NodeInfo {
                system_uuid: read("/sys/class/dmi/id/product_uuid")
                    .unwrap_or_else(|| machine_id.clone()),
                machine_id,
                boot_id: read("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
                kernel_version: read("/proc/sys/kernel/osrelease").unwrap_or_default(),
                os_image: read("/etc/os-release")
                    .as_deref()
                    .and_then(pretty_name)
                    .unwrap_or_else(|| "Linux".into()),
                container_runtime_version: runtime_version,
                architecture: goarch(std::env::consts::ARCH).into(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_os_files() {
        assert_eq!(
            mem_total_kib("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000)
        );
        assert_eq!(mem_total_kib("nothing"), None);
        assert_eq!(
            pretty_name("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            Some("Debian GNU/Linux 12 (bookworm)".into())
        );
        assert_eq!(goarch("x86_64"), "amd64");
        assert_eq!(goarch("aarch64"), "arm64");
    }

    #[test]
    fn detects_this_machine() {
        let m = Machine::detect("process://test".into());
        assert!(m.cpu.parse::<u32>().unwrap() >= 1);
        assert!(
            m.memory.ends_with("Ki") && m.memory != "0Ki",
            "{}",
            m.memory
        );
        assert!(!m.info.kernel_version.is_empty());
        assert!(!m.info.boot_id.is_empty());
    }
}
