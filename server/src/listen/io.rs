//! The I/O hyper serves a connection over: the TCP stream, watched. Writes
//! that make no progress for the write timeout fail (a client that stops
//! reading its answer cannot hold the connection); the answers' bytes are
//! followed (see [`super::frames`]) to tell when the connection is idle.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::table::Conn;

/// A connection's stream, as hyper reads and writes it.
#[derive(Debug)]
pub(crate) struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
    write_timeout: Duration,
    /// Since when writing makes no progress.
    stall: Option<Pin<Box<Sleep>>>,
    /// Whether a write failed for making no progress.
    write_timed_out: bool,
}

impl Watched {
    /// Watches `stream`, the connection `conn`.
    pub(crate) fn new(stream: TcpStream, conn: Arc<Conn>, write_timeout: Duration) -> Watched {
        Watched {
            stream,
            conn,
            write_timeout,
            stall: None,
            write_timed_out: false,
        }
    }

    /// The stream itself, to write on it directly.
    pub(crate) fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Whether writing failed for making no progress for the write timeout.
    pub(crate) fn write_timed_out(&self) -> bool {
        self.write_timed_out
    }

    /// A write that cannot progress: an error once none has for the write
    /// timeout (the timer runs from the first write that could not, until
    /// one writes a byte).
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.write_timeout;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stall.as_mut().poll(cx));
        self.write_timed_out = true;
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client stopped reading its answer",
        ))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        match Pin::new(&mut this.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(written)) => {
                this.conn.wrote(&buf[..written]);
                if written > 0 {
                    this.stall = None;
                }
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
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_shutdown(cx) {
            Poll::Pending => this.stalled(cx).map(Err),
            ready => ready,
        }
    }
}
