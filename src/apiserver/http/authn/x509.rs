//! Client certificates (k8s: apiserver/pkg/authentication/request/x509): the TLS layer has
//! verified the chain against the client CA; the user is the leaf's subject CN and its groups
//! the subject's O values (k8s: x509.CommonNameUserConversion).

use crate::auth::UserInfo;

/// The user a verified client certificate names, or `None` for a certificate without a CN
/// (k8s: such a certificate authenticates nobody and the next authenticator is asked).
pub fn user_of(leaf_der: &[u8]) -> Option<UserInfo> {
    let (cn, orgs) = crate::host::pki::issue::subject(leaf_der)?;
    if cn.is_empty() {
        return None;
    }
    Some(UserInfo {
        name: cn,
        groups: orgs,
        ..UserInfo::default()
    })
}

/// The user of the connection's client certificate (in `system:authenticated`), kept in the
/// connection's extensions by the TLS acceptor's `on_connect` (one parse per connection, not
/// per request).
#[derive(Clone, Debug)]
pub struct PeerUser(pub Option<std::sync::Arc<UserInfo>>);

/// `on_connect` for the HTTPS listener: reads the verified client certificate, if any.
pub fn on_connect(conn: &dyn std::any::Any, ext: &mut actix_web::dev::Extensions) {
    use actix_tls::accept::rustls_0_23::TlsStream;
    if let Some(tls) = conn.downcast_ref::<TlsStream<actix_web::rt::net::TcpStream>>() {
        let (_, session) = tls.get_ref();
        let user = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| user_of(leaf))
            .map(|user| std::sync::Arc::new(super::authenticated(user)));
        ext.insert(PeerUser(user));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::pki::{issue, Names};

    /// A user's name and groups.
    type Want = (&'static str, &'static [&'static str]);

    #[test]
    fn cn_is_the_user_and_o_the_groups() {
        let now = time::OffsetDateTime::now_utc();
        let ca = issue::ca("test-ca", now).unwrap();
        let cases: &[(&str, Option<&str>, Option<Want>)] = &[
            (
                "system:admin",
                Some("system:masters"),
                Some(("system:admin", &["system:masters"])),
            ),
            (
                "system:node:n1",
                Some("system:nodes"),
                Some(("system:node:n1", &["system:nodes"])),
            ),
            ("solo", None, Some(("solo", &[]))),
            // k8s: a certificate without a CN authenticates nobody.
            ("", Some("group"), None),
        ];
        for (cn, org, want) in cases {
            let leaf = issue::leaf(
                &ca,
                cn,
                *org,
                &Names::default(),
                issue::Usage::Client,
                1,
                now,
            )
            .unwrap();
            let der = issue::first_der(&leaf.cert_pem).unwrap();
            let got = user_of(&der);
            let got = got.as_ref().map(|u| (u.name.as_str(), u.groups.clone()));
            let want = want.map(|(n, g)| (n, g.iter().map(|s| s.to_string()).collect()));
            assert_eq!(got, want, "{cn}");
        }
    }
}
