//! HTTPS in the binary (`--tls-cert`, `--tls-key`): the API and the
//! dashboard over TLS with Secure cookies, the certificate reloaded on SIGHUP
//! (new handshakes get the new one, open connections keep working, a bad
//! file keeps the old one), clients that speak plain HTTP (told so in a
//! plain 400) or never shake hands, and the startup errors. Certificates
//! are made at run time.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::{BIN, PATIENCE, Server, basic, http};
use rcgen::{CertificateParams, DnType, KeyPair};
use tokio_rustls::rustls::client::Resumption;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const EMAIL: &str = "admin@example.com";
const PASSWORD: &str = "a long enough password";

/// A self-signed certificate for `localhost` and 127.0.0.1, and its key.
struct Cert {
    der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

fn certificate(name: &str) -> Cert {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Cert {
        der: cert.der().to_vec(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// Writes `cert`'s PEM files where the server reads them.
fn install(cert: &Cert, dir: &Path) {
    std::fs::write(dir.join("cert.pem"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &cert.key_pem).unwrap();
}

/// A client that trusts `certs`, and resumes no session.
fn client(certs: &[&Cert]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(CertificateDer::from(cert.der.clone())).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection a full handshake: a resumed session keeps the
    // certificate of the session it resumes.
    config.resumption = Resumption::disabled();
    Arc::new(config)
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A new HTTPS connection, handshake done.
fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    tcp.set_read_timeout(Some(PATIENCE)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let connection = ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = StreamOwned::new(connection, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("the TLS handshake");
    }
    tls
}

/// The certificate the server presented on `tls`.
fn presented(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().expect("a certificate")[0].to_vec()
}

/// An answer: status, headers (names lowercase), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The `Set-Cookie` line of cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.header("set-cookie")
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .map(str::to_owned)
    }
}

/// One request on a kept-alive connection, and its answer.
fn request(
    tls: &mut Tls,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(body.as_bytes()).unwrap();
    tls.flush().unwrap();
    read_answer(tls)
}

fn read_line(tls: &mut Tls) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while !line.ends_with(b"\r\n") {
        tls.read_exact(&mut byte).expect("an answer");
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

fn read_answer(tls: &mut Tls) -> Answer {
    let status_line = read_line(tls);
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        let line = read_line(tls);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').unwrap();
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut answer = Answer {
        status,
        headers,
        body: String::new(),
    };
    let mut body = Vec::new();
    if answer.header("transfer-encoding") == ["chunked"] {
        loop {
            let size = usize::from_str_radix(read_line(tls).trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            tls.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..size]);
            if size == 0 {
                break;
            }
        }
    } else {
        let length = answer
            .header("content-length")
            .first()
            .map_or(0, |l| l.parse().unwrap());
        body.resize(length, 0);
        tls.read_exact(&mut body).unwrap();
    }
    answer.body = String::from_utf8(body).unwrap();
    answer
}

/// A form body.
fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Starts the server with the certificate files in `dir`.
fn start(dir: &Path, args: &[&str]) -> Server {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let mut all = vec![
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    Server::start_with(&dir.join("myna.db"), &env, &all, None)
}

/// An expired certificate still starts the server (clients will refuse
/// it), and the log says so, with what to do.
#[test]
fn an_expired_certificate_is_warned_about_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let expired = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("cert.pem"), expired.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
    let mut server = start(dir.path(), &[]);
    let lines = server.wait_for_log("expired at 2021-01-01T00:00:00.000Z");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("renew it, then send SIGHUP")),
        "{lines:?}"
    );
    server.terminate();
}

fn hang_up(server: &Server) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(server.child.id()).unwrap()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

#[test]
fn https_serves_the_api_with_secure_cookies_and_reloads_the_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (certificate("myna first"), certificate("myna second"));
    install(&first, dir.path());
    let mut server = start(dir.path(), &[]);
    let addr = server.addr;
    assert!(
        server
            .wait_for_log("listening on https://")
            .iter()
            .any(|l| l.contains(&format!("https://{addr}")))
    );
    let trusting = client(&[&first, &second]);

    // The JSON API over HTTPS, on a connection kept alive.
    let mut before = connect(addr, &trusting);
    assert_eq!(presented(&before), first.der);
    assert_eq!(
        before.conn.alpn_protocol(),
        Some(b"http/1.1".as_slice()),
        "ALPN"
    );
    // A client that offers HTTP/1.0 alone (`curl --http1.0`) is answered
    // in it: without the protocol in the server's list its handshake failed
    // (no_application_protocol).
    let mut old = (*trusting).clone();
    old.alpn_protocols = vec![b"http/1.0".to_vec()];
    let mut http10 = connect(addr, &Arc::new(old));
    assert_eq!(http10.conn.alpn_protocol(), Some(b"http/1.0".as_slice()));
    http10
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = http10.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    let auth = basic(EMAIL, PASSWORD);
    let login = request(
        &mut before,
        "POST",
        "/v2/user/login",
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let token: serde_json::Value = serde_json::from_str(&login.body).unwrap();
    assert!(token.is_object(), "{}", login.body);
    let created = request(
        &mut before,
        "POST",
        "/v2/experiment",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        r#"{"name": "tls", "visibility": "published", "variants": {"a": {}, "b": {}}}"#,
    );
    assert_eq!(created.status, 200, "{}", created.body);
    let created: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    let experiment = created["uuid"].as_str().unwrap().to_owned();

    // The dashboard's cookies are Secure and `__Host-`: the sign-in form's, the session's.
    let page = request(&mut before, "GET", "/signin", &[], "");
    assert_eq!(page.status, 200);
    let signin = page.cookie("__Host-myna_signin").expect("a sign-in cookie");
    assert!(signin.contains("; Secure"), "{signin}");
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    let body = form(&[
        ("csrf", &csrf),
        ("next", "/"),
        ("email", EMAIL),
        ("password", PASSWORD),
    ]);
    let cookie = signin.split(';').next().unwrap().to_owned();
    let signed_in = request(
        &mut before,
        "POST",
        "/signin",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &body,
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session = signed_in
        .cookie("__Host-myna_session")
        .expect("a session cookie");
    assert!(session.contains("; Secure"), "{session}");
    // The snippet on the experiment's page calls the API over HTTPS.
    let session = session.split(';').next().unwrap().to_owned();
    let page = request(
        &mut before,
        "GET",
        &format!("/experiments/{experiment}"),
        &[("Cookie", &session)],
        "",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("https://localhost"), "{}", page.body);

    // New files and SIGHUP: a new connection gets the new certificate, the
    // one opened before still works.
    install(&second, dir.path());
    hang_up(&server);
    server.wait_for_log("reloaded the TLS certificate");
    let mut after = connect(addr, &trusting);
    assert_eq!(presented(&after), second.der);
    let health = request(&mut after, "GET", "/healthz", &[], "");
    assert_eq!(health.status, 200);
    let again = request(&mut before, "GET", "/healthz", &[], "");
    assert_eq!(again.status, 200, "the connection opened before the reload");
    assert_eq!(presented(&before), first.der);

    // A bad file: the reload fails, logged, and the certificate stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate\n").unwrap();
    hang_up(&server);
    let errors = server.wait_for_log("still serving the previous certificate");
    assert!(
        errors[0].contains("ERROR") && errors[0].contains("cert.pem"),
        "{errors:?}"
    );
    let mut kept = connect(addr, &trusting);
    assert_eq!(presented(&kept), second.der);
    assert_eq!(request(&mut kept, "GET", "/healthz", &[], "").status, 200);

    // Plain HTTP on the HTTPS port is told so in plain HTTP (a person with
    // curl reads it; a TLS alert reads as noise), and the server serves on.
    let (status, body) = http(addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 400, "{body}");
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["messages"][0]["path"], "scheme", "{body}");
    assert!(body.contains("https://"), "{body}");
    let mut later = connect(addr, &trusting);
    assert_eq!(request(&mut later, "GET", "/healthz", &[], "").status, 200);
    assert_eq!(request(&mut kept, "GET", "/healthz", &[], "").status, 200);

    server.terminate();
    let log = server.log.lock().unwrap().clone();
    assert!(!log.iter().any(|l| l.contains("panicked")), "{log:#?}");
}

#[test]
fn a_client_that_never_starts_the_handshake_is_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate("myna");
    install(&cert, dir.path());
    let server = start(dir.path(), &["--header-timeout-ms", "500"]);
    let mut silent = TcpStream::connect(server.addr).unwrap();
    silent.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut sink = [0; 64];
    match silent.read(&mut sink) {
        Ok(0) => {}
        Ok(n) => panic!("{n} bytes to a client that sent nothing"),
        Err(error) => assert_ne!(
            error.kind(),
            std::io::ErrorKind::WouldBlock,
            "still open after {PATIENCE:?}"
        ),
    }
    // The server serves on.
    let mut tls = connect(server.addr, &client(&[&cert]));
    assert_eq!(request(&mut tls, "GET", "/healthz", &[], "").status, 200);
}

/// Whether the server closed `tls` (within [`PATIENCE`]): reading ends or
/// fails other than by the read timeout.
fn closed(tls: &mut Tls) -> bool {
    let mut sink = [0; 4096];
    loop {
        match tls.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) => {
                return !matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                );
            }
        }
    }
}

#[test]
fn over_tls_idle_connections_close_and_make_room_and_stalled_writes_fail() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate("myna");
    install(&cert, dir.path());
    let trusting = client(&[&cert]);

    // An idle keep-alive connection is closed after the header timeout.
    let server = start(dir.path(), &["--header-timeout-ms", "500"]);
    let mut idle = connect(server.addr, &trusting);
    assert_eq!(request(&mut idle, "GET", "/healthz", &[], "").status, 200);
    assert!(closed(&mut idle), "an idle keep-alive connection is open");
    drop(server);

    // At the cap, the connection idle the longest makes room.
    let args = ["--max-connections", "2", "--header-timeout-ms", "600000"];
    let server = start(dir.path(), &args);
    let mut open: Vec<Tls> = (0..2)
        .map(|_| {
            let mut tls = connect(server.addr, &trusting);
            assert_eq!(request(&mut tls, "GET", "/healthz", &[], "").status, 200);
            std::thread::sleep(Duration::from_millis(20));
            tls
        })
        .collect();
    let mut third = connect(server.addr, &trusting);
    assert_eq!(request(&mut third, "GET", "/healthz", &[], "").status, 200);
    assert!(closed(&mut open[0]), "the connection idle the longest");
    assert_eq!(
        request(&mut open[1], "GET", "/healthz", &[], "").status,
        200
    );
    drop(server);

    // A client that stops reading its answers is dropped: 2,000 pipelined
    // requests for the 11 KB stylesheet, none of the answers read.
    let env = [("RUST_LOG", "info,myna_server::listen=debug")];
    let args = ["--write-timeout-ms", "1000"];
    let server = {
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let mut all = vec![
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        all.extend_from_slice(&args);
        Server::start_with(&dir.path().join("myna.db"), &env, &all, None)
    };
    let mut stalled = connect(server.addr, &trusting);
    let sending = std::thread::spawn(move || {
        let request = b"GET /assets/dashboard.css HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let _ = stalled.write_all(&request.repeat(2000));
        let _ = stalled.flush();
        stalled
    });
    server.wait_for_log("the client stopped reading its answer");
    let mut stalled = sending.join().unwrap();
    assert!(closed(&mut stalled));
}

#[test]
fn over_tls_a_client_at_the_cap_takes_the_place_of_a_body_awaited_longest() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate("myna");
    install(&cert, dir.path());
    let trusting = client(&[&cert]);
    let server = start(
        dir.path(),
        &["--max-connections", "2", "--body-timeout-ms", "600000"],
    );
    // Two requests whose bodies never come (`100 Continue`: awaited), no
    // credentials needed: they must not lock a new client out.
    let mut awaiting: Vec<Tls> = (0..2)
        .map(|_| {
            let mut tls = connect(server.addr, &trusting);
            tls.write_all(
                b"POST /v2/user/login HTTP/1.1\r\nHost: localhost\r\n\
                  Content-Type: application/json\r\nContent-Length: 100\r\n\
                  Expect: 100-continue\r\n\r\n",
            )
            .unwrap();
            tls.flush().unwrap();
            assert_eq!(read_answer(&mut tls).status, 100);
            std::thread::sleep(std::time::Duration::from_millis(20));
            tls
        })
        .collect();
    let mut newcomer = connect(server.addr, &trusting);
    let answer = request(&mut newcomer, "GET", "/healthz", &[], "");
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        closed(&mut awaiting[0]),
        "the body awaited the longest made room"
    );
}

/// Runs the binary with `args` and `env`; it must fail at once. Its stderr.
fn fails(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(dir.join("myna.db"))
        .args(args)
        .env_remove("MYNA_TLS_CERT")
        .env_remove("MYNA_TLS_KEY");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn tls_startup_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let cert = certificate("myna");
    install(&cert, dir.path());
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    let (cert_file, key_file) = (cert_file.to_str().unwrap(), key_file.to_str().unwrap());

    let only_cert = fails(dir.path(), &["--tls-cert", cert_file], &[]);
    assert!(
        only_cert.contains("--tls-cert needs --tls-key"),
        "{only_cert}"
    );
    let only_key = fails(dir.path(), &[], &[("MYNA_TLS_KEY", key_file)]);
    assert!(
        only_key.contains("--tls-key needs --tls-cert"),
        "{only_key}"
    );

    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let no_file = fails(
        dir.path(),
        &["--tls-cert", missing, "--tls-key", key_file],
        &[],
    );
    assert!(
        no_file.contains("cannot read the TLS certificate") && no_file.contains(missing),
        "{no_file}"
    );
    let no_key = fails(
        dir.path(),
        &[],
        &[("MYNA_TLS_CERT", cert_file), ("MYNA_TLS_KEY", missing)],
    );
    assert!(
        no_key.contains("cannot read the TLS key") && no_key.contains(missing),
        "{no_key}"
    );

    // The certificate given as the key (a common slip): said so.
    let swapped = fails(
        dir.path(),
        &["--tls-cert", cert_file, "--tls-key", cert_file],
        &[],
    );
    assert!(
        swapped.contains("no PEM PRIVATE KEY in it (is it the certificate?)"),
        "{swapped}"
    );

    // A key encrypted with a passphrase: said so, and what to do.
    let encrypted = dir.path().join("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    let encrypted = fails(
        dir.path(),
        &[
            "--tls-cert",
            cert_file,
            "--tls-key",
            encrypted.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        encrypted.contains("the key is encrypted (a passphrase)")
            && encrypted.contains("openssl pkey"),
        "{encrypted}"
    );

    // A certificate cut short, and an empty key file: said in words.
    let pem = std::fs::read_to_string(cert_file).unwrap();
    let cut = dir.path().join("cut.pem");
    std::fs::write(&cut, &pem[..pem.len() / 2]).unwrap();
    let cut = fails(
        dir.path(),
        &["--tls-cert", cut.to_str().unwrap(), "--tls-key", key_file],
        &[],
    );
    assert!(
        cut.contains("has no end line `-----END CERTIFICATE-----` (is the file cut short?)"),
        "{cut}"
    );
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let empty = fails(
        dir.path(),
        &[
            "--tls-cert",
            cert_file,
            "--tls-key",
            empty.to_str().unwrap(),
        ],
        &[],
    );
    assert!(empty.contains("the file is empty"), "{empty}");

    let other = certificate("another");
    let other_key = dir.path().join("other-key.pem");
    std::fs::write(&other_key, &other.key_pem).unwrap();
    let other_key = other_key.to_str().unwrap();
    let mismatched = fails(
        dir.path(),
        &["--tls-cert", cert_file, "--tls-key", other_key],
        &[],
    );
    assert!(
        mismatched.contains("does not belong to the certificate"),
        "{mismatched}"
    );
    assert!(!dir.path().join("myna.db").exists(), "no database opened");
}

#[test]
fn sighup_without_tls_is_logged_and_the_server_goes_on() {
    // A reload (systemd's ExecReload, a renewal hook) sent to a server that
    // serves plain HTTP (behind a proxy that terminates TLS) must not stop it.
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MYNA_ADMIN_EMAIL", EMAIL),
        ("MYNA_ADMIN_PASSWORD", PASSWORD),
    ];
    let mut server = Server::start_with(&dir.path().join("myna.db"), &env, &[], None);
    hang_up(&server);
    server.wait_for_log("SIGHUP: not serving TLS, nothing to reload");
    hang_up(&server);
    let (status, body) = http(server.addr, "GET", "/healthz", "", "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    server.terminate();
}
