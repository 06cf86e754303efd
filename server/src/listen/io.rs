//! The I/O hyper serves a connection over: the TCP stream (or the TLS
//! stream over it), watched. Writes
//! that make no progress for the write timeout fail (a client that stops
//! reading its answer cannot hold the connection; at the cap it may be
//! evicted after a second); the answers' bytes are
//! followed (see [`super::frames`]) to tell when the connection is idle; and
//! an answer hyper starts by itself, for a request head it could not parse,
//! is held back, to be replaced by a problem.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::table::Conn;

/// The bytes kept of hyper's own answer: its status line.
const OWN_ANSWER_KEEP: usize = 64;

/// A connection's stream, as hyper reads and writes it.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    stream: S,
    conn: Arc<Conn>,
    write_timeout: Duration,
    /// See [`super::STALL_GRACE`].
    stall_grace: Duration,
    /// Writing makes no progress: the timer (to the end of the stall grace,
    /// then to the write timeout) and whether the grace ended.
    stall: Option<(Pin<Box<Sleep>>, bool)>,
    /// The start of the answer hyper began by itself (held back), if any.
    own_answer: Option<Vec<u8>>,
    /// Whether a line feed was read yet: the first request line ended.
    line_feed_read: bool,
    /// Whether a write failed for making no progress.
    write_timed_out: bool,
}

impl<S> Watched<S> {
    /// Watches `stream`, the connection `conn`.
    pub(crate) fn new(
        stream: S,
        conn: Arc<Conn>,
        write_timeout: Duration,
        stall_grace: Duration,
    ) -> Watched<S> {
        Watched {
            stream,
            conn,
            write_timeout,
            stall_grace,
            stall: None,
            own_answer: None,
            line_feed_read: false,
            write_timed_out: false,
        }
    }

    /// The stream itself, to write on it directly.
    pub(crate) fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The status of the answer hyper wrote by itself (held back), if it did.
    pub(crate) fn own_answer(&self) -> Option<u16> {
        let answer = self.own_answer.as_ref()?;
        // `HTTP/1.1 431 Request Header Fields Too Large`
        let status = answer.get(9..12).and_then(|s| std::str::from_utf8(s).ok());
        Some(status.and_then(|s| s.parse().ok()).unwrap_or(400))
    }

    /// Whether the connection's first request line never ended: no request
    /// was dispatched and no line feed read.
    pub(crate) fn first_line_unfinished(&self) -> bool {
        !self.line_feed_read && self.conn.frames().dispatched() == 0
    }

    /// Whether writing failed for making no progress for the write timeout.
    pub(crate) fn write_timed_out(&self) -> bool {
        self.write_timed_out
    }

    /// Writing progressed: a stall, if there was one, is over.
    fn progressed(&mut self) {
        if let Some((_, true)) = self.stall.take() {
            self.conn.write_resumed();
        }
    }

    /// A write that cannot progress: an error once none has for the write
    /// timeout (the timer runs from the first write that could not, until
    /// one writes a byte); after the stall grace the connection may be
    /// evicted at the cap ([`Conn::write_stalled`]).
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let (timeout, grace) = (self.write_timeout, self.stall_grace);
        let (timer, graced) = self
            .stall
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(grace.min(timeout))), false));
        loop {
            ready!(timer.as_mut().poll(cx));
            if *graced || grace >= timeout {
                break;
            }
            *graced = true;
            self.conn.write_stalled();
            let deadline = timer.deadline() + (timeout - grace);
            timer.as_mut().reset(deadline);
        }
        self.write_timed_out = true;
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading its answer",
        ))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        if !this.line_feed_read && buf.filled()[before..].contains(&b'\n') {
            this.line_feed_read = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if let Some(held) = &mut this.own_answer {
            let room = OWN_ANSWER_KEEP.saturating_sub(held.len());
            held.extend_from_slice(&buf[..buf.len().min(room)]);
            return Poll::Ready(Ok(buf.len()));
        }
        let (ours, ahead) = this.conn.frames().ahead(buf);
        if ours == 0 {
            // No request is waiting for this answer: hyper's own.
            this.own_answer = Some(buf[..buf.len().min(OWN_ANSWER_KEEP)].to_vec());
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut this.stream).poll_write(cx, &buf[..ours]) {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    this.progressed();
                }
                this.conn.wrote(&buf[..written], (ours, ahead));
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(error)) => Poll::Ready(Err(error)),
            Poll::Pending => this.stalled(cx).map(Err),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_flush(cx) {
            Poll::Pending => this.stalled(cx).map(Err),
            Poll::Ready(Ok(())) => {
                this.progressed();
                Poll::Ready(Ok(()))
            }
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.own_answer.is_some() {
            // The problem that replaces it is still to be written.
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.stream).poll_shutdown(cx) {
            Poll::Pending => this.stalled(cx).map(Err),
            ready => ready,
        }
    }
}
