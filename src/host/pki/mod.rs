//! The cluster's PKI, made at first start and kept in `<data-dir>/tls/` (as k3s keeps
//! `server/tls/`): a server CA that signs the API's serving certificate, a client CA that signs
//! client certificates (the admin's, the apiserver's kubelet client), and a front-proxy
//! (request-header) CA for a later aggregation layer. CAs are made once and never replaced
//! while present; leaves are reissued at start by the rules of [`renew`].

pub mod issue;
pub mod renew;

use std::path::{Path, PathBuf};

use time::OffsetDateTime;

pub use issue::CertKey;
use issue::Usage;
pub use renew::{Decision, Names};

/// The admin's user and group (k8s: k3s' `client-admin.crt`, kubeadm's `admin.conf`).
pub const ADMIN_USER: &str = "system:admin";
/// k8s: kubeadm's `apiserver-kubelet-client.crt` subject.
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";

/// What the server needs of its PKI once it is on disk.
#[derive(Clone, Debug)]
pub struct Pki {
    pub dir: PathBuf,
    /// The CA clients trust for the API's serving certificate.
    pub server_ca: CertKey,
    /// The CA client certificates are verified against.
    pub client_ca: CertKey,
    pub front_proxy_ca: CertKey,
    pub serving: CertKey,
    /// CN=system:admin, O=system:masters: the kubeconfig written for the admin.
    pub admin: CertKey,
    /// The apiserver's client certificate for kubelets (a later step uses it).
    pub kubelet_client: CertKey,
    /// What was (re)issued at this start, by file stem (for the log and tests).
    pub issued: Vec<(String, Decision)>,
}

/// How leaves are issued (tests shorten the lifetime to see renewal).
#[derive(Clone, Debug)]
pub struct Options {
    /// The serving certificate's SANs.
    pub names: Names,
    pub leaf_days: i64,
}

/// The SANs the serving certificate needs (k8s: kube-apiserver's
/// `MaybeDefaultWithSelfSignedCerts` names and k3s' defaults): the listen address (every
/// address of this machine when it is unspecified), this host's name, loopback, the
/// in-cluster names of the `default/kubernetes` Service and its ClusterIP, and whatever
/// `--tls-san` adds.
pub fn serving_names(
    listen_ip: Option<std::net::IpAddr>,
    hostname: Option<&str>,
    service_ip: Option<std::net::Ipv4Addr>,
    extra: &[String],
) -> Names {
    let mut all: Vec<String> = [
        "127.0.0.1",
        "::1",
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match listen_ip {
        Some(ip) if ip.is_unspecified() => {
            all.extend(interface_addresses().iter().map(|ip| ip.to_string()))
        }
        Some(ip) => all.push(ip.to_string()),
        None => {}
    }
    all.extend(hostname.filter(|h| !h.is_empty()).map(str::to_string));
    all.extend(service_ip.map(|ip| ip.to_string()));
    all.extend(extra.iter().cloned());
    Names::from_strings(all.iter().map(String::as_str))
}

/// The IP addresses of this machine's interfaces (getifaddrs), link-local IPv6 left out.
pub fn interface_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that freeifaddrs releases; each
    // entry's address is read according to its family before the list is freed.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut cur = list;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let a = &*(addr as *const libc::sockaddr_in);
                        out.push(std::net::IpAddr::from(a.sin_addr.s_addr.to_ne_bytes()));
                    }
                    libc::AF_INET6 => {
                        let a = &*(addr as *const libc::sockaddr_in6);
                        let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                        if ip.segments()[0] & 0xffc0 != 0xfe80 {
                            out.push(ip.into());
                        }
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out.sort();
    out.dedup();
    out
}

/// This machine's host name, if it has one.
pub fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Makes `dir` private (0700).
pub fn private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot make {} private: {e}", dir.display()))
}

/// Writes `text` to `path` with `mode`, replacing it whole (a crash leaves the old file).
pub fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn load(dir: &Path, stem: &str) -> Option<CertKey> {
    Some(CertKey {
        cert_pem: std::fs::read_to_string(dir.join(format!("{stem}.crt"))).ok()?,
        key_pem: std::fs::read_to_string(dir.join(format!("{stem}.key"))).ok()?,
    })
}

fn store(dir: &Path, stem: &str, ck: &CertKey) -> Result<(), String> {
    write_file(&dir.join(format!("{stem}.key")), &ck.key_pem, 0o600)?;
    write_file(&dir.join(format!("{stem}.crt")), &ck.cert_pem, 0o644)
}

/// A CA from `dir`, or a new one (never replaced while its files are there).
fn ensure_ca(
    dir: &Path,
    stem: &str,
    now: OffsetDateTime,
    issued: &mut Vec<(String, Decision)>,
) -> Result<CertKey, String> {
    if let Some(ca) = load(dir, stem) {
        return Ok(ca);
    }
    let name = format!("gantry-{stem}@{}", now.unix_timestamp());
    let ca = issue::ca(&name, now)?;
    store(dir, stem, &ca)?;
    issued.push((stem.to_string(), Decision::Missing));
    Ok(ca)
}

struct LeafSpec<'a> {
    stem: &'a str,
    cn: &'a str,
    org: Option<&'a str>,
    usage: Usage,
    /// The SANs a serving certificate must cover.
    names: Option<&'a Names>,
}

fn ensure_leaf(
    dir: &Path,
    ca: &CertKey,
    spec: LeafSpec<'_>,
    opts: &Options,
    now: OffsetDateTime,
    issued: &mut Vec<(String, Decision)>,
) -> Result<CertKey, String> {
    let existing = load(dir, spec.stem);
    let facts = existing
        .as_ref()
        .filter(|ck| rcgen::KeyPair::from_pem(&ck.key_pem).is_ok())
        .and_then(|ck| issue::read(&ck.cert_pem, &ca.cert_pem));
    let decision = renew::decide(facts.as_ref(), now.unix_timestamp(), spec.names);
    if decision == Decision::Keep {
        if let Some(ck) = existing {
            return Ok(ck);
        }
    }
    // A serving certificate keeps the names it had besides the ones needed now.
    let mut names = facts
        .map(|f| f.names)
        .filter(|_| spec.names.is_some())
        .unwrap_or_default();
    if let Some(needed) = spec.names {
        names.dns.extend(needed.dns.iter().cloned());
        names.ips.extend(needed.ips.iter().copied());
    }
    let ck = issue::leaf(
        ca,
        spec.cn,
        spec.org,
        &names,
        spec.usage,
        opts.leaf_days,
        now,
    )?;
    store(dir, spec.stem, &ck)?;
    tracing::info!("issued {}/{}.crt ({decision:?})", dir.display(), spec.stem);
    issued.push((spec.stem.to_string(), decision));
    Ok(ck)
}

/// The PKI in `<data_dir>/tls`, made or renewed as needed at `now`.
pub fn ensure(data_dir: &Path, opts: &Options, now: OffsetDateTime) -> Result<Pki, String> {
    private_dir(data_dir)?;
    let dir = data_dir.join("tls");
    private_dir(&dir)?;
    let mut issued = Vec::new();
    // k8s: k3s' file names (server/tls/).
    let server_ca = ensure_ca(&dir, "server-ca", now, &mut issued)?;
    let client_ca = ensure_ca(&dir, "client-ca", now, &mut issued)?;
    let front_proxy_ca = ensure_ca(&dir, "request-header-ca", now, &mut issued)?;
    let serving = ensure_leaf(
        &dir,
        &server_ca,
        LeafSpec {
            stem: "serving-kube-apiserver",
            cn: "kube-apiserver",
            org: None,
            usage: Usage::Server,
            names: Some(&opts.names),
        },
        opts,
        now,
        &mut issued,
    )?;
    let admin = ensure_leaf(
        &dir,
        &client_ca,
        LeafSpec {
            stem: "client-admin",
            cn: ADMIN_USER,
            org: Some(crate::auth::user::SYSTEM_MASTERS),
            usage: Usage::Client,
            names: None,
        },
        opts,
        now,
        &mut issued,
    )?;
    let kubelet_client = ensure_leaf(
        &dir,
        &client_ca,
        LeafSpec {
            stem: "client-kube-apiserver",
            cn: KUBELET_CLIENT_USER,
            org: Some(crate::auth::user::SYSTEM_MASTERS),
            usage: Usage::Client,
            names: None,
        },
        opts,
        now,
        &mut issued,
    )?;
    Ok(Pki {
        dir,
        server_ca,
        client_ca,
        front_proxy_ca,
        serving,
        admin,
        kubelet_client,
        issued,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(days: i64) -> Options {
        Options {
            names: serving_names(None, Some("box"), Some([10, 96, 0, 1].into()), &[]),
            leaf_days: days,
        }
    }

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_once_private_and_renewed_by_the_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let now = OffsetDateTime::now_utc();
        let first = ensure(&data, &opts(365), now).unwrap();
        assert_eq!(first.issued.len(), 6, "{:?}", first.issued);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("tls")), 0o700);
        for key in [
            "server-ca",
            "client-ca",
            "serving-kube-apiserver",
            "client-admin",
        ] {
            assert_eq!(mode(&data.join(format!("tls/{key}.key"))), 0o600, "{key}");
        }
        let facts = issue::read(&first.serving.cert_pem, &first.server_ca.cert_pem).unwrap();
        assert!(facts.signed_by_current_ca);
        for name in ["kubernetes.default.svc.cluster.local", "localhost", "box"] {
            assert!(facts.names.dns.contains(name), "{name}: {facts:?}");
        }
        assert!(facts.names.ips.contains(&"10.96.0.1".parse().unwrap()));
        let admin = issue::first_der(&first.admin.cert_pem).unwrap();
        assert_eq!(
            issue::subject(&admin).unwrap(),
            (
                "system:admin".to_string(),
                vec!["system:masters".to_string()]
            )
        );
        // A restart a day later: nothing new.
        let second = ensure(&data, &opts(365), now + time::Duration::days(1)).unwrap();
        assert!(second.issued.is_empty(), "{:?}", second.issued);
        assert_eq!(second.serving.cert_pem, first.serving.cert_pem);
        // 300 days on: every leaf is within 90 days of expiry, the CAs stay.
        let later = ensure(&data, &opts(365), now + time::Duration::days(300)).unwrap();
        let stems: Vec<_> = later.issued.iter().map(|(s, d)| (s.as_str(), *d)).collect();
        assert_eq!(
            stems,
            [
                ("serving-kube-apiserver", Decision::Expiring),
                ("client-admin", Decision::Expiring),
                ("client-kube-apiserver", Decision::Expiring)
            ]
        );
        assert_eq!(later.server_ca.cert_pem, first.server_ca.cert_pem);
        assert_eq!(later.client_ca.cert_pem, first.client_ca.cert_pem);
        // A new --tls-san reissues only the serving certificate, keeping the old names.
        let mut more = opts(365);
        more.names.dns.insert("api.example".into());
        let renamed = ensure(&data, &more, now + time::Duration::days(300)).unwrap();
        assert_eq!(
            renamed
                .issued
                .iter()
                .map(|(s, d)| (s.as_str(), *d))
                .collect::<Vec<_>>(),
            [("serving-kube-apiserver", Decision::NamesChanged)]
        );
        let facts = issue::read(&renamed.serving.cert_pem, &renamed.server_ca.cert_pem).unwrap();
        assert!(facts.names.dns.contains("api.example") && facts.names.dns.contains("box"));
    }

    #[test]
    fn an_unspecified_listen_address_names_every_interface() {
        // Other tests add and remove addresses on `lo` meanwhile: only those there before
        // and after are sure to be named.
        let before = interface_addresses();
        let all = serving_names(
            Some([0, 0, 0, 0].into()),
            None,
            None,
            &["api.example".into()],
        );
        let after = interface_addresses();
        assert!(after.contains(&"127.0.0.1".parse().unwrap()), "{after:?}");
        for ip in before.iter().filter(|ip| after.contains(ip)) {
            assert!(all.ips.contains(ip), "{ip}");
        }
        assert!(!all.ips.contains(&"0.0.0.0".parse().unwrap()));
        assert!(all.dns.contains("api.example"));
        let one = serving_names(Some([192, 0, 2, 7].into()), None, None, &[]);
        assert!(one.ips.contains(&"192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn a_leaf_of_a_replaced_ca_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        ensure(tmp.path(), &opts(365), now).unwrap();
        for f in ["client-ca.crt", "client-ca.key"] {
            std::fs::remove_file(tmp.path().join("tls").join(f)).unwrap();
        }
        let again = ensure(tmp.path(), &opts(365), now).unwrap();
        let stems: Vec<_> = again.issued.iter().map(|(s, d)| (s.as_str(), *d)).collect();
        assert_eq!(
            stems,
            [
                ("client-ca", Decision::Missing),
                ("client-admin", Decision::OtherIssuer),
                ("client-kube-apiserver", Decision::OtherIssuer)
            ]
        );
    }
}
