//! `kubectl exec` end to end: the real kubectl (WebSocket, v5.channel.k8s.io) against
//! `gantry server`, which relays the connection to its node agent, where the process runtime
//! runs the command in the container's context.
#![cfg(feature = "server")]

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use common::{wait_for, GantryAgent, GantryServer};
use serde_json::Value;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    env:
    - {name: GREETING, value: hello from main}
  - name: side
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
"#;

fn running_pod(s: &GantryServer) {
    let path = s.dir.path().join("pod.yaml");
    std::fs::write(&path, POD).unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_for(Duration::from_secs(30), "the pod running", || {
        let out = s.kubectl_ok(&["get", "pod", "box", "-o", "json"]);
        let pod: Value = serde_json::from_str(&out).unwrap();
        let statuses = pod["status"]["containerStatuses"].as_array()?;
        (statuses.len() == 2 && statuses.iter().all(|c| c["state"]["running"].is_object()))
            .then_some(())
    });
}

#[test]
fn kubectl_exec_streams_output_exit_codes_stdin_and_errors() {
    let s = GantryServer::start_with_node("node-a", &[]);
    running_pod(&s);

    // (args, exit code, stdout, a piece of stderr)
    let cases: &[(&[&str], i32, &str, &str)] = &[
        // The container's env; stdout and stderr on their own streams.
        (
            &[
                "exec",
                "box",
                "-c",
                "main",
                "--",
                "sh",
                "-c",
                "echo $GREETING; echo oops >&2",
            ],
            0,
            "hello from main\n",
            "oops",
        ),
        // More output than one message holds arrives whole.
        (
            &[
                "exec",
                "box",
                "-c",
                "side",
                "--",
                "sh",
                "-c",
                "seq 1 20000 | tail -n 1",
            ],
            0,
            "20000\n",
            "",
        ),
        // kubectl exits with the command's code.
        (
            &["exec", "box", "-c", "main", "--", "sh", "-c", "exit 3"],
            3,
            "",
            "",
        ),
        (&["exec", "box", "-c", "main", "--", "false"], 1, "", ""),
        // The server's Status errors.
        (
            &["exec", "box", "-c", "nope", "--", "true"],
            1,
            "",
            "container nope is not valid for pod box",
        ),
        (
            &["exec", "missing", "--", "true"],
            1,
            "",
            "pods \"missing\" not found",
        ),
        (
            &["exec", "box", "-c", "main", "--", "/no/such/command"],
            1,
            "",
            "error executing command in container",
        ),
    ];
    for (args, code, stdout, stderr) in cases {
        let (got_code, out, err) = s.kubectl(args);
        assert_eq!(got_code, *code, "kubectl {args:?}: {err}{out}");
        assert_eq!(out, *stdout, "kubectl {args:?}: {err}");
        assert!(err.contains(stderr), "kubectl {args:?}: {err}");
    }

    // Requests kubectl never gets to send: the server's Status for each.
    let exec = "/api/v1/namespaces/default/pods/box/exec?container=main&stdout=true";
    let spdy = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1")];
    // (path, code, message): kubectl before 1.30 speaks SPDY only.
    let requests = [
        (
            format!("{exec}&command=true"),
            400,
            "Upgrade request required",
        ),
        (exec.to_string(), 400, "at least one command"),
    ];
    for (path, code, message) in requests {
        let (got, body) = s.request("POST", &path, &spdy, b"");
        let status: Value = serde_json::from_slice(&body).expect("a Status");
        assert_eq!(
            (got, status["kind"].as_str()),
            (code, Some("Status")),
            "{status}"
        );
        assert!(
            status["message"].as_str().unwrap().contains(message),
            "{status}"
        );
    }

    // kubectl cp is tar through exec, both ways (a process pod sees the host's files).
    let (local, there) = (s.dir.path().join("f.txt"), s.dir.path().join("in-pod"));
    std::fs::write(&local, "copied\n").unwrap();
    std::fs::create_dir(&there).unwrap();
    let remote = format!("box:{}/g.txt", there.display());
    s.kubectl_ok(&["cp", "-c", "main", local.to_str().unwrap(), &remote]);
    assert_eq!(
        std::fs::read_to_string(there.join("g.txt")).unwrap(),
        "copied\n"
    );
    let back = s.dir.path().join("back.txt");
    s.kubectl_ok(&["cp", "-c", "main", &remote, back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "copied\n");

    // Big output: every byte arrives, in order.
    let out = s.kubectl_ok(&["exec", "box", "-c", "main", "--", "seq", "1", "100000"]);
    let want: String = (1..=100_000).map(|i| format!("{i}\n")).collect();
    assert!(out == want, "seq output differs ({} bytes)", out.len());

    // -i: stdin reaches the command and its end (v5's channel close) ends it.
    let input: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    let mut child = s
        .kubectl_command(&[
            "exec",
            "-i",
            "box",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "cat; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{input}done\n")
    );
}

#[test]
fn kubectl_exec_with_a_terminal() {
    let s = GantryServer::start_with_node("node-a", &[]);
    running_pod(&s);
    // kubectl asks for a terminal only when its own stdin is one: `script` gives it one.
    // kubectl sends its terminal's size, and the command's terminal takes it.
    let kubectl = "stty rows 33 cols 77; \
                   kubectl exec -it box -c main -- sh -c 'tty; sleep 0.5; stty size; echo err >&2; exit 4'";
    let out = std::process::Command::new("script")
        .args(["-qec", kubectl, "/dev/null"])
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.dir.path())
        .stdin(Stdio::piped())
        .output()
        .expect("script(1) from util-linux");
    let text = String::from_utf8_lossy(&out.stdout);
    // The command's stdin is a terminal, its stderr arrives on the same stream.
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("err"), "{text}");
    assert!(text.contains("33 77"), "{text}");
    assert_eq!(out.status.code(), Some(4), "{text}");
}

/// The processes on this machine whose command line is exactly `cmdline` (NUL-separated).
fn processes(cmdline: &[u8]) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|c| c == cmdline)
        .count()
}

#[test]
fn kubectl_exec_reaches_a_joined_agent_and_a_gone_client_ends_the_command() {
    let s = GantryServer::start_with(&[]);
    let _agent = GantryAgent::start(&s, "agent-x", &["--pod-cidr", "127.24.0.0/16"]);
    let path = s.dir.path().join("pod.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: far}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - {name: c, image: busybox, command: [sleep, '1000']}\n",
    )
    .unwrap();
    s.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    wait_for(
        Duration::from_secs(30),
        "the pod running on the agent",
        || {
            let out = s.kubectl_ok(&["get", "pod", "far", "-o", "json"]);
            let pod: Value = serde_json::from_str(&out).unwrap();
            (pod["spec"]["nodeName"] == "agent-x"
                && pod["status"]["containerStatuses"][0]["state"]["running"].is_object())
            .then_some(())
        },
    );
    let out = s.kubectl_ok(&["exec", "far", "--", "sh", "-c", "echo from $(hostname)"]);
    assert!(out.starts_with("from "), "{out}");

    // A client that goes away (kubectl killed) ends its command in the container.
    let marker = b"sleep\x00987\x00";
    let mut kubectl = s
        .kubectl_command(&["exec", "far", "--", "sleep", "987"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(Duration::from_secs(10), "the command running", || {
        (processes(marker) == 1).then_some(())
    });
    kubectl.kill().unwrap();
    kubectl.wait().unwrap();
    wait_for(Duration::from_secs(10), "the command killed", || {
        (processes(marker) == 0).then_some(())
    });
}
