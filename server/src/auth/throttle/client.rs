//! Where a password check comes from: the client address the limits
//! count against.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use poem::Request;
use poem::http::HeaderName;

/// Where a request comes from, as far as limits go: an IPv4 address, or an
/// IPv6 /64 (one subscriber's network: its addresses are free to pick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 address (IPv4-mapped IPv6 addresses included).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
    /// No IP address (a test client, a Unix socket): one shared bucket.
    Unknown,
}

impl ClientKey {
    /// The key of an IP address.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => ClientKey::V6((u128::from(v6) >> 64) as u64),
        }
    }

    /// The client of `request`: the TCP peer's address, or, behind a
    /// reverse proxy (`header`, e.g. `X-Forwarded-For`), the right-most
    /// address of that header's last line: the one the proxy appended
    /// (what the client itself sent stands to its left and is not
    /// believed). A missing or unreadable header falls back to the peer.
    pub fn of_request(request: &Request, header: Option<&HeaderName>) -> ClientKey {
        let forwarded = header
            .and_then(|name| request.headers().get_all(name).iter().next_back())
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| parse_ip(last.trim()));
        if let Some(ip) = forwarded {
            return ClientKey::of(ip);
        }
        request
            .remote_addr()
            .as_socket_addr()
            .map_or(ClientKey::Unknown, |addr| ClientKey::of(addr.ip()))
    }
}

/// An address as proxies write it: `ip`, `ip:port` or `[ipv6]:port`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|a| a.ip()))
}
