//! The trace: one JSON line per event of note, and a hash of them all. The same scenario and
//! seed give the same trace, byte for byte.

use std::io::Write;
use std::time::Duration;

use gantry::testkit::EPOCH;
use gantry::time::Time;
use serde_json::Value;

pub struct Trace {
    pub lines: Vec<String>,
    /// Whether `lines` keeps each line; the hash covers them either way.
    pub keep_lines: bool,
    hash: u64,
}

impl Default for Trace {
    fn default() -> Self {
        Trace {
            lines: Vec::new(),
            keep_lines: true,
            hash: 0,
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

impl Trace {
    pub fn line(&mut self, at: Time, component: &str, kind: &str, detail: Value) {
        let t: Duration = at.since(EPOCH);
        // The bytes of `{"c":..,"d":..,"e":..,"t":..}` as serde_json writes that object (keys
        // sorted, compact), without building it.
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"c\":");
        serde_json::to_writer(&mut out, component).expect("strings serialize");
        out.extend_from_slice(b",\"d\":");
        serde_json::to_writer(&mut out, &detail).expect("values serialize");
        out.extend_from_slice(b",\"e\":");
        serde_json::to_writer(&mut out, kind).expect("strings serialize");
        let _ = write!(out, ",\"t\":\"{}.{:09}\"}}", t.as_secs(), t.subsec_nanos());
        let line = String::from_utf8(out).expect("serde_json writes UTF-8");
        if self.hash == 0 {
            self.hash = FNV_OFFSET;
        }
        for b in line.bytes().chain(std::iter::once(b'\n')) {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
        if self.keep_lines {
            self.lines.push(line);
        }
    }

    /// FNV-1a over every line (with its newline), as 16 hex digits.
    pub fn hash(&self) -> String {
        format!(
            "{:016x}",
            if self.hash == 0 {
                FNV_OFFSET
            } else {
                self.hash
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_the_json_objects_serde_json_writes() {
        let mut trace = Trace::default();
        let at = EPOCH + Duration::from_nanos(3_000_000_042);
        let cases = [
            (
                "kubelet/n1",
                "api",
                json!("update pods/status default/a 200"),
            ),
            ("x\"y\\z\u{1}é", "e\nk", json!({"b": [1, null], "a": "é"})),
        ];
        for (c, e, d) in cases {
            trace.line(at, c, e, d.clone());
            let want = json!({"t": "3.000000042", "c": c, "e": e, "d": d}).to_string();
            assert_eq!(trace.lines.last().unwrap(), &want);
        }
    }
}
