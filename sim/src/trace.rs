//! The trace: one JSON line per event of note, and a hash of them all. The same scenario and
//! seed give the same trace, byte for byte.

use std::time::Duration;

use gantry::testkit::EPOCH;
use gantry::time::Time;
use serde_json::{json, Value};

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
        let line = json!({"t": format!("{}.{:09}", t.as_secs(), t.subsec_nanos()), "c": component, "e": kind, "d": detail}).to_string();
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
