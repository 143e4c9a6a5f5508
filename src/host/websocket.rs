//! The server side of WebSocket (RFC 6455) as `kubectl exec` speaks it to the node agent's
//! /exec endpoint, sans-IO: the handshake's accept key, frames in and out, and Kubernetes'
//! channel protocol on top (k8s: k8s.io/apimachinery/pkg/util/httpstream/wsstream and
//! pkg/util/remotecommand). Small enough to keep here rather than add a WebSocket crate and
//! its SHA-1 and base64 dependencies (docs/decisions.md).

/// The channel protocols served, most preferred first (k8s: v5 adds closing one channel).
pub const PROTOCOL_V5: &str = "v5.channel.k8s.io";
pub const PROTOCOL_V4: &str = "v4.channel.k8s.io";

/// k8s: remotecommand's stream ids, the first byte of every binary message.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// k8s (v5): `[255, channel]` closes one channel (the client's stdin at its EOF).
pub const CLOSE_CHANNEL: u8 = 255;

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;

/// Larger messages are refused (stdin arrives in pieces of 32 KiB from client-go).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// The protocol to answer with: the first of the client's that is served (client-go lists v5
/// before v4). `offered` are the Sec-WebSocket-Protocol header values.
pub fn choose_protocol<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    offered
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| [PROTOCOL_V5, PROTOCOL_V4].into_iter().find(|s| *s == p))
}

/// Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2).
pub fn accept_key(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    crate::apiserver::protobuf::base64(&sha1(format!("{}{GUID}", key.trim()).as_bytes()))
}

/// One message as the server sends it: unmasked, in one frame.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A binary message on a channel: the channel's byte, then the data.
pub fn channel_message(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    frame(OP_BINARY, &payload)
}

pub fn pong(data: &[u8]) -> Vec<u8> {
    frame(OP_PONG, data)
}

/// A close frame with a status code (1000: normal closure).
pub fn close(code: u16) -> Vec<u8> {
    frame(OP_CLOSE, &code.to_be_bytes())
}

/// What the client sent, message by message.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// Data for a channel (stdin, resize).
    Data {
        channel: u8,
        data: Vec<u8>,
    },
    /// v5: the client closed a channel.
    CloseChannel(u8),
    Ping(Vec<u8>),
    Close,
}

/// Reassembles the client's frames (masked, possibly fragmented) into messages.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// A fragmented message so far: its opcode and data.
    partial: Option<(u8, Vec<u8>)>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, `None` until one has arrived; an error ends the connection.
    pub fn message(&mut self) -> Result<Option<Incoming>, String> {
        loop {
            let Some((fin, opcode, payload)) = self.frame()? else {
                return Ok(None);
            };
            let message = match opcode {
                OP_PING => return Ok(Some(Incoming::Ping(payload))),
                OP_PONG => continue,
                OP_CLOSE => return Ok(Some(Incoming::Close)),
                OP_CONTINUATION => {
                    let Some((op, mut data)) = self.partial.take() else {
                        return Err("continuation frame without a message".into());
                    };
                    data.extend_from_slice(&payload);
                    if data.len() > MAX_MESSAGE {
                        return Err("message too large".into());
                    }
                    if !fin {
                        self.partial = Some((op, data));
                        continue;
                    }
                    (op, data)
                }
                OP_TEXT | OP_BINARY if !fin => {
                    self.partial = Some((opcode, payload));
                    continue;
                }
                OP_TEXT | OP_BINARY => (opcode, payload),
                other => return Err(format!("unknown opcode {other}")),
            };
            return Ok(Some(channel_data(message.0, message.1)?));
        }
    }

    /// One frame off the buffer, unmasked.
    fn frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, String> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (fin, opcode, masked) = (b[0] & 0x80 != 0, b[0] & 0x0F, b[1] & 0x80 != 0);
        let (len, mut at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().expect("8")), 10),
            126 | 127 => return Ok(None),
            n => (u64::from(n), 2),
        };
        if len > MAX_MESSAGE as u64 {
            return Err("frame too large".into());
        }
        let len = len as usize;
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            at += 4;
            Some([b[at - 4], b[at - 3], b[at - 2], b[at - 1]])
        } else {
            None
        };
        if b.len() < at + len {
            return Ok(None);
        }
        let mut payload: Vec<u8> = self.buf.drain(..at + len).skip(at).collect();
        if let Some(mask) = mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
        }
        Ok(Some((fin, opcode, payload)))
    }
}

/// k8s: every remote command message is binary and starts with its channel.
fn channel_data(opcode: u8, mut data: Vec<u8>) -> Result<Incoming, String> {
    if opcode != OP_BINARY {
        return Err("remote command messages are binary".into());
    }
    match data.first().copied() {
        None => Err("empty message".into()),
        Some(CLOSE_CHANNEL) if data.len() == 2 => Ok(Incoming::CloseChannel(data[1])),
        Some(CLOSE_CHANNEL) => Err("a channel close names one channel".into()),
        Some(channel) => {
            data.remove(0);
            Ok(Incoming::Data { channel, data })
        }
    }
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().expect("4 bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, t);
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, x) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's frame: masked, as RFC 6455 requires.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 65535 => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn sha1_and_base64_known_values() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let cases: &[(&[u8], &str)] = &[
            (b"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (&[b'a'; 1000], "291e9a6c66994949b57ba5e650361e98fc36b1ba"),
        ];
        for (input, want) in cases {
            assert_eq!(hex(&sha1(input)), *want, "{}", input.len());
        }
        for (input, want) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v")] {
            assert_eq!(crate::apiserver::protobuf::base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn protocols_are_chosen_in_the_clients_order() {
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["v5.channel.k8s.io, v4.channel.k8s.io"], Some(PROTOCOL_V5)),
            (
                &["v4.channel.k8s.io", "v5.channel.k8s.io"],
                Some(PROTOCOL_V4),
            ),
            (
                &["base64.channel.k8s.io,v4.channel.k8s.io"],
                Some(PROTOCOL_V4),
            ),
            (&["channel.k8s.io"], None),
            (&[], None),
        ];
        for (offered, want) in cases {
            assert_eq!(
                choose_protocol(offered.iter().copied()),
                *want,
                "{offered:?}"
            );
        }
    }

    #[test]
    fn client_messages_are_decoded_across_reads_and_fragments() {
        let big = vec![7u8; 70_000];
        let mut stdin_big = vec![STDIN];
        stdin_big.extend_from_slice(&big);
        let mut wire = Vec::new();
        wire.extend(client_frame(true, OP_BINARY, &[STDIN, b'h', b'i']));
        wire.extend(client_frame(true, OP_PING, b"p"));
        // One message in two fragments, a pong between them (control frames may interleave).
        wire.extend(client_frame(false, OP_BINARY, &[STDIN, b'a']));
        wire.extend(client_frame(true, OP_PONG, b""));
        wire.extend(client_frame(true, OP_CONTINUATION, b"b"));
        wire.extend(client_frame(true, OP_BINARY, &stdin_big));
        wire.extend(client_frame(true, OP_BINARY, &[CLOSE_CHANNEL, STDIN]));
        wire.extend(client_frame(true, OP_CLOSE, &1000u16.to_be_bytes()));
        let mut d = Decoder::default();
        let mut got = Vec::new();
        // Byte by byte for the small ones, then the rest at once.
        for chunk in wire.chunks(3) {
            d.push(chunk);
            while let Some(m) = d.message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                Incoming::Data {
                    channel: STDIN,
                    data: b"hi".to_vec()
                },
                Incoming::Ping(b"p".to_vec()),
                Incoming::Data {
                    channel: STDIN,
                    data: b"ab".to_vec()
                },
                Incoming::Data {
                    channel: STDIN,
                    data: big
                },
                Incoming::CloseChannel(STDIN),
                Incoming::Close,
            ]
        );
    }

    #[test]
    fn protocol_errors_are_refused() {
        let cases: &[(Vec<u8>, &str)] = &[
            (client_frame(true, OP_TEXT, b"\x00hi"), "binary"),
            (client_frame(true, OP_BINARY, b""), "empty"),
            (client_frame(true, OP_CONTINUATION, b"x"), "continuation"),
            (
                client_frame(true, OP_BINARY, &[CLOSE_CHANNEL]),
                "one channel",
            ),
            (client_frame(true, 0x3, b"x"), "opcode"),
        ];
        for (wire, want) in cases {
            let mut d = Decoder::default();
            d.push(wire);
            let err = d.message().unwrap_err();
            assert!(err.contains(want), "{err} (want {want})");
        }
    }

    #[test]
    fn server_frames_carry_their_length() {
        for n in [0usize, 125, 126, 65535, 65536] {
            let f = channel_message(STDOUT, &vec![1u8; n]);
            let header = match n + 1 {
                m if m < 126 => 2,
                m if m <= 65535 => 4,
                _ => 10,
            };
            assert_eq!(f.len(), header + n + 1, "{n}");
            assert_eq!(f[0], 0x82);
            assert_eq!(f[header], STDOUT);
        }
        assert_eq!(close(1000), vec![0x88, 2, 0x03, 0xE8]);
        assert_eq!(pong(b"x"), vec![0x8A, 1, b'x']);
    }
}
