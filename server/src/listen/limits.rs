//! The HTTP layer's limits on a request head, and the problems it answers
//! itself.

use myna_core::{Code, Problem};

/// The most bytes of a request head (request line and header fields) hyper
/// buffers before it gives up: room for a head at our limits and for a URI
/// just over the `http` crate's cap of 65,534 bytes (so hyper parses such a
/// head to its end and says "URI too long" rather than "too large"), and
/// what a hostile client can make a connection hold while it sends a head.
pub const HEAD_BUFFER_BYTES: usize = 80 * 1024;

/// 503: every connection the server may hold is busy with a request.
pub fn too_many_connections() -> Problem {
    Problem::new(
        Code::Unavailable,
        "The server is answering as many requests as it can hold; retry later.",
    )
}
