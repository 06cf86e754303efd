//! Where each response starts and ends in the bytes hyper writes on a
//! connection, so the serve loop knows (1) when a connection is idle (every
//! request it dispatched is answered to the last byte) and (2) when hyper
//! writes an answer no request was dispatched for: its own bodiless error
//! (400, 414, 431) for a request head it could not parse, which the serve loop
//! replaces with a problem.
//!
//! It reads only what hyper itself wrote for our responses: a status line,
//! header lines, then a body framed by `Content-Length`, by chunks, or by the
//! end of the connection (none after a `HEAD` request, a 1xx, 204 or 304, or
//! a 2xx to `CONNECT`).

use std::collections::VecDeque;

use poem::http::Method;

/// The bytes kept of a head line that a write cut in two: enough for the
/// status line, `Content-Length` and `Transfer-Encoding`, which are all it
/// reads.
const LINE_KEEP: usize = 64;

/// The framing state of the answers written on one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct Frames {
    part: Part,
    /// The dispatched requests not answered yet.
    pending: VecDeque<Asked>,
    /// Requests dispatched on this connection so far.
    dispatched: u64,
}

/// The framing as it would be after some bytes ([`Frames::ahead`]), to be
/// taken once they are written ([`Frames::take`]). Made without a heap
/// allocation: a write is read once, on the hot path of every answer.
#[derive(Debug, Clone)]
pub(crate) struct Ahead {
    part: Part,
    /// How many of the pending requests those bytes answered.
    answered: usize,
    /// [`Frames::dispatched`] when it was made.
    dispatched: u64,
}

/// What a request's method means for the body of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asked {
    /// `HEAD`: never a body.
    Head,
    /// `CONNECT`: no body if successful.
    Connect,
    /// A body as its head says.
    Other,
}

#[derive(Debug, Clone)]
enum Part {
    /// A response head (or, before its first byte, between responses).
    Head(Head),
    /// This many more bytes of a body of known length.
    Length(u64),
    /// A chunked body.
    Chunked(Chunk),
    /// A body that ends with the connection.
    UntilClose,
}

impl Default for Part {
    fn default() -> Self {
        Part::Head(Head::default())
    }
}

#[derive(Debug, Clone, Default)]
struct Head {
    /// Whether any byte of it was written.
    started: bool,
    /// The start of a line a write cut (its first [`LINE_KEEP`] bytes).
    partial: Partial,
    /// Lines read so far (the first is the status line).
    lines: usize,
    status: u16,
    length: Option<u64>,
    chunked: bool,
}

/// The kept start of a head line that continues in the next write.
#[derive(Debug, Clone, Copy)]
struct Partial {
    bytes: [u8; LINE_KEEP],
    len: u8,
}

impl Default for Partial {
    fn default() -> Self {
        Partial {
            bytes: [0; LINE_KEEP],
            len: 0,
        }
    }
}

impl Partial {
    fn push(&mut self, text: &[u8]) {
        let len = usize::from(self.len);
        let keep = text.len().min(LINE_KEEP - len);
        self.bytes[len..len + keep].copy_from_slice(&text[..keep]);
        self.len += keep as u8;
    }
}

#[derive(Debug, Clone)]
enum Chunk {
    /// Reading a chunk-size line (hex digits, then maybe `;extensions`).
    Size { size: u64, digits: bool },
    /// This many more bytes of chunk data.
    Data(u64),
    /// The CR LF after chunk data: this many bytes left.
    DataEnd(u8),
    /// Trailer lines after the last chunk; `blank` while the line is empty.
    Trailer { blank: bool },
}

impl Frames {
    /// A request was handed to the service: an answer is due for it.
    pub(crate) fn dispatch(&mut self, method: &Method) {
        self.pending.push_back(match *method {
            Method::HEAD => Asked::Head,
            Method::CONNECT => Asked::Connect,
            _ => Asked::Other,
        });
        self.dispatched += 1;
    }

    /// Requests dispatched on this connection so far.
    pub(crate) fn dispatched(&self) -> u64 {
        self.dispatched
    }

    /// Whether every dispatched request has been answered to its last byte.
    pub(crate) fn idle(&self) -> bool {
        self.pending.is_empty() && matches!(&self.part, Part::Head(head) if !head.started)
    }

    /// How many of `bytes`, about to be written, belong to the answers of
    /// dispatched requests; the rest (from the returned offset) starts an
    /// answer nobody asked for. Does not change the state.
    #[cfg(test)]
    pub(crate) fn ours(&self, bytes: &[u8]) -> usize {
        self.ahead(bytes).0
    }

    /// [`Frames::ours`], with the framing as it will be once those bytes are
    /// written: what [`Frames::advance`] over them would make it, so that a
    /// write of all of them need not be read twice ([`Frames::take`]).
    pub(crate) fn ahead(&self, bytes: &[u8]) -> (usize, Ahead) {
        let mut ahead = Ahead {
            part: self.part.clone(),
            answered: 0,
            dispatched: self.dispatched,
        };
        let ours = read(&mut ahead.part, &self.pending, &mut ahead.answered, bytes);
        (ours, ahead)
    }

    /// Whether `ahead` was made from this state and can be taken as is
    /// (no request was dispatched since).
    pub(crate) fn is_current(&self, ahead: &Ahead) -> bool {
        self.dispatched == ahead.dispatched
    }

    /// The framing after all the bytes `ahead` was made for were written.
    pub(crate) fn take(&mut self, ahead: Ahead) {
        self.part = ahead.part;
        self.pending.drain(..ahead.answered.min(self.pending.len()));
    }

    /// Reads `bytes` that were written; returns how many of them belong to
    /// the answers of dispatched requests (see [`Frames::ours`]).
    pub(crate) fn advance(&mut self, bytes: &[u8]) -> usize {
        let mut answered = 0;
        let ours = read(&mut self.part, &self.pending, &mut answered, bytes);
        self.pending.drain(..answered.min(self.pending.len()));
        ours
    }
}

/// Reads `bytes` from framing `part`, where `pending[answered..]` are the
/// requests still to be answered: advances both, and returns how many of
/// the bytes belong to those answers.
fn read(part: &mut Part, pending: &VecDeque<Asked>, answered: &mut usize, bytes: &[u8]) -> usize {
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        match part {
            Part::Head(head) => {
                if !head.started {
                    if *answered >= pending.len() {
                        return at;
                    }
                    head.started = true;
                }
                let Some(end) = memchr::memchr(b'\n', rest) else {
                    head.partial.push(rest);
                    return bytes.len();
                };
                at += end + 1;
                let blank = if head.partial.len == 0 {
                    head.end_of_line(&rest[..end])
                } else {
                    let mut line = head.partial;
                    line.push(&rest[..end]);
                    head.partial = Partial::default();
                    head.end_of_line(&line.bytes[..usize::from(line.len)])
                };
                if blank {
                    *part = head.body(pending.get(*answered).copied(), answered);
                }
            }
            Part::Length(left) => {
                let used = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                *left -= used as u64;
                at += used;
                if *left == 0 {
                    *part = Part::default();
                }
            }
            Part::Chunked(chunk) => {
                let (used, done) = chunk.advance(rest);
                at += used;
                if done {
                    *part = Part::default();
                }
            }
            Part::UntilClose => at = bytes.len(),
        }
    }
    bytes.len()
}

impl Head {
    /// A head line ended (`line`, without its line feed); true if it was
    /// the blank line closing the head.
    fn end_of_line(&mut self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.lines += 1;
        if self.lines == 1 {
            // `HTTP/1.1 200 OK`
            self.status = line
                .get(9..12)
                .and_then(|code| std::str::from_utf8(code).ok())
                .and_then(|code| code.parse().ok())
                .unwrap_or(0);
            return false;
        }
        // Only two headers matter: the others' values are not looked at.
        match line.first() {
            None => return true,
            Some(b'c' | b'C' | b't' | b'T') => {}
            Some(_) => return false,
        }
        if let Some(colon) = memchr::memchr(b':', line) {
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                self.length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
                self.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        }
        false
    }

    /// The blank line after this head was read: what its body is. `asked`
    /// is the request it answers (counted in `answered` unless the head is
    /// an interim one).
    fn body(&self, asked: Option<Asked>, answered: &mut usize) -> Part {
        if (100..200).contains(&self.status) {
            // Interim (`100 Continue`): the final answer follows.
            return Part::default();
        }
        if asked.is_some() {
            *answered += 1;
        }
        let asked = asked.unwrap_or(Asked::Other);
        let bodiless = asked == Asked::Head
            || (asked == Asked::Connect && (200..300).contains(&self.status))
            || self.status == 204
            || self.status == 304;
        if bodiless {
            Part::default()
        } else if self.chunked {
            Part::Chunked(Chunk::Size {
                size: 0,
                digits: true,
            })
        } else {
            match self.length {
                Some(0) => Part::default(),
                Some(length) => Part::Length(length),
                None => Part::UntilClose,
            }
        }
    }
}

impl Chunk {
    /// Reads chunked framing; the bytes used, and whether the body ended.
    fn advance(&mut self, bytes: &[u8]) -> (usize, bool) {
        let mut at = 0;
        while at < bytes.len() {
            match self {
                Chunk::Data(left) => {
                    let used = (bytes.len() - at).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= used as u64;
                    at += used;
                    if *left == 0 {
                        *self = Chunk::DataEnd(2);
                    }
                    continue;
                }
                Chunk::DataEnd(left) => {
                    *left -= 1;
                    if *left == 0 {
                        *self = Chunk::Size {
                            size: 0,
                            digits: true,
                        };
                    }
                }
                Chunk::Size { size, digits } => match bytes[at] {
                    b'\n' if *size == 0 => *self = Chunk::Trailer { blank: true },
                    b'\n' => *self = Chunk::Data(*size),
                    byte if *digits && byte.is_ascii_hexdigit() => {
                        let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                        *size = size.saturating_mul(16).saturating_add(digit);
                    }
                    _ => *digits = false,
                },
                Chunk::Trailer { blank } => match bytes[at] {
                    b'\n' if *blank => return (at + 1, true),
                    b'\n' => *blank = true,
                    b'\r' => {}
                    _ => *blank = false,
                },
            }
            at += 1;
        }
        (at, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
        content-length: 2\r\ndate: Thu, 26 Nov 2026 15:59:33 GMT\r\n\r\n{}";
    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
        5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n";
    const HYPERS_OWN: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
        content-length: 0\r\ndate: Thu, 26 Nov 2026 15:59:33 GMT\r\n\r\n";

    /// Writes `bytes` in pieces of `piece` bytes; the offset where an
    /// answer nobody asked for starts, if any.
    fn written(frames: &mut Frames, bytes: &[u8], piece: usize) -> Option<usize> {
        for (i, chunk) in bytes.chunks(piece).enumerate() {
            let ours = frames.ours(chunk);
            assert_eq!(frames.advance(&chunk[..ours]), ours);
            if ours < chunk.len() {
                return Some(i * piece + ours);
            }
        }
        None
    }

    #[test]
    fn answers_to_dispatched_requests_are_ours_in_any_pieces() {
        for piece in [1, 2, 7, 64, 4096] {
            let mut frames = Frames::default();
            assert!(frames.idle());
            frames.dispatch(&Method::GET);
            assert!(!frames.idle());
            assert_eq!(written(&mut frames, JSON, piece), None);
            assert!(frames.idle(), "piece {piece}");
            frames.dispatch(&Method::GET);
            let mut interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            interim.extend_from_slice(CHUNKED);
            assert_eq!(written(&mut frames, &interim, piece), None);
            assert!(frames.idle(), "piece {piece}");
            // A head line longer than what is kept of a cut one.
            frames.dispatch(&Method::GET);
            let long = format!(
                "HTTP/1.1 200 OK\r\nx-long: {}\r\nContent-Length: 3\r\n\r\nabc",
                "a".repeat(200)
            );
            assert_eq!(written(&mut frames, long.as_bytes(), piece), None);
            assert!(frames.idle(), "piece {piece}");
            // A HEAD answer has a length but no body.
            frames.dispatch(&Method::HEAD);
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
            assert_eq!(written(&mut frames, head, piece), None);
            assert!(frames.idle(), "piece {piece}");
            // Nor has a successful CONNECT's.
            frames.dispatch(&Method::CONNECT);
            assert_eq!(written(&mut frames, head, piece), None);
            assert!(frames.idle(), "piece {piece}");
            assert_eq!(frames.dispatched(), 5);
        }
    }

    #[test]
    fn an_answer_nobody_asked_for_is_found_where_it_starts() {
        let mut frames = Frames::default();
        assert_eq!(frames.ours(HYPERS_OWN), 0);
        // After an answer, in the same write (pipelined requests).
        frames.dispatch(&Method::GET);
        let mut both = JSON.to_vec();
        both.extend_from_slice(HYPERS_OWN);
        assert_eq!(frames.ours(&both), JSON.len());
        assert!(!frames.idle(), "ours() changes nothing");
        assert_eq!(frames.advance(&both[..JSON.len()]), JSON.len());
        assert!(frames.idle());
        assert_eq!(frames.ours(&both[JSON.len()..]), 0);
        // While a body is still being written, nothing is hyper's own.
        frames.dispatch(&Method::GET);
        let body_start = JSON.len() - 1;
        assert_eq!(frames.advance(&JSON[..body_start]), body_start);
        assert!(!frames.idle());
        assert_eq!(frames.ours(b"}"), 1);
    }

    #[test]
    fn framing_headers_are_read_whatever_their_case_and_spacing() {
        let mut frames = Frames::default();
        frames.dispatch(&Method::GET);
        let mut both = b"HTTP/1.1 200 OK\r\nX-Other: a,b\r\nContent-Length:  2 \r\n\r\n{}".to_vec();
        let first = both.len();
        frames.dispatch(&Method::GET);
        both.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
        );
        let (ours, ahead) = frames.ahead(&both);
        assert_eq!(ours, both.len());
        let mut after = frames.clone();
        after.take(ahead);
        assert!(after.idle(), "both bodies read to their last byte");
        // Cut after the first answer's body: the second one's head is next.
        let (_, ahead) = frames.ahead(&both[..first]);
        let mut partway = frames.clone();
        partway.take(ahead);
        assert!(!partway.idle(), "the second answer is due");
        assert!(!frames.idle(), "ahead() changes nothing");
    }

    #[test]
    fn a_body_without_length_lasts_until_the_connection_ends() {
        let mut frames = Frames::default();
        frames.dispatch(&Method::GET);
        let mut bytes = b"HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 400 Bad Request\r\n\r\n".to_vec();
        bytes.extend_from_slice(HYPERS_OWN);
        assert_eq!(frames.ours(&bytes), bytes.len());
    }
}
