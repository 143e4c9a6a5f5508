//! Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`):
//! the `k8s\0` magic, then a `runtime.Unknown` envelope naming apiVersion and kind around the
//! object's own message. kubectl's generator commands (`kubectl create namespace|configmap|
//! secret|serviceaccount|service|deployment`, `kubectl run`) send nothing else and do not fall
//! back to JSON. Decoded here (sans-IO) into the JSON the rest of the apiserver works on, by a
//! table of the messages those commands use (k8s: the `generated.proto` files of k8s.io/api
//! and k8s.io/apimachinery); responses stay JSON.

use serde_json::{json, Map, Value};

use super::pb_schema::{message, top_level, Field, Kind, MapValue};
use crate::api::status::ApiError;

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

fn bad(message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("the protobuf body cannot be decoded: {message}"))
}

/// The object a protobuf request body carries, as JSON with its apiVersion and kind.
pub fn decode(body: &[u8]) -> Result<Value, ApiError> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(bad("it does not start with the k8s\\0 magic"));
    };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    let mut r = Reader::new(envelope);
    while !r.done() {
        let (tag, wire) = r.key()?;
        match (tag, wire) {
            (1, 2) => {
                let mut t = Reader::new(r.bytes()?);
                while !t.done() {
                    match t.key()? {
                        (1, 2) => api_version = t.string()?,
                        (2, 2) => kind = t.string()?,
                        (_, w) => t.skip(w)?,
                    }
                }
            }
            (2, 2) => raw = r.bytes()?,
            (_, w) => r.skip(w)?,
        }
    }
    let Some(name) = top_level(&api_version, &kind) else {
        return Err(ApiError::unsupported_media_type(
            &format!("{CONTENT_TYPE} for {api_version} {kind}"),
            &["application/json", "application/yaml"],
        ));
    };
    let mut obj = decode_message(name, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

fn decode_message(name: &'static str, bytes: &[u8]) -> Result<Value, ApiError> {
    let fields =
        message(name).ok_or_else(|| bad(format!("messages of type {name} are not supported")))?;
    let mut out = Map::new();
    let mut r = Reader::new(bytes);
    while !r.done() {
        let (tag, wire) = r.key()?;
        let Some(f) = fields.iter().find(|f| f.tag == tag) else {
            return Err(bad(format!("field {tag} of {name} is not supported")));
        };
        let value = match (f.kind, wire) {
            (
                Kind::Str
                | Kind::Bytes
                | Kind::Msg(_)
                | Kind::Map(_)
                | Kind::Time
                | Kind::IntOrString,
                2,
            )
            | (Kind::I32 | Kind::I64 | Kind::Bool, 0) => scalar(f, &mut r)?,
            // Packed repeated scalars (proto2 emits them unpacked, but accept both).
            (Kind::I32 | Kind::I64 | Kind::Bool, 2) if f.repeated => {
                let mut p = Reader::new(r.bytes()?);
                let mut items = Vec::new();
                while !p.done() {
                    items.push(scalar(f, &mut p)?.1);
                }
                let list = out.entry(f.name).or_insert_with(|| json!([]));
                if let Value::Array(a) = list {
                    a.extend(items);
                }
                continue;
            }
            _ => {
                return Err(bad(format!(
                    "field {} of {name} has wire type {wire}",
                    f.name
                )))
            }
        };
        if let Kind::Map(_) = f.kind {
            let (k, v) = value;
            let map = out.entry(f.name).or_insert_with(|| json!({}));
            map[k] = v;
        } else if f.repeated {
            let list = out.entry(f.name).or_insert_with(|| json!([]));
            if let Value::Array(a) = list {
                a.push(value.1);
            }
        } else {
            out.insert(f.name.to_string(), value.1);
        }
    }
    // JSON leaves out zero values of fields that are not pointers (`omitempty`).
    for f in fields.iter().filter(|f| !f.keep_zero && !f.repeated) {
        if out.get(f.name).is_some_and(is_zero) {
            out.remove(f.name);
        }
    }
    Ok(Value::Object(out))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Bool(b) => !b,
        _ => false,
    }
}

/// One field's value: `(map key, value)` for map entries, `("", value)` otherwise.
fn scalar(f: &Field, r: &mut Reader) -> Result<(String, Value), ApiError> {
    let none = String::new();
    Ok(match f.kind {
        Kind::Str => (none, json!(r.string()?)),
        Kind::I32 => (none, json!(r.varint()? as i64 as i32)),
        Kind::I64 => (none, json!(r.varint()? as i64)),
        Kind::Bool => (none, json!(r.varint()? != 0)),
        Kind::Bytes => (none, json!(base64(r.bytes()?))),
        Kind::Msg(m) => (none, decode_message(m, r.bytes()?)?),
        Kind::Time => (none, time(r.bytes()?)?),
        Kind::IntOrString => (none, int_or_string(r.bytes()?)?),
        Kind::Map(value) => {
            let mut e = Reader::new(r.bytes()?);
            let (mut k, mut v) = (String::new(), Value::Null);
            while !e.done() {
                match e.key()? {
                    (1, 2) => k = e.string()?,
                    (2, 2) => {
                        v = match value {
                            MapValue::Str => json!(e.string()?),
                            MapValue::Bytes => json!(base64(e.bytes()?)),
                            MapValue::Quantity => quantity(e.bytes()?)?,
                        }
                    }
                    (_, w) => e.skip(w)?,
                }
            }
            if v.is_null() {
                v = match value {
                    MapValue::Str | MapValue::Bytes => json!(""),
                    MapValue::Quantity => json!("0"),
                };
            }
            (k, v)
        }
    })
}

fn quantity(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(bytes);
    let mut s = String::new();
    while !r.done() {
        match r.key()? {
            (1, 2) => s = r.string()?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(json!(s))
}

/// metav1.Time: seconds and nanoseconds; the zero time is JSON null.
fn time(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(bytes);
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while !r.done() {
        match r.key()? {
            (1, 0) => seconds = r.varint()? as i64,
            (2, 0) => nanos = r.varint()? as i64 as i32,
            (_, w) => r.skip(w)?,
        }
    }
    if seconds == 0 && nanos == 0 {
        return Ok(Value::Null);
    }
    let t = k8s_openapi::jiff::Timestamp::new(seconds, nanos)
        .map_err(|e| bad(format!("a time is out of range: {e}")))?;
    Ok(json!(t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()))
}

/// intstr.IntOrString: type 0 an integer, 1 a string.
fn int_or_string(bytes: &[u8]) -> Result<Value, ApiError> {
    let mut r = Reader::new(bytes);
    let (mut type_, mut int, mut string) = (0u64, 0i64, String::new());
    while !r.done() {
        match r.key()? {
            (1, 0) => type_ = r.varint()?,
            (2, 0) => int = i64::from(r.varint()? as i64 as i32),
            (3, 2) => string = r.string()?,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(if type_ == 1 {
        json!(string)
    } else {
        json!(int)
    })
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The protobuf wire format, reading only.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, ApiError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(bad("it ends inside a number"));
            };
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad("a number is longer than 10 bytes"))
    }

    fn key(&mut self) -> Result<(u32, u8), ApiError> {
        let k = self.varint()?;
        let tag = u32::try_from(k >> 3).map_err(|_| bad("a field number is too large"))?;
        Ok((tag, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Result<&'a [u8], ApiError> {
        let len = usize::try_from(self.varint()?).map_err(|_| bad("a length is too large"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| bad("a field runs past the end of the body"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn string(&mut self) -> Result<String, ApiError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| bad("a string is not UTF-8"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), ApiError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.advance(8),
            2 => self.bytes().map(drop),
            5 => self.advance(4),
            w => Err(bad(format!("unknown wire type {w}"))),
        }
    }

    fn advance(&mut self, n: usize) -> Result<(), ApiError> {
        if self.pos + n > self.buf.len() {
            return Err(bad("a field runs past the end of the body"));
        }
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny protobuf writer for the tests.
    #[derive(Default)]
    pub(crate) struct W(pub Vec<u8>);

    impl W {
        fn varint(&mut self, mut v: u64) -> &mut Self {
            loop {
                let b = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    self.0.push(b);
                    return self;
                }
                self.0.push(b | 0x80);
            }
        }
        pub fn int(&mut self, tag: u32, v: i64) -> &mut Self {
            self.varint(u64::from(tag) << 3).varint(v as u64)
        }
        pub fn bytes(&mut self, tag: u32, b: &[u8]) -> &mut Self {
            self.varint((u64::from(tag) << 3) | 2)
                .varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        pub fn str(&mut self, tag: u32, s: &str) -> &mut Self {
            self.bytes(tag, s.as_bytes())
        }
        pub fn msg(&mut self, tag: u32, m: &W) -> &mut Self {
            self.bytes(tag, &m.0)
        }
        pub fn entry(&mut self, tag: u32, k: &str, v: &[u8]) -> &mut Self {
            let mut e = W::default();
            e.str(1, k).bytes(2, v);
            self.msg(tag, &e)
        }
    }

    pub(crate) fn envelope(api_version: &str, kind: &str, raw: &W) -> Vec<u8> {
        let mut tm = W::default();
        tm.str(1, api_version).str(2, kind);
        let mut u = W::default();
        u.msg(1, &tm).msg(2, raw);
        [MAGIC, &u.0].concat()
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        let cases: [(&[u8], &str); 5] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"\xff\xfe", "//4="),
        ];
        for (input, want) in cases {
            assert_eq!(base64(input), want);
        }
    }

    #[test]
    fn bad_bodies_are_errors_not_panics() {
        let cases: [&[u8]; 5] = [
            b"",
            b"k8s",
            b"k8s\0\x0a\xff",
            b"k8s\0\x0a\x05\x0a",
            b"{\"json\": true}",
        ];
        for body in cases {
            assert_eq!(decode(body).unwrap_err().code, 400, "{body:?}");
        }
        // A kind without a table is refused by media type, naming it.
        let e = decode(&envelope("batch/v1", "Job", &W::default())).unwrap_err();
        assert_eq!(e.code, 415);
        assert!(e.message.contains("batch/v1 Job"), "{}", e.message);
    }

    #[test]
    fn scalars_maps_times_and_int_or_strings_decode_as_json() {
        // A ConfigMap as kubectl sends it: metadata with a zero creationTimestamp and
        // empty strings, data and binaryData maps.
        let mut meta = W::default();
        meta.str(1, "demo")
            .str(2, "")
            .str(3, "")
            .int(7, 0)
            .msg(8, &W::default())
            .entry(11, "app", b"x");
        let mut cm = W::default();
        cm.msg(1, &meta)
            .entry(2, "k", b"v")
            .entry(3, "bin", b"\x00\x01");
        let obj = decode(&envelope("v1", "ConfigMap", &cm)).unwrap();
        assert_eq!(
            obj,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "demo", "labels": {"app": "x"}},
                   "data": {"k": "v"}, "binaryData": {"bin": "AAE="}})
        );
        // IntOrString and Time.
        let mut port = W::default();
        let mut target = W::default();
        target.int(1, 1).str(3, "http");
        port.str(1, "web").str(2, "TCP").int(3, 80).msg(4, &target);
        let mut spec = W::default();
        spec.msg(1, &port).str(4, "ClusterIP");
        let mut svc = W::default();
        let mut meta = W::default();
        let mut t = W::default();
        t.int(1, 1_700_000_000);
        meta.str(1, "web").msg(8, &t);
        svc.msg(1, &meta).msg(2, &spec);
        let obj = decode(&envelope("v1", "Service", &svc)).unwrap();
        assert_eq!(
            obj["spec"]["ports"],
            json!([{"name": "web", "protocol": "TCP", "port": 80, "targetPort": "http"}])
        );
        assert_eq!(obj["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        // An unknown field is refused, naming it.
        let mut odd = W::default();
        odd.int(99, 1);
        let e = decode(&envelope("v1", "ConfigMap", &odd)).unwrap_err();
        assert!(e.message.contains("field 99 of ConfigMap"), "{}", e.message);
    }
}
