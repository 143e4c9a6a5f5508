//! The process runtime's per-container shim (k8s: what containerd-shim is to a container):
//! `gantry shim` starts the container's command in a session and process group of its own,
//! writes its stdout and stderr as CRI log records with timestamps, and records its exit code.
//! It outlives the node agent, so an agent that restarts finds its containers running, their
//! logs intact and their exit codes kept (docs/decisions.md).
//!
//! It tells the agent on its stdout, one line, whether the command started (`started <pid>`)
//! or why not (`error <message>`, then it exits with 128), and closes it. Files in the
//! container's directory, each written whole (write, then rename):
//! * `pid`: the command's pid, which is also its process group (for an agent that restarts);
//! * `exit`: the exit code (128 + signal when a signal ended it), once it stopped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::cri_log;

/// What the shim is told (by the process runtime; its own small parser, so that the
/// `gantry-shim` binary stays small and starts fast — one starts per container):
/// `--dir D --log F [--workdir W] [--cgroup C]... [--mount SRC:DST[:ro]]... -- COMMAND ARGS...`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimArgs {
    /// The container's directory (pid, error, exit and log files).
    pub dir: PathBuf,
    /// The log file (CRI format).
    pub log: PathBuf,
    /// Working directory (created if missing, as container runtimes do).
    pub workdir: PathBuf,
    /// Cgroup directories to join before starting the command.
    pub cgroup: Vec<PathBuf>,
    /// Bind mounts `HOST_DIR:CONTAINER_PATH[:ro]` made in a mount namespace of the container's
    /// own (needs root).
    pub mount: Vec<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

impl ShimArgs {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<ShimArgs, String> {
        let mut it = args.into_iter();
        let (mut dir, mut log, mut workdir) = (None, None, PathBuf::from("/"));
        let (mut cgroup, mut mount) = (Vec::new(), Vec::new());
        while let Some(flag) = it.next() {
            if flag == "--" {
                let command: Vec<String> = it.collect();
                if command.is_empty() {
                    return Err("no command after --".into());
                }
                return Ok(ShimArgs {
                    dir: dir.ok_or("--dir is required")?,
                    log: log.ok_or("--log is required")?,
                    workdir,
                    cgroup,
                    mount,
                    command,
                });
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--dir" => dir = Some(PathBuf::from(value)),
                "--log" => log = Some(PathBuf::from(value)),
                "--workdir" => workdir = PathBuf::from(value),
                "--cgroup" => cgroup.push(PathBuf::from(value)),
                "--mount" => mount.push(value),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        Err("no command: expected -- COMMAND [ARGS...]".into())
    }
}

pub const PID_FILE: &str = "pid";
pub const EXIT_FILE: &str = "exit";

/// The handshake line's prefixes.
pub const STARTED: &str = "started ";
pub const FAILED: &str = "error ";

/// Writes the handshake line and closes stdout (the agent stops reading).
fn tell_agent(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", line.replace('\n', " "));
    let _ = out.flush();
    // SAFETY: replacing fd 1 with /dev/null; nothing else uses stdout afterwards.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
}

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
            tell_agent(&format!("{FAILED}{message}"));
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
    tell_agent(&format!("{STARTED}{pid}"));

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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn arguments() {
        let a = ShimArgs::parse(args(
            "--dir /d --log /d/log --cgroup /c1 --cgroup /c2 --mount /v:/data:ro -- sh -c x --y",
        ))
        .unwrap();
        assert_eq!(a.dir, PathBuf::from("/d"));
        assert_eq!(a.workdir, PathBuf::from("/"));
        assert_eq!(a.cgroup.len(), 2);
        assert_eq!(a.mount, vec!["/v:/data:ro".to_string()]);
        assert_eq!(a.command, args("sh -c x --y"));
        for bad in [
            "--log /l -- sh",
            "--dir /d --log /l",
            "--dir /d --log /l --",
            "--dir /d --bogus 1 --log /l -- sh",
            "--dir",
        ] {
            assert!(ShimArgs::parse(args(bad)).is_err(), "{bad}");
        }
    }
}
