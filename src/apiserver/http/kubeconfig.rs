//! The kubeconfig `gantry server` writes into its data directory (as k3s does), so that
//! `KUBECONFIG=<dir>/kubeconfig kubectl ...` reaches it: the server's https URL, the CA that
//! signed its certificate, and the admin's client certificate (`system:admin` in
//! `system:masters`), all embedded.

use crate::apiserver::protobuf::base64;

/// The admin's credentials in a kubeconfig.
pub struct Credentials<'a> {
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// A kubeconfig for a server at `url`: with credentials over https, or none (the
/// `--insecure-http` server, which trusts every client).
pub fn render(url: &str, credentials: Option<&Credentials<'_>>) -> String {
    let (ca, user) = match credentials {
        Some(c) => (
            format!(
                "\n    certificate-authority-data: {}",
                base64(c.ca_pem.as_bytes())
            ),
            format!(
                "\n    client-certificate-data: {}\n    client-key-data: {}",
                base64(c.cert_pem.as_bytes()),
                base64(c.key_pem.as_bytes())
            ),
        ),
        None => (String::new(), " {}".to_string()),
    };
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: gantry
  cluster:
    server: {url}{ca}
contexts:
- name: gantry
  context:
    cluster: gantry
    user: admin
    namespace: default
current-context: gantry
users:
- name: admin
  user:{user}
"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_the_server_the_ca_and_the_admin() {
        let creds = super::Credentials {
            ca_pem: "CA",
            cert_pem: "CERT",
            key_pem: "KEY",
        };
        let k: serde_json::Value =
            yaml_serde::from_str(&super::render("https://127.0.0.1:6443", Some(&creds))).unwrap();
        let cluster = &k["clusters"][0]["cluster"];
        assert_eq!(cluster["server"], "https://127.0.0.1:6443");
        assert_eq!(cluster["certificate-authority-data"], "Q0E=");
        assert_eq!(k["users"][0]["user"]["client-certificate-data"], "Q0VSVA==");
        assert_eq!(k["users"][0]["user"]["client-key-data"], "S0VZ");
        assert_eq!(k["current-context"], "gantry");
        assert_eq!(k["contexts"][0]["context"]["cluster"], "gantry");
        assert_eq!(k["contexts"][0]["context"]["user"], "admin");
        let plain: serde_json::Value =
            yaml_serde::from_str(&super::render("http://127.0.0.1:6443", None)).unwrap();
        assert_eq!(plain["users"][0]["user"], serde_json::json!({}));
    }
}
