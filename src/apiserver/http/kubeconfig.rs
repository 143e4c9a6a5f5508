//! The kubeconfig `gantry server` writes into its data directory (as k3s does), so that
//! `KUBECONFIG=<dir>/kubeconfig kubectl ...` reaches it.

/// A kubeconfig for a server at `url` (plain HTTP on loopback: no credentials yet).
pub fn render(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: gantry
  cluster:
    server: {url}
contexts:
- name: gantry
  context:
    cluster: gantry
    user: gantry
    namespace: default
current-context: gantry
users:
- name: gantry
  user: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_server_and_a_current_context() {
        let k: serde_json::Value =
            yaml_serde::from_str(&super::render("http://127.0.0.1:6443")).unwrap();
        assert_eq!(
            k["clusters"][0]["cluster"]["server"],
            "http://127.0.0.1:6443"
        );
        assert_eq!(k["current-context"], "gantry");
        assert_eq!(k["contexts"][0]["context"]["cluster"], "gantry");
    }
}
