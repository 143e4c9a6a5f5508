//! The process runtime against real processes: its shim (the gantry binary), logs, exit codes,
//! graceful stops, exec, volume mounts and adoption by a second runtime over the same state.
#![cfg(feature = "server")]

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use gantry::component::RuntimeResult;
use gantry::kubelet::runtime::process::{Cgroups, ProcessRuntime};
use gantry::kubelet::runtime::{
    ContainerConfig, ContainerRuntime, ExecOutcome, LogOptions, Mount, PodRef,
};
use k8s_openapi::api::core::v1::Container;

fn runtime(root: &Path) -> ProcessRuntime {
    runtime_with(root, env!("CARGO_BIN_EXE_gantry-shim"))
}

fn runtime_with(root: &Path, shim: &str) -> ProcessRuntime {
    ProcessRuntime::open(root, shim.into(), [127, 77], Cgroups::None("test".into())).expect("opens")
}

fn pod(uid: &str) -> PodRef {
    PodRef {
        namespace: "default".into(),
        name: format!("pod-{uid}"),
        uid: uid.into(),
        labels: Default::default(),
        cluster_dns: true,
    }
}

fn config(uid: &str, name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        pod: pod(uid),
        spec: Container {
            name: name.into(),
            image: Some("busybox".into()),
            command: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        },
        env: vec![("GREETING".into(), "hello".into())],
        mounts: vec![],
    }
}

fn started(r: RuntimeResult) -> (String, String) {
    match r {
        RuntimeResult::Started {
            container_id,
            pod_ip,
        } => (container_id, pod_ip.expect("a pod IP")),
        other => panic!("not started: {other:?}"),
    }
}

async fn logs(rt: &ProcessRuntime, uid: &str, name: &str, opts: LogOptions) -> String {
    let s = rt.logs(uid.into(), name.into(), opts).await.expect("logs");
    String::from_utf8(s.collect::<Vec<_>>().await.concat()).expect("utf8")
}

#[tokio::test]
async fn runs_logs_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut exits = rt.exits().expect("exits");
    let (id, ip) = started(
        rt.start(config(
            "u1",
            "c",
            "echo $GREETING; sleep 0.1; echo oops >&2; exit 3",
        ))
        .await,
    );
    assert!(id.starts_with("process://"), "{id}");
    assert!(ip.starts_with("127.77."), "{ip}");
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.next())
        .await
        .expect("exits in time")
        .expect("an exit");
    assert_eq!(
        (exit.container_id.as_str(), exit.exit_code),
        (id.as_str(), 3)
    );
    assert_eq!(
        logs(&rt, "u1", "c", LogOptions::default()).await,
        "hello\noops\n"
    );
    let ts = logs(
        &rt,
        "u1",
        "c",
        LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        },
    )
    .await;
    assert!(ts.ends_with("Z oops\n") && ts.len() > 30, "{ts:?}");

    // A second run: the first is `previous`; the pod keeps its IP.
    let (id2, ip2) = started(rt.start(config("u1", "c", "echo second; exit 0")).await);
    assert_ne!(id, id2);
    assert_eq!(ip, ip2);
    exits.next().await.expect("second exit");
    assert_eq!(
        logs(&rt, "u1", "c", LogOptions::default()).await,
        "second\n"
    );
    let previous = LogOptions {
        previous: true,
        ..Default::default()
    };
    assert_eq!(logs(&rt, "u1", "c", previous).await, "hello\noops\n");
    rt.remove_pod("u1".into()).await;
    assert!(rt.pods().await.is_empty());
    assert!(rt
        .logs("u1".into(), "c".into(), LogOptions::default())
        .await
        .is_err());
}

#[tokio::test]
async fn the_gantry_binary_is_a_shim_too() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime_with(dir.path(), env!("CARGO_BIN_EXE_gantry"));
    let mut exits = rt.exits().expect("exits");
    started(
        rt.start(config("u5", "c", "echo via gantry shim; exit 4"))
            .await,
    );
    let exit = tokio::time::timeout(Duration::from_secs(10), exits.next())
        .await
        .expect("in time")
        .expect("an exit");
    assert_eq!(exit.exit_code, 4);
    assert_eq!(
        logs(&rt, "u5", "c", LogOptions::default()).await,
        "via gantry shim\n"
    );
    rt.remove_pod("u5".into()).await;
}

#[tokio::test]
async fn start_failures_have_kubernetes_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let mut no_command = config("u2", "c", "");
    no_command.spec.command = None;
    let mut missing = config("u2", "d", "");
    missing.spec.command = Some(vec!["/no/such/program".into()]);
    for (cfg, want_reason, want) in [
        (no_command, "CreateContainerError", "has no command"),
        (missing, "RunContainerError", "executable file not found"),
    ] {
        match rt.start(cfg).await {
            RuntimeResult::StartFailed { reason, message } => {
                assert_eq!(reason, want_reason);
                assert!(message.contains(want), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
    rt.remove_pod("u2".into()).await;
}

#[tokio::test]
async fn stop_is_graceful_then_forced() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let (polite, _) = started(rt.start(config("u3", "polite", "sleep 100")).await);
    // Ignores SIGTERM: killed after the grace period.
    let (stubborn, _) = started(
        rt.start(config(
            "u3",
            "stubborn",
            "trap '' TERM; while true; do sleep 0.1; done",
        ))
        .await,
    );
    let t = std::time::Instant::now();
    assert_eq!(rt.stop(polite, Duration::from_secs(10)).await, 143);
    assert!(t.elapsed() < Duration::from_secs(5));
    let t = std::time::Instant::now();
    assert_eq!(rt.stop(stubborn, Duration::from_secs(1)).await, 137);
    assert!(t.elapsed() >= Duration::from_secs(1));
    rt.remove_pod("u3".into()).await;
}

#[tokio::test]
async fn exec_mounts_and_adoption() {
    let dir = tempfile::tempdir().unwrap();
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("key"), "value").unwrap();
    let mount_at = format!("/tmp/gantry-test-mount-{}", std::process::id());
    let mut cfg = config("u4", "c", "cat $MOUNT/key; echo; sleep 100");
    cfg.env.push(("MOUNT".into(), mount_at.clone()));
    cfg.mounts.push(Mount {
        volume: "v".into(),
        host_path: vol.path().into(),
        container_path: mount_at.clone(),
        read_only: true,
    });
    let pid_of = {
        let rt = runtime(dir.path());
        let (id, _) = started(rt.start(cfg.clone()).await);
        for (cmd, want) in [
            (format!("test -f {mount_at}/key"), 0),
            (format!("touch {mount_at}/new"), 1),
            ("exit 7".to_string(), 7),
        ] {
            match rt
                .exec(
                    id.clone(),
                    vec!["sh".into(), "-c".into(), cmd.clone()],
                    Duration::from_secs(5),
                )
                .await
            {
                ExecOutcome::Exited { code, .. } => assert_eq!(code, want, "{cmd}"),
                other => panic!("{cmd}: {other:?}"),
            }
        }
        assert!(matches!(
            rt.exec(
                id.clone(),
                vec!["sleep".into(), "5".into()],
                Duration::from_millis(200)
            )
            .await,
            ExecOutcome::TimedOut
        ));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(logs(&rt, "u4", "c", LogOptions::default()).await, "value\n");
        id
        // The runtime is dropped here, as an agent that stops; the container keeps running.
    };
    let rt = runtime(dir.path());
    let mut exits = rt.exits().expect("exits");
    assert_eq!(rt.pods().await, vec!["u4".to_string()]);
    let (again, _) = started(rt.start(cfg).await);
    assert_eq!(again, pid_of, "adopted, not started twice");
    assert_eq!(rt.stop(again.clone(), Duration::from_secs(5)).await, 143);
    let exit = tokio::time::timeout(Duration::from_secs(5), exits.next())
        .await
        .expect("in time")
        .expect("exit");
    assert_eq!(exit.container_id, again);
    rt.remove_pod("u4".into()).await;
    let _ = std::fs::remove_dir(&mount_at);
}

#[tokio::test]
async fn limits_go_to_cgroups() {
    let node = format!("test-{}", std::process::id());
    let cgroups = Cgroups::detect(&node);
    if let Cgroups::None(why) = &cgroups {
        panic!(
            "\n\n*** this test needs a writable cgroup hierarchy (root, /sys/fs/cgroup), which \
             this project's machines have: {why} ***\n"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let rt = ProcessRuntime::open(
        dir.path(),
        env!("CARGO_BIN_EXE_gantry-shim").into(),
        [127, 78],
        cgroups.clone(),
    )
    .unwrap();
    let mut cfg = config("u6", "c", "sleep 100");
    cfg.spec.resources = Some(
        serde_json::from_value(serde_json::json!({
            "limits": {"memory": "64Mi", "cpu": "250m"}
        }))
        .unwrap(),
    );
    let (id, _) = started(rt.start(cfg).await);
    let id = id.trim_start_matches("process://");
    let pid = std::fs::read_to_string(dir.path().join("containers").join(id).join("pid"))
        .unwrap()
        .trim()
        .to_string();
    let read = |p: std::path::PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let (memory_file, cpu_file, procs) = match &cgroups {
        Cgroups::V1 { memory, cpu } => (
            memory.join(id).join("memory.limit_in_bytes"),
            cpu.join(id).join("cpu.cfs_quota_us"),
            memory.join(id).join("cgroup.procs"),
        ),
        Cgroups::V2(base) => (
            base.join(id).join("memory.max"),
            base.join(id).join("cpu.max"),
            base.join(id).join("cgroup.procs"),
        ),
        Cgroups::None(_) => unreachable!("checked above"),
    };
    assert_eq!(read(memory_file).trim(), (64 * 1024 * 1024).to_string());
    // k8s: 250m over a 100 ms period is a 25 ms quota.
    assert!(read(cpu_file).starts_with("25000"), "cpu quota");
    assert!(
        read(procs).lines().any(|l| l.trim() == pid),
        "the container's process is in its cgroup"
    );
    rt.remove_pod("u6".into()).await;
    for base in [
        "/sys/fs/cgroup/memory/gantry",
        "/sys/fs/cgroup/cpu/gantry",
        "/sys/fs/cgroup/gantry",
    ] {
        let _ = std::fs::remove_dir(std::path::Path::new(base).join(&node));
    }
}
