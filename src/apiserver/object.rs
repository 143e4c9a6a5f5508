//! Small helpers over objects as JSON values: the generic apiserver handles every registered
//! resource the same way and only decodes into a typed object where a kind has its own rules.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub(crate) fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata")?.as_object()
}

pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = Value::Object(Map::new());
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)?.get(field)?.as_str()
}

pub(crate) fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

pub(crate) fn labels(obj: &Value) -> BTreeMap<String, String> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn is_deleting(obj: &Value) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// The value at a dotted path (`spec.nodeName`), as a string for field selectors (borrowed:
/// watch filters ask this of every change).
pub(crate) fn field_string<'a>(obj: &'a Value, path: &str) -> Option<Cow<'a, str>> {
    let mut v = obj;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

pub(crate) fn timestamp(t: k8s_openapi::jiff::Timestamp) -> Value {
    // k8s: metav1.Time is RFC 3339 with second precision
    Value::String(
        rfc3339_seconds(t.as_second())
            .unwrap_or_else(|| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
    )
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time from 1970 to 9999 (`None` outside): what strftime
/// writes, without its parser and formatter (a timestamp is written on most API writes).
pub(crate) fn rfc3339_seconds(secs: i64) -> Option<String> {
    if !(0..253_402_300_800).contains(&secs) {
        return None;
    }
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant, chrono-compatible algorithms).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = [0u8; 20];
    let mut put = |at: usize, width: usize, mut n: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, rem / 3600);
    put(14, 2, rem / 60 % 60);
    put(17, 2, rem % 60);
    for (i, c) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ] {
        out[i] = c;
    }
    Some(String::from_utf8(out.to_vec()).expect("ASCII"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    #[test]
    fn timestamps_are_what_strftime_writes() {
        let strftime = |s: i64| {
            Timestamp::from_second(s)
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        // Epoch, leap days, century rules, month ends, the last time jiff has, and a
        // spread of seconds in between.
        let mut cases = vec![
            0,
            59,
            86_399,
            86_400,
            951_782_400,     // 2000-02-29
            951_868_799,     // 2000-02-29T23:59:59
            4_107_542_400,   // 2100-03-01 (2100 is not a leap year)
            1_704_067_199,   // 2023-12-31T23:59:59
            253_402_207_200, // jiff's last second
        ];
        let mut s: i64 = 1;
        while s < 253_402_207_200 {
            cases.push(s);
            s = s * 3 + 7_919;
        }
        for secs in cases {
            assert_eq!(rfc3339_seconds(secs), Some(strftime(secs)), "{secs}");
            assert_eq!(
                timestamp(Timestamp::from_second(secs).unwrap()),
                Value::String(strftime(secs))
            );
        }
        // Outside 1970..=9999 the formatter is strftime's.
        assert_eq!(rfc3339_seconds(-1), None);
        assert_eq!(
            timestamp(Timestamp::from_second(-1).unwrap()),
            Value::String(strftime(-1))
        );
    }
}
