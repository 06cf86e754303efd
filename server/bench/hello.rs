//! The baseline of `scripts/bench-server`: poem's hello world on the same
//! runtime and server setup as myna-server, so the ratio of the two shows
//! what Myna's own work costs. Usage: `bench-hello [ADDRESS]` (default
//! `127.0.0.1:0`); logs the address like myna-server does.

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Route, Server, get, handler};

#[handler]
fn hello() -> &'static str {
    "Hello, world!"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let acceptor = TcpListener::bind(listen).into_acceptor().await?;
    for addr in acceptor.local_addr() {
        if let Some(addr) = addr.as_socket_addr() {
            eprintln!("bench-hello listening on http://{addr}");
        }
    }
    let app = Route::new().at("/", get(hello));
    Server::new_with_acceptor(acceptor).run(app).await
}
