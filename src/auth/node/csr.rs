//! The subject common name of a PEM CertificateSigningRequest, read without a crypto crate
//! (k8s: certapi.ParseCSR, then x509.ParseCertificateRequest's Subject.CommonName; the
//! signature is not checked here, as upstream's admission does not check it either).

/// Standard base64 (RFC 4648), padding optional, whitespace ignored (a PEM body's lines).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let compact: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    crate::auth::serviceaccount::jwt::b64std_decode(&compact)
}

/// k8s: certapi.ParseCSR's PEM step: the first block must be a `CERTIFICATE REQUEST`.
fn pem_block(pem: &[u8]) -> Result<Vec<u8>, String> {
    const WRONG: &str = "PEM block type must be CERTIFICATE REQUEST";
    let text = std::str::from_utf8(pem).map_err(|_| WRONG.to_string())?;
    let begin = text.find("-----BEGIN ").ok_or(WRONG)?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let (kind, rest) = rest.split_once("-----").ok_or(WRONG)?;
    if kind != "CERTIFICATE REQUEST" {
        return Err(WRONG.into());
    }
    let end = format!("-----END {kind}-----");
    let body = &rest[..rest.find(&end).ok_or(WRONG)?];
    base64_decode(body).ok_or_else(|| WRONG.to_string())
}

const MALFORMED: &str = "x509: malformed certificate request";

/// One DER element: (tag, contents, the rest after it).
fn element(der: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = der.split_first().ok_or(MALFORMED)?;
    let (&first, rest) = rest.split_first().ok_or(MALFORMED)?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(MALFORMED.into());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(MALFORMED.into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    match element(der)? {
        (t, body, rest) if t == tag => Ok((body, rest)),
        _ => Err(MALFORMED.into()),
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
/// id-at-commonName, 2.5.4.3.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

fn directory_string(tag: u8, body: &[u8]) -> Result<String, String> {
    match tag {
        // UTF8String, PrintableString, T61String, IA5String
        0x0c | 0x13 | 0x14 | 0x16 => String::from_utf8(body.to_vec()).map_err(|_| MALFORMED.into()),
        // BMPString: UTF-16BE
        0x1e if body.len().is_multiple_of(2) => {
            let units: Vec<u16> = body
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).map_err(|_| MALFORMED.into())
        }
        _ => Err(MALFORMED.into()),
    }
}

/// The subject's common name (the last one, as Go's pkix.Name keeps), empty when it has none.
pub fn csr_common_name(pem: &[u8]) -> Result<String, String> {
    let der = pem_block(pem)?;
    let (request, trailing) = expect(&der, SEQUENCE)?;
    if !trailing.is_empty() {
        return Err("x509: trailing data after certificate request".into());
    }
    let (info, _) = expect(request, SEQUENCE)?;
    let (_version, rest) = expect(info, 0x02)?;
    let (mut rdns, _) = expect(rest, SEQUENCE)?;
    let mut cn = String::new();
    while !rdns.is_empty() {
        let (mut set, next) = expect(rdns, SET)?;
        rdns = next;
        while !set.is_empty() {
            let (attr, next) = expect(set, SEQUENCE)?;
            set = next;
            let (oid, value) = expect(attr, 0x06)?;
            if oid == COMMON_NAME {
                let (tag, body, _) = element(value)?;
                cn = directory_string(tag, body)?;
            }
        }
    }
    Ok(cn)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `openssl req -new -newkey ec -subj "/O=system:nodes/CN=system:node:n1"`.
    pub const CSR_N1: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHsMIGSAgEAMDAxFTATBgNVBAoMDHN5c3RlbTpub2RlczEXMBUGA1UEAwwOc3lz
dGVtOm5vZGU6bjEwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARjPcbMOx8g0IeR
X/sXabF0Zwc+kPk7bfnO7FtFP8LjLbaIOXSbrZgUQhulCz3lIVAK0ndO8vEWkjiW
WqE3G5VkoAAwCgYIKoZIzj0EAwIDSQAwRgIhAJDwOQ1G++R393jVFPFDcpbGraIi
f6V9yFp3mkRsDC9MAiEA7erVrX+PuD+wvCHFVxwcceOcbTMCvUqM7ecjueTI58A=
-----END CERTIFICATE REQUEST-----
";

    /// The same for `system:node:n2`.
    pub const CSR_N2: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHrMIGSAgEAMDAxFTATBgNVBAoMDHN5c3RlbTpub2RlczEXMBUGA1UEAwwOc3lz
dGVtOm5vZGU6bjIwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARdKYC+7MbVpyHb
766DF2KtypGSnzFKEQOYTpQ5krYbVC7nteAXwmV5kl9x9tqygMAFviqZSC3OpH87
/EQfItzLoAAwCgYIKoZIzj0EAwIDSAAwRQIhAIn6qiFKn52Ixmc1HDnVHNUXs25d
wbNjNrxyAgB3M+DjAiBcsEjF8Qi2SxRxb6mzkHy2AOGFTetDg8QagaymvmXJLQ==
-----END CERTIFICATE REQUEST-----
";

    #[test]
    fn the_common_name_is_read_from_a_real_request() {
        let cases: &[(&str, Result<&str, &str>)] = &[
            (CSR_N1, Ok("system:node:n1")),
            (CSR_N2, Ok("system:node:n2")),
            (
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                Err("PEM block type must be CERTIFICATE REQUEST"),
            ),
            ("", Err("PEM block type must be CERTIFICATE REQUEST")),
            (
                "-----BEGIN CERTIFICATE REQUEST-----\nMIHsMIGSAgEA\n-----END CERTIFICATE REQUEST-----\n",
                Err(MALFORMED),
            ),
        ];
        for (pem, want) in cases {
            let got = csr_common_name(pem.as_bytes());
            assert_eq!(
                got.as_deref(),
                want.map_err(str::to_string).as_deref(),
                "{pem}"
            );
        }
    }

    #[test]
    fn base64_decodes_the_standard_alphabet() {
        for (input, want) in [
            ("", &b""[..]),
            ("Zg==", b"f"),
            ("Zm8=", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9v\nYmFy", b"foobar"),
            ("+/8=", &[0xfb, 0xff][..]),
        ] {
            assert_eq!(base64_decode(input).as_deref(), Some(want), "{input}");
        }
        assert_eq!(base64_decode("Zm9v!"), None);
    }
}
