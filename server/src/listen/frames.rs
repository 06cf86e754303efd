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

/// The bytes kept of each head line: enough for the status line,
/// `Content-Length` and `Transfer-Encoding`, which are all it reads.
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
    /// The start of the line being read.
    line: Vec<u8>,
    /// Lines read so far (the first is the status line).
    lines: usize,
    status: u16,
    length: Option<u64>,
    chunked: bool,
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
    /// write of all of them need not be read twice.
    pub(crate) fn ahead(&self, bytes: &[u8]) -> (usize, Frames) {
        let mut after = self.clone();
        let ours = after.advance(bytes);
        (ours, after)
    }

    /// Reads `bytes` that were written; returns how many of them belong to
    /// the answers of dispatched requests (see [`Frames::ours`]).
    pub(crate) fn advance(&mut self, bytes: &[u8]) -> usize {
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            match &mut self.part {
                Part::Head(head) => {
                    if !head.started {
                        if self.pending.is_empty() {
                            return at;
                        }
                        head.started = true;
                    }
                    let (used, line_done) = match rest.iter().position(|b| *b == b'\n') {
                        Some(end) => (end + 1, true),
                        None => (rest.len(), false),
                    };
                    let room = LINE_KEEP.saturating_sub(head.line.len());
                    let text = &rest[..used - usize::from(line_done)];
                    head.line.extend_from_slice(&text[..text.len().min(room)]);
                    at += used;
                    if line_done && self.end_of_line() {
                        self.end_of_head();
                    }
                }
                Part::Length(left) => {
                    let used = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= used as u64;
                    at += used;
                    if *left == 0 {
                        self.part = Part::default();
                    }
                }
                Part::Chunked(chunk) => {
                    let (used, done) = chunk.advance(rest);
                    at += used;
                    if done {
                        self.part = Part::default();
                    }
                }
                Part::UntilClose => at = bytes.len(),
            }
        }
        bytes.len()
    }

    /// A head line ended; true if it was the blank line closing the head.
    fn end_of_line(&mut self) -> bool {
        let Part::Head(head) = &mut self.part else {
            return false;
        };
        let line = head.line.strip_suffix(b"\r").unwrap_or(&head.line);
        head.lines += 1;
        let blank = line.is_empty();
        if head.lines == 1 {
            // `HTTP/1.1 200 OK`
            head.status = line
                .get(9..12)
                .and_then(|code| std::str::from_utf8(code).ok())
                .and_then(|code| code.parse().ok())
                .unwrap_or(0);
        } else if let Some(colon) = line.iter().position(|b| *b == b':') {
            // Only two headers matter: the others' values are not looked at.
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            if name.eq_ignore_ascii_case(b"content-length") {
                head.length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok());
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                let last = value.rsplit(|b| *b == b',').next().unwrap_or_default();
                head.chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        }
        // The buffer is kept for the next line.
        head.line.clear();
        head.lines > 1 && blank
    }

    /// The blank line after a head: what its body is.
    fn end_of_head(&mut self) {
        let Part::Head(head) = &self.part else {
            return;
        };
        if (100..200).contains(&head.status) {
            // Interim (`100 Continue`): the final answer follows.
            self.part = Part::default();
            return;
        }
        let asked = self.pending.pop_front().unwrap_or(Asked::Other);
        let bodiless = asked == Asked::Head
            || (asked == Asked::Connect && (200..300).contains(&head.status))
            || head.status == 204
            || head.status == 304;
        self.part = if bodiless {
            Part::default()
        } else if head.chunked {
            Part::Chunked(Chunk::Size {
                size: 0,
                digits: true,
            })
        } else {
            match head.length {
                Some(0) => Part::default(),
                Some(length) => Part::Length(length),
                None => Part::UntilClose,
            }
        };
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
            // A HEAD answer has a length but no body.
            frames.dispatch(&Method::HEAD);
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n";
            assert_eq!(written(&mut frames, head, piece), None);
            assert!(frames.idle(), "piece {piece}");
            // Nor has a successful CONNECT's.
            frames.dispatch(&Method::CONNECT);
            assert_eq!(written(&mut frames, head, piece), None);
            assert!(frames.idle(), "piece {piece}");
            assert_eq!(frames.dispatched(), 4);
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
        let (ours, after) = frames.ahead(&both);
        assert_eq!(ours, both.len());
        assert!(after.idle(), "both bodies read to their last byte");
        // Cut after the first answer's body: the second one's head is next.
        let (_, partway) = frames.ahead(&both[..first]);
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
