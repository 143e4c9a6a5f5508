//! The process runtime's per-container shim (k8s: what containerd-shim is to a container):
//! `gantry shim` starts the container's command in a session and process group of its own,
//! writes its stdout and stderr as CRI log records with timestamps, and records its exit code.
//! It outlives the node agent, so an agent that restarts finds its containers running, their
//! logs intact and their exit codes kept (docs/decisions.md).
//!
//! Files in the container's directory, each written whole (write, then rename):
//! * `pid`: the command's pid, which is also its process group (written once it started);
//! * `error`: why the command could not start (then the shim exits with 128);
//! * `exit`: the exit code (128 + signal when a signal ended it), once it stopped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::cri_log;

/// What `gantry shim` is told.
#[derive(clap::Args, Debug, Clone)]
pub struct ShimArgs {
    /// The container's directory (pid, error, exit and log files).
    #[arg(long)]
    pub dir: PathBuf,
    /// The log file (CRI format).
    #[arg(long)]
    pub log: PathBuf,
    /// Working directory (created if missing, as container runtimes do).
    #[arg(long, default_value = "/")]
    pub workdir: PathBuf,
    /// A cgroup directory to join before starting the command (repeatable).
    #[arg(long)]
    pub cgroup: Vec<PathBuf>,
    /// A bind mount `HOST_DIR:CONTAINER_PATH[:ro]` made in a mount namespace of the
    /// container's own (repeatable; needs root).
    #[arg(long)]
    pub mount: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub const PID_FILE: &str = "pid";
pub const ERROR_FILE: &str = "error";
pub const EXIT_FILE: &str = "exit";

/// Writes `data` to `dir/name` so that a reader sees all of it or nothing.
pub fn write_whole(dir: &Path, name: &str, data: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, data)?;
    std::fs::rename(tmp, dir.join(name))
}

/// Runs the shim; returns the process exit code of the shim itself.
pub fn run(args: ShimArgs) -> i32 {
    // A session of its own: the agent's terminal, its Ctrl-C and its death do not reach it.
    // SAFETY: setsid and signal have no memory-safety preconditions.
    unsafe {
        libc::setsid();
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    match start(&args) {
        Ok(code) => {
            let _ = write_whole(&args.dir, EXIT_FILE, &format!("{code}\n"));
            0
        }
        Err(message) => {
            let _ = write_whole(&args.dir, ERROR_FILE, &message);
            128
        }
    }
}

fn start(args: &ShimArgs) -> Result<i32, String> {
    for cg in &args.cgroup {
        std::fs::write(cg.join("cgroup.procs"), std::process::id().to_string())
            .map_err(|e| format!("cannot join cgroup {}: {e}", cg.display()))?;
    }
    if !args.mount.is_empty() {
        mount_volumes(&args.mount)?;
    }
    std::fs::create_dir_all(&args.workdir)
        .map_err(|e| format!("cannot create workingDir {}: {e}", args.workdir.display()))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .map_err(|e| format!("cannot open log {}: {e}", args.log.display()))?;
    let log = Arc::new(Mutex::new(log));

    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..])
        .current_dir(&args.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            for s in [libc::SIGINT, libc::SIGHUP, libc::SIGTERM, libc::SIGPIPE] {
                libc::signal(s, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        // k8s (containerd's wording): exec: "x": executable file not found in $PATH
        std::io::ErrorKind::NotFound => format!(
            "exec: \"{}\": executable file not found in $PATH",
            args.command[0]
        ),
        std::io::ErrorKind::PermissionDenied => {
            format!("exec: \"{}\": permission denied", args.command[0])
        }
        _ => format!("exec: \"{}\": {e}", args.command[0]),
    })?;
    let pid = child.id() as i32;
    write_whole(&args.dir, PID_FILE, &format!("{pid}\n"))
        .map_err(|e| format!("cannot write pid file: {e}"))?;

    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .zip(["stdout", "stderr"])
    .filter_map(|(r, name)| r.map(|r| (r, name)))
    .map(|(r, name)| {
        let log = log.clone();
        std::thread::spawn(move || copy_records(r, name, &log))
    })
    .collect();

    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    // k8s: when a container's main process ends, so does everything else in it.
    // SAFETY: kill has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
    // The pipes close once nothing holds them; a descendant that escaped the group could keep
    // them open, so the exit is not held up for it for long.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    for r in readers {
        while !r.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(code)
}

/// Copies one stream into CRI records: a record per line, long lines split into partials.
fn copy_records(r: Box<dyn Read + Send>, stream: &str, log: &Mutex<File>) {
    let mut r = BufReader::with_capacity(cri_log::MAX_RECORD, r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(cri_log::MAX_RECORD as u64)
            .read_until(b'\n', &mut line)
            .unwrap_or(0);
        if n == 0 {
            return;
        }
        let complete = line.ends_with(b"\n");
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        // A last line without a newline is still a whole line once the stream ends; only a
        // line cut at MAX_RECORD is partial.
        let partial = !complete && n == cri_log::MAX_RECORD;
        let rec = cri_log::record(SystemTime::now(), stream, partial, text);
        if let Ok(mut f) = log.lock() {
            let _ = f.write_all(&rec);
        }
    }
}

/// Bind-mounts each volume at its mountPath in a private mount namespace (the shim is still
/// single-threaded here, as unshare(CLONE_NEWNS) requires).
fn mount_volumes(mounts: &[String]) -> Result<(), String> {
    use std::ffi::CString;
    let c = |s: &str| CString::new(s).map_err(|_| format!("bad path {s:?}"));
    // SAFETY: plain syscalls on valid C strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(format!(
                "cannot make a mount namespace for volumeMounts (needs root): {}",
                std::io::Error::last_os_error()
            ));
        }
        let root = c("/")?;
        if libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(format!(
                "cannot make / private: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    for m in mounts {
        let mut parts = m.splitn(3, ':');
        let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
            return Err(format!("bad mount {m:?}"));
        };
        let ro = parts.next() == Some("ro");
        if Path::new(src).is_dir() {
            std::fs::create_dir_all(dst).map_err(|e| format!("mountPath {dst}: {e}"))?;
        } else if !Path::new(dst).exists() {
            if let Some(parent) = Path::new(dst).parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("mountPath {dst}: {e}"))?;
            }
            File::create(dst).map_err(|e| format!("mountPath {dst}: {e}"))?;
        }
        let (s, d) = (c(src)?, c(dst)?);
        // SAFETY: plain syscalls on valid C strings.
        unsafe {
            if libc::mount(
                s.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                return Err(format!(
                    "cannot mount {src} at {dst}: {}",
                    std::io::Error::last_os_error()
                ));
            }
            if ro
                && libc::mount(
                    std::ptr::null(),
                    d.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                ) != 0
            {
                return Err(format!(
                    "cannot make {dst} read-only: {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
    }
    Ok(())
}
