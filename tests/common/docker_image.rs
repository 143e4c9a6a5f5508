//! A local test image for the Docker runtime's tests: there is no registry to pull from, so
//! `gantry-test/busybox:1` is made with `docker import` from a root filesystem holding Debian's
//! static busybox (`/bin/busybox` from the `busybox-static` package, which scripts/setup
//! installs) and a symlink per applet (sh, sleep, echo, cat, nc, wget, ...).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub const BUSYBOX_IMAGE: &str = "gantry-test/busybox:1";
const BUSYBOX: &str = "/bin/busybox";

/// Runs `docker` with `args`: (success, stdout, stderr). Panics loudly when the client is
/// missing or the daemon cannot be reached.
pub fn docker(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}", needs_docker(&format!("cannot run `docker`: {e}"))));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The panic message of a test that cannot reach a Docker daemon.
pub fn needs_docker(why: &str) -> String {
    format!(
        "\n\n*** this test needs a running Docker daemon (the `docker` client must reach it): \
         {why} ***\n"
    )
}

/// Builds `gantry-test/busybox:1` unless the daemon has it (once per test process, under a
/// file lock across test processes). Returns its name.
pub fn busybox_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (ok, _, err) = docker(&["version", "--format", "{{.Server.Version}}"]);
        assert!(ok, "{}", needs_docker(err.trim()));
        if docker(&["image", "inspect", BUSYBOX_IMAGE]).0 {
            return;
        }
        // Test processes run in parallel: one builds, the others wait and find the image.
        let lock = std::fs::File::create(std::env::temp_dir().join("gantry-test-busybox.lock"))
            .expect("create the image build lock");
        lock.lock().expect("take the image build lock");
        if !docker(&["image", "inspect", BUSYBOX_IMAGE]).0 {
            build();
        }
    });
    BUSYBOX_IMAGE
}

fn build() {
    let binary = std::fs::read(BUSYBOX).unwrap_or_else(|e| {
        panic!(
            "\n\n*** the Docker runtime tests need a static busybox at {BUSYBOX}: {e}\n*** install \
             Debian's busybox-static (scripts/setup does) ***\n"
        )
    });
    assert!(
        is_static_elf(&binary),
        "\n\n*** {BUSYBOX} is not a static executable (Debian's `busybox` package instead of \
         `busybox-static`?); the test image has no libc for it ***\n"
    );
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("rootfs");
    for d in ["bin", "tmp", "etc", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("bin/busybox"), &binary).unwrap();
    set_mode(&root.join("bin/busybox"), 0o755);
    set_mode(&root.join("tmp"), 0o1777);
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();

    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets = String::from_utf8_lossy(&list.stdout).into_owned();
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = root.join("bin").join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", &link).unwrap();
        }
    }

    let tar = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "--owner=0", "--group=0", "-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of the busybox rootfs failed");
    let (ok, _, err) = docker(&[
        "import",
        "--change",
        r#"CMD ["sh"]"#,
        "--change",
        "ENV PATH=/bin",
        tar.to_str().unwrap(),
        BUSYBOX_IMAGE,
    ]);
    assert!(ok, "docker import of {BUSYBOX_IMAGE} failed: {err}");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A 64-bit little-endian ELF without a PT_INTERP program header (no dynamic loader).
fn is_static_elf(binary: &[u8]) -> bool {
    let u16_at = |o: usize| {
        binary
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |o: usize| {
        binary
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if binary.get(..6) != Some(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(32), u16_at(54), u16_at(56)) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = phoff as usize + i * usize::from(phentsize);
        binary.get(at..at + 4) != Some(&3u32.to_le_bytes()[..])
    })
}

/// Removes a Docker node's containers (by gantry's node label) when dropped, however the test
/// ends.
pub struct DockerNode(pub String);

impl Drop for DockerNode {
    fn drop(&mut self) {
        let filter = format!("label=io.gantry.node={}", self.0);
        let (_, ids, _) = docker(&["ps", "-aq", "--filter", &filter]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            docker(&[&["rm", "-f"][..], &ids].concat());
        }
    }
}
