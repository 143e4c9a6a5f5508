//! The `process` runtime: each container is a host process from its command and args, run by a
//! `gantry shim` (shim.rs) in a session of its own, as Nomad's raw_exec runs tasks. The image is
//! recorded, not pulled. Each pod gets a loopback address of its own as its IP (127.N.x.y from
//! the node's pod range, docs/networking.md); its containers are told it through the downward
//! API (status.podIP) and probes reach them there.
//!
//! State on disk, under the node's directory, so a restarted agent finds its pods again:
//! * `pods/<uid>/sandbox`: the pod's namespace, name and IP;
//! * `containers/<id>/state`: which pod and container it is, and its env and working dir
//!   (for exec probes); the shim's files (`pid`, `exit`, `error`) and `log` beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::shim::{EXIT_FILE, FAILED, PID_FILE, STARTED};
use super::{
    cri_log, ContainerConfig, ContainerRuntime, ExecEvent, ExecOutcome, ExecRequest, ExecSession,
    Exit, LogOptions, Logs, PodRef, StartError, TerminalSize,
};
use crate::component::RuntimeResult;

/// The PATH a container gets when its env has none (k8s images set one; a host process
/// inherits nothing from the agent).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Exited containers kept per (pod, container name): the last one, for `logs --previous`.
const KEEP_EXITED: usize = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
struct SandboxFile {
    namespace: String,
    name: String,
    uid: String,
    ip: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct StateFile {
    pod_uid: String,
    container: String,
    /// Starts of containers of this node, in order: which of two is the newer.
    seq: u64,
    env: Vec<(String, String)>,
    workdir: String,
}

#[derive(Debug)]
struct Record {
    state: StateFile,
    dir: PathBuf,
    /// The command's pid and process group, once it started.
    pid: Option<i32>,
    running: bool,
}

#[derive(Default)]
struct Inner {
    sandboxes: BTreeMap<String, SandboxFile>,
    containers: BTreeMap<String, Record>,
    next_seq: u64,
}

/// Where cgroups for container limits are made, if the machine allows it.
#[derive(Clone, Debug)]
pub enum Cgroups {
    /// cgroup v2 at this directory (memory.max, cpu.max).
    V2(PathBuf),
    /// cgroup v1: the memory and cpu hierarchies' directories for this node.
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
    },
    None(String),
}

impl Cgroups {
    /// Finds a writable cgroup hierarchy and makes `gantry/<node>` in it.
    pub fn detect(node: &str) -> Cgroups {
        let base = Path::new("/sys/fs/cgroup");
        let sub = Path::new("gantry").join(node);
        if base.join("cgroup.controllers").exists() {
            let dir = base.join(&sub);
            return match std::fs::create_dir_all(&dir) {
                Ok(()) => {
                    // Children get the memory and cpu controllers.
                    let _ =
                        std::fs::write(base.join("gantry/cgroup.subtree_control"), "+memory +cpu");
                    let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+memory +cpu");
                    Cgroups::V2(dir)
                }
                Err(e) => Cgroups::None(format!("cannot create {}: {e}", dir.display())),
            };
        }
        let (memory, cpu) = (base.join("memory").join(&sub), base.join("cpu").join(&sub));
        match std::fs::create_dir_all(&memory).and_then(|_| std::fs::create_dir_all(&cpu)) {
            Ok(()) => Cgroups::V1 { memory, cpu },
            Err(e) => Cgroups::None(format!(
                "no writable cgroup hierarchy under /sys/fs/cgroup ({e})"
            )),
        }
    }

    /// Makes the container's cgroups with its limits; the directories the shim joins.
    fn create(&self, id: &str, memory: Option<i64>, cpu_millis: Option<i64>) -> Vec<PathBuf> {
        let write = |p: PathBuf, v: String| {
            if let Err(e) = std::fs::write(&p, &v) {
                tracing::warn!("cannot set {} to {v}: {e}", p.display());
            }
        };
        // k8s: CFS period 100 ms, quota = limit in millicores × 100.
        let quota = cpu_millis.map(|m| (m * 100).max(1000));
        match self {
            Cgroups::None(_) => Vec::new(),
            Cgroups::V2(base) => {
                let dir = base.join(id);
                if std::fs::create_dir_all(&dir).is_err() {
                    return Vec::new();
                }
                if let Some(m) = memory {
                    write(dir.join("memory.max"), m.to_string());
                }
                if let Some(q) = quota {
                    write(dir.join("cpu.max"), format!("{q} 100000"));
                }
                vec![dir]
            }
            Cgroups::V1 { memory: mem, cpu } => {
                let (m, c) = (mem.join(id), cpu.join(id));
                if std::fs::create_dir_all(&m).is_err() || std::fs::create_dir_all(&c).is_err() {
                    return Vec::new();
                }
                if let Some(v) = memory {
                    write(m.join("memory.limit_in_bytes"), v.to_string());
                }
                if let Some(q) = quota {
                    write(c.join("cpu.cfs_period_us"), "100000".into());
                    write(c.join("cpu.cfs_quota_us"), q.to_string());
                }
                vec![m, c]
            }
        }
    }

    fn remove(&self, id: &str) {
        let dirs = match self {
            Cgroups::None(_) => vec![],
            Cgroups::V2(base) => vec![base.join(id)],
            Cgroups::V1 { memory, cpu } => vec![memory.join(id), cpu.join(id)],
        };
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

pub struct ProcessRuntime {
    root: PathBuf,
    shim: PathBuf,
    /// The pod range's first two octets: pods get `a.b.x.y`.
    pod_range: [u8; 2],
    cgroups: Cgroups,
    inner: Arc<Mutex<Inner>>,
    exits_tx: mpsc::UnboundedSender<Exit>,
    exits_rx: Mutex<Option<mpsc::UnboundedReceiver<Exit>>>,
    /// The thread that makes containers' files and forks their shims, in order: a fork blocks
    /// its caller until the shim has exec'd, and the agent's own thread has requests to send
    /// meanwhile.
    spawner: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

fn spawner_thread() -> std::io::Result<std::sync::mpsc::Sender<Job>> {
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("process-runtime".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        })?;
    Ok(tx)
}

/// A descriptor that becomes readable when process `pid` exits (Linux 5.3+).
fn pidfd_open(pid: u32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open returns a new descriptor (or -1), which we own from here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for our child `child` to exit (without a thread blocked on it) and reaps it.
async fn wait_child(mut child: std::process::Child) {
    let registered = pidfd_open(child.id()).and_then(|fd| {
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open and the same until dropped.
        unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .map_err(std::io::Error::from)
    });
    match registered {
        Ok(fd) => {
            let _ = fd.readable().await;
            let _ = child.wait();
        }
        Err(_) => {
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }
}

fn lock(inner: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    inner.lock().unwrap_or_else(|e| e.into_inner())
}

fn read_pid(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn read_exit(dir: &Path) -> Option<i32> {
    std::fs::read_to_string(dir.join(EXIT_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

fn kill_group(pid: i32, signal: i32) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

fn new_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{:016x}",
        nanos ^ (n << 48) ^ u64::from(std::process::id()) << 20
    )
}

/// `process://<id>` → `<id>`.
fn bare(id: &str) -> &str {
    id.strip_prefix("process://").unwrap_or(id)
}

impl ProcessRuntime {
    /// Opens (or creates) the runtime's state under `root`, adopting what a previous run left:
    /// containers still running are watched again. `shim` is the `gantry-shim` binary (or the
    /// `gantry` binary, whose `shim` subcommand is the same). Must be called inside a tokio
    /// runtime.
    pub fn open(
        root: &Path,
        shim: PathBuf,
        pod_range: [u8; 2],
        cgroups: Cgroups,
    ) -> std::io::Result<ProcessRuntime> {
        std::fs::create_dir_all(root.join("pods"))?;
        std::fs::create_dir_all(root.join("containers"))?;
        let (exits_tx, exits_rx) = mpsc::unbounded_channel();
        let rt = ProcessRuntime {
            root: root.to_path_buf(),
            shim,
            pod_range,
            cgroups,
            inner: Arc::new(Mutex::new(Inner::default())),
            exits_tx,
            exits_rx: Mutex::new(Some(exits_rx)),
            spawner: spawner_thread()?,
        };
        rt.recover()?;
        Ok(rt)
    }

    pub fn cgroups(&self) -> &Cgroups {
        &self.cgroups
    }

    fn recover(&self) -> std::io::Result<()> {
        let mut inner = lock(&self.inner);
        for entry in std::fs::read_dir(self.root.join("pods"))? {
            let path = entry?.path();
            if let Some(s) = std::fs::read(path.join("sandbox"))
                .ok()
                .and_then(|b| serde_json::from_slice::<SandboxFile>(&b).ok())
            {
                inner.sandboxes.insert(s.uid.clone(), s);
            }
        }
        let mut adopted = Vec::new();
        for entry in std::fs::read_dir(self.root.join("containers"))? {
            let dir = entry?.path();
            let Some(state) = std::fs::read(dir.join("state"))
                .ok()
                .and_then(|b| serde_json::from_slice::<StateFile>(&b).ok())
            else {
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            };
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let pid = read_pid(&dir);
            let running = read_exit(&dir).is_none() && pid.is_some_and(alive);
            inner.next_seq = inner.next_seq.max(state.seq + 1);
            if running {
                adopted.push((id.clone(), dir.clone(), pid.unwrap_or(0)));
            }
            inner.containers.insert(
                id,
                Record {
                    state,
                    dir,
                    pid,
                    running,
                },
            );
        }
        drop(inner);
        for (id, dir, pid) in adopted {
            tracing::info!("process runtime: adopted running container {id} (pid {pid})");
            self.watch_adopted(id, dir, pid);
        }
        Ok(())
    }

    /// A container this agent did not start (not its child): polled until the shim records
    /// the exit, or the process is gone.
    fn watch_adopted(&self, id: String, dir: PathBuf, pid: i32) {
        let inner = self.inner.clone();
        let tx = self.exits_tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Some(code) = read_exit(&dir) {
                    return finish(&inner, &tx, &id, code);
                }
                if !alive(pid) {
                    // Give the shim a moment to write the exit code.
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    let code = read_exit(&dir).unwrap_or(137);
                    return finish(&inner, &tx, &id, code);
                }
            }
        });
    }

    fn allocate_ip(&self, inner: &Inner) -> Option<String> {
        let used: BTreeSet<&str> = inner.sandboxes.values().map(|s| s.ip.as_str()).collect();
        let [a, b] = self.pod_range;
        (1u32..65535).find_map(|n| {
            let (x, y) = ((n >> 8) as u8, (n & 0xff) as u8);
            if y == 0 || y == 255 {
                return None;
            }
            let ip = Ipv4Addr::new(a, b, x, y).to_string();
            (!used.contains(ip.as_str())).then_some(ip)
        })
    }

    fn ensure_sandbox(&self, pod: &PodRef) -> Result<String, StartError> {
        let s = {
            let mut inner = lock(&self.inner);
            if let Some(s) = inner.sandboxes.get(&pod.uid) {
                return Ok(s.ip.clone());
            }
            let ip = self.allocate_ip(&inner).ok_or_else(|| {
                StartError::new(
                    "CreatePodSandboxError",
                    "no free pod IP in this node's range",
                )
            })?;
            let s = SandboxFile {
                namespace: pod.namespace.clone(),
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                ip,
            };
            inner.sandboxes.insert(pod.uid.clone(), s.clone());
            s
        };
        let dir = self.root.join("pods").join(&pod.uid);
        // Written in place: a torn file (the agent died mid-write) is skipped when it recovers,
        // like a sandbox never made.
        let written = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::write(
                dir.join("sandbox"),
                serde_json::to_vec(&s).unwrap_or_default(),
            )
        });
        if let Err(e) = written {
            lock(&self.inner).sandboxes.remove(&pod.uid);
            return Err(StartError::new("CreatePodSandboxError", e.to_string()));
        }
        Ok(s.ip)
    }

    async fn start_container(&self, config: ContainerConfig) -> RuntimeResult {
        let (done, spawned) = tokio::sync::oneshot::channel();
        let this = self.handle();
        let job: Job = Box::new(move || {
            let _ = done.send(this.spawn_shim(config));
        });
        if self.spawner.send(job).is_err() {
            return StartError::new("RunContainerError", "the process runtime has stopped")
                .into_result();
        }
        let (id, dir, mut child, ip) = match spawned.await {
            Ok(Ok(s)) => s,
            Ok(Err(result)) => return result,
            Err(_) => {
                return StartError::new("RunContainerError", "the process runtime has stopped")
                    .into_result()
            }
        };
        let started = |id: &str| RuntimeResult::Started {
            container_id: format!("process://{id}"),
            pod_ip: Some(ip.clone()),
        };
        // The shim's handshake on its stdout: the command's pid, or why it could not start.
        let pipe = child
            .stdout
            .take()
            .ok_or_else(|| "the shim's stdout is not a pipe".to_string())
            .and_then(|out| {
                tokio::net::unix::pipe::Receiver::from_owned_fd(out.into())
                    .map_err(|e| format!("the shim's stdout: {e}"))
            });
        let outcome = match pipe {
            Err(e) => Err(e),
            Ok(out) => {
                use tokio::io::AsyncBufReadExt;
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(out);
                match tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
                    .await
                {
                    Err(_) => Err("the shim did not start the command within 10s".into()),
                    Ok(_) => match (line.strip_prefix(STARTED), line.strip_prefix(FAILED)) {
                        (Some(pid), _) => pid
                            .trim()
                            .parse::<i32>()
                            .map_err(|_| format!("the shim said {line:?}")),
                        (_, Some(message)) => Err(message.trim().to_string()),
                        _ => Err(match child.try_wait() {
                            Ok(Some(status)) => {
                                format!("the shim exited ({status}) before the command started")
                            }
                            _ => format!("the shim said {line:?}"),
                        }),
                    },
                }
            }
        };
        match outcome {
            Ok(pid) => {
                if let Some(r) = lock(&self.inner).containers.get_mut(&id) {
                    r.pid = Some(pid);
                }
                let (inner, tx, id2) = (self.inner.clone(), self.exits_tx.clone(), id.clone());
                tokio::spawn(async move {
                    wait_child(child).await;
                    let code = read_exit(&dir).unwrap_or(137);
                    finish(&inner, &tx, &id2, code);
                });
                started(&id)
            }
            Err(message) => {
                wait_child(child).await;
                if let Some(r) = lock(&self.inner).containers.remove(&id) {
                    let _ = std::fs::remove_dir_all(&r.dir);
                }
                self.cgroups.remove(&id);
                StartError::new("RunContainerError", message).into_result()
            }
        }
    }

    /// Starts the shim for a container (or finds the container running from before).
    #[allow(clippy::result_large_err)]
    fn spawn_shim(
        &self,
        config: ContainerConfig,
    ) -> Result<(String, PathBuf, std::process::Child, String), RuntimeResult> {
        let ip = self
            .ensure_sandbox(&config.pod)
            .map_err(StartError::into_result)?;
        let spec = &config.spec;
        let started = |id: &str| RuntimeResult::Started {
            container_id: format!("process://{id}"),
            pod_ip: Some(ip.clone()),
        };
        let command: Vec<String> = spec
            .command
            .iter()
            .flatten()
            .chain(spec.args.iter().flatten())
            .cloned()
            .collect();
        if spec.command.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(StartError::new(
                "CreateContainerError",
                format!(
                    "container {:?} has no command: the process runtime records the image {:?} \
                     but does not pull or unpack it, so there is no entrypoint to run; set \
                     command (and args)",
                    spec.name,
                    spec.image.as_deref().unwrap_or("")
                ),
            )
            .into_result());
        }
        let id = new_id();
        let dir = self.root.join("containers").join(&id);
        let workdir = spec.working_dir.clone().unwrap_or_else(|| "/".into());
        // The bookkeeping under the lock, the files and the fork outside it: the agent's
        // thread takes the same lock.
        let (state, pruned) = {
            let mut inner = lock(&self.inner);
            // Still running from before an agent restart: adopt it.
            if let Some((id, _)) = inner.containers.iter().find(|(_, r)| {
                r.running && r.state.pod_uid == config.pod.uid && r.state.container == spec.name
            }) {
                return Err(started(id));
            }
            let pruned = prune(&mut inner, &config.pod.uid, &spec.name);
            let seq = inner.next_seq;
            inner.next_seq += 1;
            let state = StateFile {
                pod_uid: config.pod.uid.clone(),
                container: spec.name.clone(),
                seq,
                env: config.env.clone(),
                workdir: workdir.clone(),
            };
            inner.containers.insert(
                id.clone(),
                Record {
                    state: state.clone(),
                    dir: dir.clone(),
                    pid: None,
                    running: true,
                },
            );
            (state, pruned)
        };
        for (old, old_dir) in pruned {
            let _ = std::fs::remove_dir_all(old_dir);
            self.cgroups.remove(&old);
        }
        let forget = || {
            lock(&self.inner).containers.remove(&id);
            let _ = std::fs::remove_dir_all(&dir);
        };
        // Written in place: a torn state (the agent died mid-write) is removed when it
        // recovers, and so is its container, which cannot have started yet.
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::write(
                dir.join("state"),
                serde_json::to_vec(&state).unwrap_or_default(),
            )
        }) {
            forget();
            return Err(StartError::new("CreateContainerError", e.to_string()).into_result());
        }
        let limits = spec.resources.as_ref().and_then(|r| r.limits.as_ref());
        let memory = limits
            .and_then(|l| l.get("memory"))
            .and_then(|q| crate::api::quantity::parse(&q.0))
            .map(|milli| ((milli + 999) / 1000) as i64);
        let cpu = limits
            .and_then(|l| l.get("cpu"))
            .and_then(|q| crate::api::quantity::parse(&q.0))
            .map(|milli| milli as i64);
        let cgroups = if memory.is_some() || cpu.is_some() {
            self.cgroups.create(&id, memory, cpu)
        } else {
            Vec::new()
        };
        let mut cmd = std::process::Command::new(&self.shim);
        if self.shim.file_name().is_none_or(|n| n != "gantry-shim") {
            cmd.arg("shim"); // the gantry binary's subcommand
        }
        cmd.arg("--dir")
            .arg(&dir)
            .arg("--log")
            .arg(dir.join("log"))
            .arg("--workdir")
            .arg(&workdir);
        for cg in &cgroups {
            cmd.arg("--cgroup").arg(cg);
        }
        for m in &config.mounts {
            cmd.arg("--mount").arg(format!(
                "{}:{}{}",
                m.host_path.display(),
                m.container_path,
                if m.read_only { ":ro" } else { "" }
            ));
        }
        cmd.arg("--").args(&command);
        cmd.env_clear();
        if !config.env.iter().any(|(k, _)| k == "PATH") {
            cmd.env("PATH", DEFAULT_PATH);
        }
        // k8s: HOSTNAME is the pod's name.
        cmd.env("HOSTNAME", &config.pod.name);
        cmd.envs(config.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                forget();
                return Err(StartError::new(
                    "RunContainerError",
                    format!("cannot start the shim {}: {e}", self.shim.display()),
                )
                .into_result());
            }
        };
        Ok((id, dir, child, ip))
    }
}

/// Forgets exited containers of `(pod, name)` beyond the newest KEEP_EXITED; returns their ids
/// and directories, to be removed outside the lock.
fn prune(inner: &mut Inner, pod_uid: &str, name: &str) -> Vec<(String, PathBuf)> {
    let mut exited: Vec<(u64, String)> = inner
        .containers
        .iter()
        .filter(|(_, r)| !r.running && r.state.pod_uid == pod_uid && r.state.container == name)
        .map(|(id, r)| (r.state.seq, id.clone()))
        .collect();
    exited.sort();
    let drop_n = exited.len().saturating_sub(KEEP_EXITED);
    exited
        .into_iter()
        .take(drop_n)
        .filter_map(|(_, id)| inner.containers.remove(&id).map(|r| (id, r.dir)))
        .collect()
}

/// Records an exit and reports it (once).
fn finish(inner: &Mutex<Inner>, tx: &mpsc::UnboundedSender<Exit>, id: &str, code: i32) {
    let mut g = lock(inner);
    if let Some(r) = g.containers.get_mut(id) {
        if r.running {
            r.running = false;
            let _ = tx.send(Exit {
                container_id: format!("process://{id}"),
                exit_code: code,
            });
        }
    }
}

impl ContainerRuntime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn version(&self) -> BoxFuture<'static, String> {
        futures::future::ready(format!("process://{}", env!("CARGO_PKG_VERSION"))).boxed()
    }

    fn sandbox(&self, pod: PodRef) -> BoxFuture<'static, Result<String, StartError>> {
        let (done, made) = tokio::sync::oneshot::channel();
        let this = self.handle();
        let job: Job = Box::new(move || {
            let _ = done.send(this.ensure_sandbox(&pod));
        });
        let sent = self.spawner.send(job).is_ok();
        async move {
            let stopped =
                || StartError::new("CreatePodSandboxError", "the process runtime has stopped");
            if !sent {
                return Err(stopped());
            }
            made.await.unwrap_or_else(|_| Err(stopped()))
        }
        .boxed()
    }

    fn start(&self, config: ContainerConfig) -> BoxFuture<'static, RuntimeResult> {
        let this = self.handle();
        async move { this.start_container(config).await }.boxed()
    }

    fn stop(&self, container_id: String, grace: Duration) -> BoxFuture<'static, i32> {
        let inner = self.inner.clone();
        async move {
            let id = bare(&container_id).to_string();
            let (pid, dir) = {
                let g = lock(&inner);
                match g.containers.get(&id) {
                    Some(r) => (r.pid, r.dir.clone()),
                    None => return 137,
                }
            };
            let running = || lock(&inner).containers.get(&id).is_some_and(|r| r.running);
            if let Some(pid) = pid {
                kill_group(pid, libc::SIGTERM);
                let deadline = Instant::now() + grace;
                while running() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                if running() {
                    kill_group(pid, libc::SIGKILL);
                }
            }
            // The shim records the exit; wait for it (bounded: a shim killed with -9 never will).
            let deadline = Instant::now() + Duration::from_secs(5);
            while running() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            read_exit(&dir).unwrap_or(137)
        }
        .boxed()
    }

    fn exec(
        &self,
        container_id: String,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, ExecOutcome> {
        let found = {
            let g = lock(&self.inner);
            g.containers
                .get(bare(&container_id))
                .filter(|r| r.running)
                .map(|r| (r.state.env.clone(), r.state.workdir.clone(), r.pid))
        };
        async move {
            let Some((env, workdir, pid)) = found else {
                return ExecOutcome::Failed(format!("container {container_id} is not running"));
            };
            if command.is_empty() {
                return ExecOutcome::Failed("empty command".into());
            }
            let (mut cmd, _mount_ns) = container_command(&env, &workdir, pid, &command);
            cmd.stdin(std::process::Stdio::null());
            run_exec(cmd, timeout).await
        }
        .boxed()
    }

    fn exec_stream(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecSession, String>> {
        let found = {
            let g = lock(&self.inner);
            g.containers
                .values()
                .filter(|r| {
                    r.running
                        && r.state.pod_uid == req.pod_uid
                        && r.state.container == req.container
                })
                .max_by_key(|r| r.state.seq)
                .map(|r| (r.state.env.clone(), r.state.workdir.clone(), r.pid))
        };
        async move {
            let Some((env, workdir, pid)) = found else {
                // k8s: the kubelet's wording.
                return Err(format!("container not found ({:?})", req.container));
            };
            if req.command.is_empty() {
                return Err("you must specify at least one command for the container".into());
            }
            let (mut cmd, mount_ns) = container_command(&env, &workdir, pid, &req.command);
            // `-t`: the command gets a terminal of its own (k8s: the CRI's tty), its
            // controlling one, on stdin, stdout and stderr.
            let pty = if req.tty {
                match open_pty() {
                    Ok(pty) => Some(pty),
                    Err(e) => return Err(format!("cannot allocate a terminal: {e}")),
                }
            } else {
                None
            };
            let piped = std::process::Stdio::piped;
            match &pty {
                Some((_, slave)) => {
                    let fd = |f: &std::fs::File| f.try_clone().map(std::process::Stdio::from);
                    let (i, o, e) = (fd(slave), fd(slave), fd(slave));
                    let (Ok(i), Ok(o), Ok(e)) = (i, o, e) else {
                        return Err("cannot allocate a terminal".into());
                    };
                    cmd.stdin(i).stdout(o).stderr(e);
                    // SAFETY: setsid and ioctl are async-signal-safe.
                    unsafe {
                        cmd.pre_exec(|| {
                            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                                return Err(std::io::Error::last_os_error());
                            }
                            Ok(())
                        });
                    }
                }
                None => {
                    cmd.stdin(if req.stdin {
                        piped()
                    } else {
                        std::process::Stdio::null()
                    })
                    .stdout(piped())
                    .stderr(piped());
                }
            }
            let spawned = cmd.spawn();
            // The terminal's other end is the command's alone: reads of ours end when it exits.
            drop((cmd, mount_ns));
            let master = pty.map(|(master, _slave)| master);
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => {
                    let failed = ExecEvent::Failed(format!(
                        "failed to exec in container: exec: {:?}: {e}",
                        req.command[0]
                    ));
                    return Ok(ExecSession {
                        stdin: None,
                        resize: None,
                        events: futures::stream::iter([failed]).boxed(),
                    });
                }
            };
            let (tx, rx) = mpsc::channel::<ExecEvent>(16);
            let mut stdin = child.stdin.take().map(|pipe| feed(pipe, false));
            let mut stdout = child
                .stdout
                .take()
                .map(|p| tokio::spawn(pump(p, tx.clone(), ExecEvent::Stdout)));
            let stderr = child
                .stderr
                .take()
                .map(|p| tokio::spawn(pump(p, tx.clone(), ExecEvent::Stderr)));
            let mut resize = None;
            if let Some(master) = master {
                let sizer = master.try_clone().map_err(|e| e.to_string())?;
                let (resize_tx, mut resize_rx) = mpsc::channel::<TerminalSize>(4);
                tokio::spawn(async move {
                    use std::os::fd::AsRawFd;
                    while let Some(size) = resize_rx.recv().await {
                        let ws = libc::winsize {
                            ws_row: size.height,
                            ws_col: size.width,
                            ws_xpixel: 0,
                            ws_ypixel: 0,
                        };
                        // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
                        unsafe { libc::ioctl(sizer.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    }
                });
                resize = Some(resize_tx);
                let writer = master.try_clone().map_err(|e| e.to_string())?;
                stdin = Some(feed(tokio::fs::File::from_std(writer), true));
                let reader = tokio::fs::File::from_std(master);
                stdout = Some(tokio::spawn(pump(reader, tx.clone(), ExecEvent::Stdout)));
            }
            tokio::spawn(async move {
                let finished = async {
                    // All the output first, then the exit: kubectl prints it before exiting.
                    for pump in [stdout, stderr].into_iter().flatten() {
                        let _ = pump.await;
                    }
                    child.wait().await
                };
                let status = tokio::select! {
                    status = finished => status,
                    // Nobody listens any more (the client went away): the command is killed.
                    () = tx.closed() => return,
                };
                let event = match status {
                    Ok(status) => {
                        use std::os::unix::process::ExitStatusExt;
                        ExecEvent::Exited(
                            status
                                .code()
                                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
                        )
                    }
                    Err(e) => ExecEvent::Failed(e.to_string()),
                };
                let _ = tx.send(event).await;
            });
            let events =
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
                );
            Ok(ExecSession {
                stdin,
                resize,
                events: events.boxed(),
            })
        }
        .boxed()
    }

    fn remove_pod(&self, pod_uid: String) -> BoxFuture<'static, ()> {
        let inner = self.inner.clone();
        let root = self.root.clone();
        let cgroups = self.cgroups.clone();
        async move {
            let ours: Vec<(String, Option<i32>, bool)> = lock(&inner)
                .containers
                .iter()
                .filter(|(_, r)| r.state.pod_uid == pod_uid)
                .map(|(id, r)| (id.clone(), r.pid, r.running))
                .collect();
            for (id, pid, running) in &ours {
                if *running {
                    if let Some(pid) = pid {
                        kill_group(*pid, libc::SIGKILL);
                    }
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while lock(&inner).containers.get(id).is_some_and(|r| r.running)
                        && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            let mut g = lock(&inner);
            for (id, _, _) in ours {
                if let Some(r) = g.containers.remove(&id) {
                    let _ = std::fs::remove_dir_all(&r.dir);
                }
                cgroups.remove(&id);
            }
            g.sandboxes.remove(&pod_uid);
            let _ = std::fs::remove_dir_all(root.join("pods").join(&pod_uid));
        }
        .boxed()
    }

    fn exits(&self) -> Option<BoxStream<'static, Exit>> {
        let rx = self.exits_rx.lock().ok()?.take()?;
        Some(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
                .boxed(),
        )
    }

    fn logs(
        &self,
        pod_uid: String,
        container: String,
        options: LogOptions,
    ) -> BoxFuture<'static, Result<Logs, String>> {
        let mut runs: Vec<(u64, String, PathBuf)> = lock(&self.inner)
            .containers
            .iter()
            .filter(|(_, r)| r.state.pod_uid == pod_uid && r.state.container == container)
            .map(|(id, r)| (r.state.seq, id.clone(), r.dir.clone()))
            .collect();
        runs.sort();
        let pod = {
            let g = lock(&self.inner);
            g.sandboxes
                .get(&pod_uid)
                .map_or(pod_uid.clone(), |s| s.name.clone())
        };
        let inner = self.inner.clone();
        async move {
            let pick = if options.previous {
                runs.len().checked_sub(2).map(|i| runs[i].clone())
            } else {
                runs.last().cloned()
            };
            let Some((_, id, dir)) = pick else {
                // k8s: the kubelet's wording.
                return Err(if options.previous {
                    format!("previous terminated container {container:?} in pod {pod:?} not found")
                } else {
                    format!("container {container:?} in pod {pod:?} is waiting to start")
                });
            };
            let running = move || lock(&inner).containers.get(&id).is_some_and(|r| r.running);
            cri_log::stream(dir.join("log"), options, running).map_err(|e| e.to_string())
        }
        .boxed()
    }

    fn pods(&self) -> BoxFuture<'static, Vec<String>> {
        let g = lock(&self.inner);
        let uids: BTreeSet<String> = g
            .sandboxes
            .keys()
            .cloned()
            .chain(g.containers.values().map(|r| r.state.pod_uid.clone()))
            .collect();
        futures::future::ready(uids.into_iter().collect()).boxed()
    }
}

/// A command in a running container's context, as exec probes and `kubectl exec` run it: the
/// container's env and working dir, in its mount namespace (where its volumes are). The file
/// returned must stay open until the command is spawned.
fn container_command(
    env: &[(String, String)],
    workdir: &str,
    pid: Option<i32>,
    command: &[String],
) -> (tokio::process::Command, Option<std::fs::File>) {
    let mut cmd = tokio::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .envs(env.iter().cloned())
        .current_dir(workdir)
        .kill_on_drop(true);
    let ns = pid
        .map(|p| format!("/proc/{p}/ns/mnt"))
        .and_then(|p| std::fs::File::open(p).ok());
    if let Some(ns) = &ns {
        use std::os::fd::AsRawFd;
        let fd = ns.as_raw_fd();
        // SAFETY: setns is async-signal-safe; the caller keeps the fd open until spawn returns.
        unsafe {
            cmd.pre_exec(move || {
                libc::setns(fd, libc::CLONE_NEWNS);
                Ok(())
            });
        }
    }
    (cmd, ns)
}

/// A terminal: (our end, the command's end).
fn open_pty() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two fds we then own; no name, termios or size is passed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just opened and are owned by nothing else.
    unsafe {
        Ok((
            std::fs::File::from_raw_fd(master),
            std::fs::File::from_raw_fd(slave),
        ))
    }
}

/// Writes what the client sends to the command's stdin; when the client closes it, a pipe is
/// closed (EOF), a terminal stays open (its EOF is the ^D the client types).
fn feed(
    mut input: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
    flush: bool,
) -> mpsc::Sender<bytes::Bytes> {
    let (tx, mut rx) = mpsc::channel::<bytes::Bytes>(16);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Some(data) = rx.recv().await {
            if input.write_all(&data).await.is_err() || (flush && input.flush().await.is_err()) {
                break;
            }
        }
    });
    tx
}

/// Copies a command's output into exec events until it closes.
async fn pump(
    mut pipe: impl tokio::io::AsyncRead + Unpin,
    tx: mpsc::Sender<ExecEvent>,
    wrap: fn(bytes::Bytes) -> ExecEvent,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(wrap(bytes::Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

async fn run_exec(mut cmd: tokio::process::Command, timeout: Duration) -> ExecOutcome {
    match tokio::time::timeout(timeout, cmd.output()).await {
        Err(_) => ExecOutcome::TimedOut,
        Ok(Err(e)) => ExecOutcome::Failed(e.to_string()),
        Ok(Ok(out)) => {
            use std::os::unix::process::ExitStatusExt;
            let code = out
                .status
                .code()
                .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            ExecOutcome::Exited { code, output }
        }
    }
}

impl ProcessRuntime {
    /// A cheap handle for futures that outlive a borrow.
    fn handle(&self) -> ProcessRuntime {
        ProcessRuntime {
            root: self.root.clone(),
            shim: self.shim.clone(),
            pod_range: self.pod_range,
            cgroups: self.cgroups.clone(),
            inner: self.inner.clone(),
            exits_tx: self.exits_tx.clone(),
            exits_rx: Mutex::new(None),
            spawner: self.spawner.clone(),
        }
    }
}
