//! JSON Web Tokens in compact JWS form (RFC 7515/7519): `b64url(header).b64url(claims).b64url(sig)`,
//! without padding. Signing and verifying are the [`TokenKeys`]' business; this file only
//! encodes and splits.

use serde_json::Value;

use super::TokenKeys;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// base64url without padding (RFC 4648 §5), as JWS uses it.
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The bytes of unpadded base64url; `None` for any other character or a dangling sextet.
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|a| *a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // One character left over carries fewer than 8 bits: not a valid encoding.
    (s.len() % 4 != 1).then_some(out)
}

/// The bytes of standard base64, padded or not (a Secret's `data` values).
pub fn b64std_decode(s: &str) -> Option<Vec<u8>> {
    let url: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            '-' | '_' => '!',
            c => c,
        })
        .collect();
    b64url_decode(&url)
}

/// A token taken apart: its header and claims decoded, the signed part and the signature.
#[derive(Debug)]
pub struct Parsed<'a> {
    pub header: Value,
    pub claims: Value,
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS; `None` when `token` is not one (three base64url parts
/// whose first two are JSON objects).
pub fn parse(token: &str) -> Option<Parsed<'_>> {
    let mut parts = token.split('.');
    let (h, c, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = |part: &str| -> Option<Value> {
        let v: Value = serde_json::from_slice(&b64url_decode(part)?).ok()?;
        v.is_object().then_some(v)
    };
    Some(Parsed {
        header: json(h)?,
        claims: json(c)?,
        signing_input: &token[..h.len() + 1 + c.len()],
        signature: b64url_decode(s)?,
    })
}

/// Signs `claims` with `keys`: the header names the algorithm and the key id (k8s:
/// pkg/serviceaccount/jwt.go, `kid` set to the key's id).
pub fn sign(keys: &dyn TokenKeys, claims: &Value) -> Result<String, String> {
    let header = serde_json::json!({"alg": keys.algorithm(), "kid": keys.key_id()});
    let mut out = b64url(header.to_string().as_bytes());
    out.push('.');
    out.push_str(&b64url(claims.to_string().as_bytes()));
    let sig = keys.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64url(&sig));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_without_padding() {
        // RFC 4648 §10 vectors, in the URL alphabet and unpadded.
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (b"foobar", "Zm9vYmFy"),
            (&[0xfb, 0xff], "-_8"),
        ];
        for (raw, enc) in cases {
            assert_eq!(b64url(raw), *enc);
            assert_eq!(b64url_decode(enc).as_deref(), Some(*raw), "{enc}");
        }
        for bad in ["Zm9v=", "a+b", "Z", "Zm9vY"] {
            assert_eq!(b64url_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_three_json_parts_parse() {
        let h = b64url(br#"{"alg":"ES256"}"#);
        let c = b64url(br#"{"iss":"x"}"#);
        let token = format!("{h}.{c}.{}", b64url(b"sig"));
        let p = parse(&token).expect("a JWS");
        assert_eq!(p.claims["iss"], "x");
        assert_eq!(p.signing_input, format!("{h}.{c}"));
        assert_eq!(p.signature, b"sig");
        for bad in [
            "nonsense".to_string(),
            format!("{h}.{c}"),
            format!("{h}.{c}.{}.x", b64url(b"sig")),
            format!("{h}.{}.sig", b64url(b"[1]")),
            format!("{h}.{c}.s+g"),
        ] {
            assert!(parse(&bad).is_none(), "{bad}");
        }
    }
}
