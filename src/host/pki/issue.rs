//! Issuing and reading certificates: ECDSA P-256 keys (as k3s), CAs for ten years, leaves for
//! a year, signed with rcgen; read back with x509-parser for the renewal decisions.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::renew::{Existing, Names};

/// k8s: kubeadm and k3s CAs last ten years.
pub const CA_DAYS: i64 = 3650;
/// k8s: kubeadm's and k3s' leaf certificates last a year.
pub const LEAF_DAYS: i64 = 365;

/// A certificate and its key, both PEM.
#[derive(Clone, Debug)]
pub struct CertKey {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a leaf certificate is for.
pub enum Usage {
    Server,
    Client,
}

fn serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    let _ = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if bytes == [0u8; 16] {
        let t = OffsetDateTime::now_utc().unix_timestamp_nanos();
        bytes.copy_from_slice(&t.to_le_bytes());
    }
    // A positive INTEGER, never zero.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn err(what: &str) -> impl Fn(rcgen::Error) -> String + '_ {
    move |e| format!("cannot issue {what}: {e}")
}

/// A self-signed CA named `common_name` (k8s: k3s' `<kind>-ca@<unix time>` names).
pub fn ca(common_name: &str, now: OffsetDateTime) -> Result<CertKey, String> {
    let key = KeyPair::generate().map_err(err(common_name))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(CA_DAYS);
    params.serial_number = Some(serial());
    let cert = params.self_signed(&key).map_err(err(common_name))?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A leaf for `common_name` in `organization` (rcgen keeps one value per attribute type, so
/// one group), valid for `names`, signed by `ca`.
pub fn leaf(
    ca: &CertKey,
    common_name: &str,
    organization: Option<&str>,
    names: &Names,
    usage: Usage,
    days: i64,
    now: OffsetDateTime,
) -> Result<CertKey, String> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(err("a CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(err("a CA"))?;
    let key = KeyPair::generate().map_err(err(common_name))?;
    let mut params = CertificateParams::new(names.to_strings()).map_err(err(common_name))?;
    params.distinguished_name = DistinguishedName::new();
    if let Some(o) = organization {
        params.distinguished_name.push(DnType::OrganizationName, o);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![match usage {
        Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
        Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
    }];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
    params.serial_number = Some(serial());
    let cert = params.signed_by(&key, &issuer).map_err(err(common_name))?;
    Ok(CertKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The first certificate of a PEM text, DER.
pub fn first_der(pem_text: &str) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem_text.as_bytes())
        .next()?
        .ok()
        .map(|c| c.to_vec())
}

/// What the renewal rules need of a certificate on disk (`None` if it does not parse).
pub fn read(cert_pem: &str, ca_pem: &str) -> Option<Existing> {
    use x509_parser::extensions::GeneralName;
    let der = first_der(cert_pem)?;
    let ca_der = first_der(ca_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).ok()?;
    let mut names = Names::default();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    names.dns.insert(d.to_ascii_lowercase());
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes)
                            .ok()
                            .map(std::net::IpAddr::from),
                        _ => None,
                    };
                    names.ips.extend(ip);
                }
                _ => {}
            }
        }
    }
    let signed_by_current_ca =
        cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok();
    Some(Existing {
        not_after: cert.validity().not_after.timestamp(),
        names,
        signed_by_current_ca,
    })
}

/// A certificate's subject CN and O values (the x509 authenticator's user and groups).
pub fn subject(der: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("")
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}
