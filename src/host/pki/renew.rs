//! When a certificate kept in the data directory is issued again at start (k8s: k3s'
//! `certutil`/dynamiclistener rules and kubeadm's `certs renew`): leaf certificates within 90
//! days of expiry are renewed, and the serving certificate also when its SANs no longer cover
//! the names the server must answer to. CAs are never reissued while they are present.

use std::collections::BTreeSet;
use std::net::IpAddr;

/// A leaf is renewed once it has this little left (k8s: k3s' `certutil` 90-day rule).
pub const RENEW_BEFORE_SECONDS: i64 = 90 * 24 * 3600;

/// Names a certificate is valid for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Names {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

impl Names {
    /// Sorts each name into DNS or IP (as rcgen's `CertificateParams::new` does).
    pub fn from_strings<'a>(names: impl IntoIterator<Item = &'a str>) -> Names {
        let mut out = Names::default();
        for n in names {
            let n = n.trim().trim_start_matches('[').trim_end_matches(']');
            if n.is_empty() {
                continue;
            }
            match n.parse::<IpAddr>() {
                Ok(ip) => {
                    out.ips.insert(ip);
                }
                Err(_) => {
                    out.dns.insert(n.to_ascii_lowercase());
                }
            }
        }
        out
    }

    /// Whether every name of `needed` is among these.
    pub fn covers(&self, needed: &Names) -> bool {
        needed.dns.is_subset(&self.dns) && needed.ips.is_subset(&self.ips)
    }

    /// Every name, DNS names first, for rcgen.
    pub fn to_strings(&self) -> Vec<String> {
        self.dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(|ip| ip.to_string()))
            .collect()
    }
}

/// What start-up read of a certificate on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// Its notAfter, in seconds since the epoch.
    pub not_after: i64,
    /// Its SANs.
    pub names: Names,
    /// Whether the CA that is now in the data directory signed it.
    pub signed_by_current_ca: bool,
}

/// Why a certificate is (re)issued, or that it is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// No certificate (or key), or one that does not parse.
    Missing,
    /// Within [`RENEW_BEFORE_SECONDS`] of its notAfter, or past it.
    Expiring,
    /// A serving certificate whose SANs miss a name now needed.
    NamesChanged,
    /// Signed by another CA (the CA was replaced by hand).
    OtherIssuer,
}

/// Whether to keep a leaf certificate at `now`; `needed` is the SANs a serving certificate
/// must have (`None` for client certificates).
pub fn decide(existing: Option<&Existing>, now: i64, needed: Option<&Names>) -> Decision {
    let Some(cert) = existing else {
        return Decision::Missing;
    };
    if !cert.signed_by_current_ca {
        return Decision::OtherIssuer;
    }
    if cert.not_after - now <= RENEW_BEFORE_SECONDS {
        return Decision::Expiring;
    }
    if needed.is_some_and(|n| !cert.names.covers(n)) {
        return Decision::NamesChanged;
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3600;
    const NOW: i64 = 1_800_000_000;

    fn names(list: &[&str]) -> Names {
        Names::from_strings(list.iter().copied())
    }

    #[test]
    fn renewal_decisions() {
        let needed = names(&["localhost", "kubernetes", "127.0.0.1", "10.96.0.1"]);
        let more = names(&[
            "localhost",
            "kubernetes",
            "127.0.0.1",
            "10.96.0.1",
            "api.example",
        ]);
        let cert = |days_left: i64, sans: &Names, current: bool| Existing {
            not_after: NOW + days_left * DAY,
            names: sans.clone(),
            signed_by_current_ca: current,
        };
        // (what is on disk, the SANs needed, the decision)
        let cases: Vec<(Option<Existing>, Option<&Names>, Decision)> = vec![
            (None, Some(&needed), Decision::Missing),
            (None, None, Decision::Missing),
            (
                Some(cert(365, &needed, true)),
                Some(&needed),
                Decision::Keep,
            ),
            // k3s: renewed within 90 days of expiry, kept one day before that.
            (Some(cert(91, &needed, true)), Some(&needed), Decision::Keep),
            (
                Some(cert(90, &needed, true)),
                Some(&needed),
                Decision::Expiring,
            ),
            (Some(cert(30, &needed, true)), None, Decision::Expiring),
            (Some(cert(-5, &needed, true)), None, Decision::Expiring),
            // A SAN gone missing (a new --tls-san or listen address) reissues the serving
            // certificate; extra SANs are harmless; client certificates have no SANs to check.
            (
                Some(cert(365, &needed, true)),
                Some(&more),
                Decision::NamesChanged,
            ),
            (Some(cert(365, &more, true)), Some(&needed), Decision::Keep),
            (
                Some(cert(365, &Names::default(), true)),
                None,
                Decision::Keep,
            ),
            (
                Some(cert(365, &needed, false)),
                Some(&needed),
                Decision::OtherIssuer,
            ),
        ];
        for (existing, needed, want) in cases {
            assert_eq!(
                decide(existing.as_ref(), NOW, needed),
                want,
                "{existing:?} needing {needed:?}"
            );
        }
    }

    #[test]
    fn names_sort_into_dns_and_ip() {
        let n = names(&["Kubernetes", "127.0.0.1", "[::1]", "", "kubernetes"]);
        assert_eq!(n.dns.iter().collect::<Vec<_>>(), ["kubernetes"]);
        assert_eq!(n.ips.len(), 2);
        assert_eq!(n.to_strings(), ["kubernetes", "127.0.0.1", "::1"]);
    }
}
