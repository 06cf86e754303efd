//! The dashboard through poem's `TestClient`: signing in and out, refusals
//! (no session, a wrong password, API credentials, CSRF), the forms (create,
//! edit, reset, delete, API keys) against what the API answers, escaping.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::ops::Deref;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use myna_server::auth::Passwords;
use myna_server::cors::Origins;
use myna_server::service::webhooks::{check_now, deliver_now};
use myna_server::storage::ApiKey;
use myna_server::{AppState, Options, accounts, app};
use poem::EndpointExt;
use poem::http::{Method, StatusCode};
use poem::test::TestClient;
use serde_json::{Value, json};
use uuid::Uuid;

mod common;

use common::app::{Answer, START_MS, Seed, TestApp};
const EMAIL: &str = "owner@example.com";
const PASSWORD: &str = "correct horse battery";

impl Answer {
    fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The `Set-Cookie` line of cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The edit form's `was` tag (the definition it was filled in with).
    fn was(&self) -> String {
        between(&self.text, "name=\"was\" value=\"", "\"").unwrap_or_default()
    }

    /// The edit form's `loaded` digests (of each field as filled in).
    fn loaded(&self) -> String {
        between(&self.text, "name=\"loaded\" value=\"", "\"").unwrap_or_default()
    }

    /// The value of the edit form's input `name` (a one-line field).
    fn input(&self, name: &str) -> String {
        let form = self.text.split("id=\"edit\"").nth(1).unwrap_or_default();
        between(form, &format!("name=\"{name}\""), ">")
            .and_then(|attributes| between(&attributes, "value=\"", "\""))
            .map(|v| unescape(&v))
            .unwrap_or_default()
    }

    /// The text of the edit form's textarea `name`.
    fn textarea(&self, name: &str) -> String {
        let form = self.text.split("id=\"edit\"").nth(1).unwrap_or_default();
        let from = format!("name=\"{name}\"");
        form.find(&from)
            .and_then(|at| between(&form[at..], ">", "</textarea>"))
            .map(|v| unescape(&v))
            .unwrap_or_default()
    }

    /// The first hidden `csrf` field's value.
    fn csrf(&self) -> String {
        between(&self.text, "name=\"csrf\" value=\"", "\"").unwrap_or_default()
    }
}

/// Text as a browser reads it from an attribute or a textarea.
fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn between(text: &str, start: &str, end: &str) -> Option<String> {
    let from = text.find(start)? + start.len();
    let to = text[from..].find(end)? + from;
    Some(text[from..to].to_owned())
}

/// `a=b&c=d`, percent-encoded.
fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The shared test app with the owner's account (and another one).
struct Dash {
    app: TestApp,
    account: Uuid,
}

impl Deref for Dash {
    type Target = TestApp;

    fn deref(&self) -> &TestApp {
        &self.app
    }
}

/// A signed-in browser: its session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl Dash {
    async fn new() -> Dash {
        let seed = Seed::new().await;
        let account = accounts::create_account(
            seed.storage.as_ref(),
            &seed.passwords,
            EMAIL,
            PASSWORD,
            START_MS,
        )
        .await
        .expect("account");
        accounts::create_account(
            seed.storage.as_ref(),
            &seed.passwords,
            "other@example.com",
            "other password",
            START_MS,
        )
        .await
        .expect("other account");
        Dash {
            app: seed.start(Origins::Any).await,
            account: account.id,
        }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, String)],
        body: Option<String>,
    ) -> Answer {
        let mut headers = headers.to_vec();
        if body.is_some() {
            let form = "application/x-www-form-urlencoded";
            headers.push(("content-type", form.to_owned()));
        }
        let body = body.map(String::into_bytes);
        self.app.send_with(method, uri, &headers, body).await
    }

    /// A page as `browser` sees it.
    async fn page(&self, browser: &Browser, uri: &str) -> Answer {
        let cookie = ("cookie", browser.cookie.clone());
        self.send(Method::GET, uri, &[cookie], None).await
    }

    /// The new-experiment form as `browser` reaches it from the "New
    /// experiment" link: `/experiments/new` redirects to a new uuid's form.
    async fn new_form(&self, browser: &Browser) -> Answer {
        let link = self.page(browser, "/experiments/new").await;
        assert_eq!(link.status, StatusCode::SEE_OTHER, "{}", link.text);
        let form = link.location();
        assert!(form.starts_with("/experiments/new?uuid="), "{form}");
        self.page(browser, form).await
    }

    /// A form posted by `browser` with its CSRF token.
    /// An experiment's edit form (`/experiments/{uuid}`) also carries, as
    /// the page's does, the `was` tag of the definition the page showed
    /// (read from the page now), unless `pairs` give one.
    async fn submit(&self, browser: &Browser, uri: &str, pairs: &[(&str, &str)]) -> Answer {
        let mut all = vec![("csrf", browser.csrf.as_str())];
        let edit_form = uri.strip_prefix("/experiments/").is_some_and(|rest| {
            rest != "new" && !rest.contains('/') && !pairs.iter().any(|(name, _)| *name == "was")
        });
        let was = match edit_form {
            true => self.page(browser, uri).await.was(),
            false => String::new(),
        };
        if edit_form {
            all.push(("was", was.as_str()));
        }
        all.extend_from_slice(pairs);
        let cookie = ("cookie", browser.cookie.clone());
        self.send(Method::POST, uri, &[cookie], Some(form(&all)))
            .await
    }

    /// The sign-in form posted with `email` and `password`.
    async fn sign_in_as(&self, email: &str, password: &str, headers: &[(&str, String)]) -> Answer {
        let page = self.send(Method::GET, "/signin", headers, None).await;
        assert_eq!(page.status, StatusCode::OK);
        let cookie = page.cookie("myna_signin");
        let cookie = cookie.or_else(|| page.cookie("__Host-myna_signin"));
        let value = cookie.expect("a sign-in cookie");
        let value = value.split(';').next().unwrap_or_default().to_owned();
        let mut headers = headers.to_vec();
        headers.push(("cookie", value));
        let body = form(&[
            ("csrf", &page.csrf()),
            ("next", "/"),
            ("email", email),
            ("password", password),
        ]);
        self.send(Method::POST, "/signin", &headers, Some(body))
            .await
    }

    async fn sign_in(&self) -> Browser {
        let answer = self.sign_in_as(EMAIL, PASSWORD, &[]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        let set = answer.cookie("myna_session").expect("a session cookie");
        let cookie = set.split(';').next().unwrap_or_default().to_owned();
        let mut browser = Browser {
            cookie,
            csrf: String::new(),
        };
        let home = self.page(&browser, "/").await;
        assert_eq!(home.status, StatusCode::OK);
        browser.csrf = home.csrf();
        assert_eq!(browser.csrf.len(), 64);
        browser
    }

    fn basic(&self) -> String {
        format!("Basic {}", STANDARD.encode(format!("{EMAIL}:{PASSWORD}")))
    }

    /// An API call with the owner's Basic credentials.
    /// Records `body` (`{"events": [...]}`) in experiment `uuid` as its
    /// owner, asserting it is taken.
    async fn record(&self, uuid: &impl std::fmt::Display, body: Value) {
        let uri = format!("/v2/experiment/{uuid}/record");
        let (status, answer) = self.api(Method::POST, &uri, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn api(&self, method: Method, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let (status, text) = self.api_text(method, uri, body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// An API call with the owner's Basic credentials; the body as text.
    async fn api_text(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let mut request = self
            .client
            .request(method, uri.to_owned())
            .header("authorization", self.basic());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.0;
        let status = response.status();
        let text = response.into_body().into_string().await.unwrap_or_default();
        (status, text)
    }

    async fn experiment(&self, name: &str) -> Uuid {
        let body = json!({"name": name, "visibility": "published",
                          "variants": {"a": {"name": "Alpha"}, "b": {}}});
        let (status, form) = self.api(Method::POST, "/v2/experiment", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{form}");
        form["uuid"]
            .as_str()
            .and_then(|u| Uuid::parse_str(u).ok())
            .expect("a uuid")
    }

    async fn api_key(&self) -> Uuid {
        let key = ApiKey {
            uuid: Uuid::new_v4(),
            account_id: self.account,
            name: Some("site".into()),
            created_ms: START_MS,
        };
        self.storage
            .create_api_key(&key, myna_core::limits::MAX_API_KEYS)
            .await
            .expect("key");
        key.uuid
    }
}

/// The `data-value` of the cell of `class` in the row of variant `id`.
fn cell(html: &str, id: &str, class: &str) -> Option<String> {
    let row_start = html.find(&format!("<tr data-variant=\"{id}\">"))?;
    let row = &html[row_start..];
    let row = &row[..row.find("</tr>")?];
    between(row, &format!("class=\"num {class}\" data-value=\""), "\"")
}

#[tokio::test]
async fn signing_in_sets_a_strict_httponly_session_cookie_and_signing_out_ends_it() {
    let d = Dash::new().await;
    let answer = d.sign_in_as(EMAIL, PASSWORD, &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/");
    let cookie = answer.cookie("myna_session").expect("session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    // Behind a proxy that says HTTPS, the cookie is Secure and named so
    // that only this host, over HTTPS, can set it (`__Host-`, `Path=/`):
    // a sibling subdomain cannot plant a session of its own.
    let https = [("x-forwarded-proto", "https".to_owned())];
    let answer = d.sign_in_as(EMAIL, PASSWORD, &https).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert!(answer.cookie("myna_session").is_none());
    let cookie = answer
        .cookie("__Host-myna_session")
        .expect("session cookie");
    assert!(
        cookie.contains("; Secure") && cookie.contains("Path=/;"),
        "{cookie}"
    );
    let secure = cookie.split(';').next().unwrap_or_default().to_owned();
    let home = [https[0].clone(), ("cookie", secure.clone())];
    let home = d.send(Method::GET, "/", &home, None).await;
    assert_eq!(home.status, StatusCode::OK, "the __Host- cookie signs in");
    // Over HTTPS the plain name is not this server's session.
    let plain = secure.trim_start_matches("__Host-").to_owned();
    let plain = [https[0].clone(), ("cookie", plain)];
    let plain = d.send(Method::GET, "/", &plain, None).await;
    assert_eq!(plain.status, StatusCode::SEE_OTHER);

    let browser = d.sign_in().await;
    let home = d.page(&browser, "/").await;
    assert!(home.text.contains("<h1>Experiments</h1>"));
    assert_eq!(
        home.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let csp = home
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));

    // Signing out ends the session for good, even if the cookie is replayed.
    let out = d.submit(&browser, "/signout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), "/signin?session=out");
    assert!(
        out.cookie("myna_session")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    let said = d.send(Method::GET, out.location(), &[], None).await;
    assert!(said.text.contains("You are signed out."), "{}", said.text);
    // The replayed cookie: sent to sign in, told the session ended, and
    // for a form, that nothing of it was saved.
    let after = d.page(&browser, "/keys").await;
    assert_eq!(after.status, StatusCode::SEE_OTHER);
    assert_eq!(after.location(), "/signin?next=%2Fkeys&session=ended");
    let said = d.send(Method::GET, after.location(), &[], None).await;
    assert!(said.text.contains("Your session ended"), "{}", said.text);
    let form = d.submit(&browser, "/keys", &[("name", "lost")]).await;
    assert_eq!(form.location(), "/signin?next=%2Fkeys&session=ended-form");
    let said = d.send(Method::GET, form.location(), &[], None).await;
    assert!(said.text.contains("so nothing was saved"), "{}", said.text);
    // The email field, focused on arrival, is described by it.
    assert!(said.text.contains(r#"aria-describedby="signin-note""#));
    // Signing out again (another tab's button): signed out, said so.
    let again = d.submit(&browser, "/signout", &[]).await;
    assert_eq!(again.location(), "/signin?session=out");
}

/// A second session cookie planted at a narrower path (by a page on another
/// port of this host, or a sibling subdomain: SameSite does not tell them
/// apart) would make the browser send the attacker's session first, and the
/// owner work in the attacker's account. Two are never a session: both are
/// cleared where this host can clear them, and the sign-in page says why.
#[tokio::test]
async fn a_session_cookie_sent_twice_signs_no_one_in_and_is_cleared() {
    let d = Dash::new().await;
    let owner = d.sign_in().await;
    let planted = d
        .sign_in_as("other@example.com", "other password", &[])
        .await;
    let planted = planted.cookie("myna_session").expect("a session cookie");
    let planted = planted.split(';').next().unwrap_or_default().to_owned();
    for both in [
        format!("{planted}; {}", owner.cookie),
        format!("{}; {planted}", owner.cookie),
    ] {
        let answer = d
            .send(Method::GET, "/keys", &[("cookie", both)], None)
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.location(), "/signin?next=%2Fkeys&cookies=twice");
        let cleared: Vec<String> = answer
            .cookies()
            .into_iter()
            .filter(|c| c.starts_with("myna_session=;") && c.contains("Max-Age=0"))
            .collect();
        for path in ["Path=/;", "Path=/keys;"] {
            assert!(cleared.iter().any(|c| c.contains(path)), "{cleared:?}");
        }
    }
    // Each alone is still its account's session.
    assert_eq!(d.page(&owner, "/keys").await.status, StatusCode::OK);
    let page = d
        .send(Method::GET, "/signin?next=%2Fkeys&cookies=twice", &[], None)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("session cookie twice"), "{}", page.text);
}

/// Every dashboard route answers the methods its `Allow` lists, and a 405
/// for any other says them (RFC 9110), as the API's do.
#[tokio::test]
async fn a_method_a_page_does_not_answer_is_a_405_that_says_which_do() {
    let d = Dash::new().await;
    let uuid = Uuid::new_v4();
    for (route, allow) in myna_server::dashboard::METHODS {
        let path = route.replace(":uuid", &uuid.to_string());
        let allowed: Vec<&str> = allow.split(", ").collect();
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let answer = d
                .send(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    &path,
                    &[],
                    None,
                )
                .await;
            if allowed.contains(&method) {
                assert_ne!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
            } else {
                assert_eq!(
                    answer.status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_eq!(answer.header("allow"), Some(*allow), "{method} {path}");
            }
        }
    }
}

/// Two sign-in pages open in one browser (every dashboard tab sent to sign
/// in when the session ends): each form signs in, the first loaded too;
/// once one has, the other's submit lands where it was going.
#[tokio::test]
async fn every_sign_in_tab_of_a_browser_can_sign_in() {
    let d = Dash::new().await;
    let first = d.send(Method::GET, "/signin", &[], None).await;
    let jar = first.cookie("myna_signin").expect("a sign-in cookie");
    let jar = jar.split(';').next().unwrap_or_default().to_owned();
    let second = d
        .send(Method::GET, "/signin", &[("cookie", jar.clone())], None)
        .await;
    // The browser's cookie now: whatever the second page set.
    let jar = second.cookie("myna_signin").map_or(jar, |set| {
        set.split(';').next().unwrap_or_default().to_owned()
    });
    let submit = |page: &Answer| {
        form(&[
            ("csrf", &page.csrf()),
            ("next", "/keys"),
            ("email", EMAIL),
            ("password", PASSWORD),
        ])
    };
    let signed = d
        .send(
            Method::POST,
            "/signin",
            &[("cookie", jar.clone())],
            Some(submit(&first)),
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(signed.location(), "/keys");
    let session = signed.cookie("myna_session").expect("a session");
    let session = session.split(';').next().unwrap_or_default().to_owned();
    // The other tab, after the first signed in (its cookie cleared).
    let later = d
        .send(
            Method::POST,
            "/signin",
            &[("cookie", session)],
            Some(submit(&second)),
        )
        .await;
    assert_eq!(later.status, StatusCode::SEE_OTHER, "{}", later.text);
    assert_eq!(later.location(), "/keys");
    // And the second tab alone, before any sign-in, signs in too.
    let alone = d
        .send(
            Method::POST,
            "/signin",
            &[("cookie", jar)],
            Some(submit(&second)),
        )
        .await;
    assert_eq!(alone.status, StatusCode::SEE_OTHER, "{}", alone.text);
}

#[tokio::test]
async fn a_wrong_password_is_refused_with_401_and_reveals_nothing() {
    let d = Dash::new().await;
    let wrong = d.sign_in_as(EMAIL, "wrong password", &[]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.cookie("myna_session").is_none());
    assert!(wrong.text.contains("The email or password is not right."));
    let unknown = d.sign_in_as("nobody@example.com", PASSWORD, &[]).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let nul = d.sign_in_as("owner\u{0}@example.com", PASSWORD, &[]).await;
    assert_eq!(nul.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.text.contains("The email or password is not right."));
    assert!(unknown.cookie("myna_session").is_none());
    // The sign-in form itself needs its own CSRF cookie.
    let body = form(&[("email", EMAIL), ("password", PASSWORD), ("csrf", "x")]);
    let forged = d.send(Method::POST, "/signin", &[], Some(body)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.cookie("myna_session").is_none());
}

#[tokio::test]
async fn every_page_refuses_a_missing_session_and_api_credentials() {
    let d = Dash::new().await;
    let uuid = d.experiment("Secret plans").await;
    let key = d.api_key().await;
    let token = {
        let (status, login) = d.api(Method::POST, "/v2/user/login", None).await;
        assert_eq!(status, StatusCode::OK);
        login["token"].as_str().unwrap_or_default().to_owned()
    };
    let pages = [
        "/".to_owned(),
        "/experiments/new".to_owned(),
        format!("/experiments/{uuid}"),
        format!("/experiments/{uuid}/reset"),
        format!("/experiments/{uuid}/delete"),
        format!("/experiments/{uuid}/export.csv"),
        "/keys".to_owned(),
        "/webhooks".to_owned(),
    ];
    let credentials: Vec<Vec<(&str, String)>> = vec![
        vec![],
        vec![("authorization", format!("ApiKey {key}"))],
        vec![("authorization", d.basic())],
        vec![("authorization", format!("Bearer {token}"))],
        // An API key where the session's login token belongs.
        vec![("cookie", format!("myna_session={key}.{}", "0".repeat(32)))],
        vec![("cookie", format!("myna_session={token}"))],
    ];
    for page in &pages {
        for headers in &credentials {
            let answer = d.send(Method::GET, page, headers, None).await;
            assert_eq!(answer.status, StatusCode::SEE_OTHER, "{page} {headers:?}");
            assert!(answer.location().starts_with("/signin"), "{page}");
            assert!(!answer.text.contains("Secret plans"));
        }
        let with_param = format!(
            "{page}{}apikey={key}",
            if page.contains('?') { "&" } else { "?" }
        );
        let answer = d.send(Method::GET, &with_param, &[], None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{with_param}");
    }
    // Posts are refused the same way and change nothing.
    let posts = [
        (
            "/experiments/new".to_owned(),
            vec![("name", "x"), ("variants", "a")],
        ),
        (format!("/experiments/{uuid}"), vec![("name", "renamed")]),
        (format!("/experiments/{uuid}/reset"), vec![]),
        (format!("/experiments/{uuid}/delete"), vec![]),
        ("/keys".to_owned(), vec![("name", "sneaky")]),
        (format!("/keys/{key}/revoke"), vec![]),
        (
            "/webhooks".to_owned(),
            vec![("url", "https://example.com/x")],
        ),
        (format!("/webhooks/{}/delete", Uuid::new_v4()), vec![]),
    ];
    for (uri, pairs) in &posts {
        let headers = [("authorization", format!("ApiKey {key}"))];
        let answer = d.send(Method::POST, uri, &headers, Some(form(pairs))).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{uri}");
        // Back to the page the form is on once signed in.
        let page = if uri.starts_with("/keys") {
            "/keys"
        } else if uri.starts_with("/webhooks") {
            "/webhooks"
        } else {
            uri
        };
        let next = myna_core::wire::url_encode(page);
        // A form posted without a session: the sign-in page says so.
        assert_eq!(
            answer.location(),
            format!("/signin?next={next}&session=ended-form"),
            "{uri}"
        );
    }
    let (status, read) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["name"], "Secret plans");
    let keys = d.storage.api_keys(d.account).await.expect("keys");
    assert_eq!(keys.len(), 1, "no key created, none revoked");
    assert!(
        d.storage
            .webhooks(d.account)
            .await
            .expect("webhooks")
            .is_empty()
    );
    // A missing session on a page comes back there after signing in.
    let answer = d
        .send(Method::GET, &format!("/experiments/{uuid}"), &[], None)
        .await;
    assert_eq!(
        answer.location(),
        format!("/signin?next=%2Fexperiments%2F{uuid}")
    );
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused_and_change_nothing() {
    let d = Dash::new().await;
    let uuid = d.experiment("Guarded").await;
    let key = d.api_key().await;
    let browser = d.sign_in().await;
    let posts = [
        (
            "/experiments/new".to_owned(),
            vec![("name", "x"), ("variants", "a")],
        ),
        (format!("/experiments/{uuid}"), vec![("name", "renamed")]),
        (format!("/experiments/{uuid}/reset"), vec![]),
        (format!("/experiments/{uuid}/delete"), vec![]),
        ("/keys".to_owned(), vec![("name", "sneaky")]),
        (format!("/keys/{key}/revoke"), vec![]),
        (
            "/webhooks".to_owned(),
            vec![("url", "https://example.com/x")],
        ),
        ("/signout".to_owned(), vec![]),
    ];
    for (uri, pairs) in &posts {
        let cookie = [("cookie", browser.cookie.clone())];
        let missing = d.send(Method::POST, uri, &cookie, Some(form(pairs))).await;
        assert_eq!(missing.status, StatusCode::FORBIDDEN, "{uri}");
        let mut wrong = pairs.clone();
        wrong.push(("csrf", "00000000000000000000000000000000"));
        let wrong = d.send(Method::POST, uri, &cookie, Some(form(&wrong))).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{uri}");
    }
    let (status, read) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["name"], "Guarded");
    assert_eq!(d.storage.api_keys(d.account).await.expect("keys").len(), 1);
    assert!(
        d.storage
            .webhooks(d.account)
            .await
            .expect("webhooks")
            .is_empty()
    );
    let (_, search) = d
        .api(
            Method::GET,
            "/v2/experiment?visibility=draft,published,archived",
            None,
        )
        .await;
    assert_eq!(search["results"].as_array().map(Vec::len), Some(1));
    // The session survived the refused sign-out.
    assert_eq!(d.page(&browser, "/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn create_edit_reset_delete_through_the_forms_agree_with_the_api() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let created = d
        .submit(
            &browser,
            "/experiments/new",
            &[
                ("name", "Buy button"),
                ("visibility", "published"),
                ("variants", "green\r\nblue\r\n"),
                ("settings", "{\"page\": \"checkout\"}"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let uuid = created
        .location()
        .strip_prefix("/experiments/")
        .and_then(|rest| rest.strip_suffix("?done=created"))
        .and_then(|u| Uuid::parse_str(u).ok())
        .expect("redirected to the new experiment");
    let (status, read) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(read["name"], "Buy button");
    assert_eq!(read["visibility"], "published");
    assert_eq!(read["settings"], json!({"page": "checkout"}));
    let ids: Vec<&String> = read["variants"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    assert_eq!(ids, ["green", "blue"]);

    // Events through the API; the page shows what the read endpoint serves.
    let events: Vec<Value> = (0..40)
        .map(|i| json!({"typename": "view", "variant": if i % 4 == 0 { "blue" } else { "green" }}))
        .chain((0..9).map(|_| json!({"typename": "reward", "variant": "green"})))
        .chain((0..1).map(|_| json!({"typename": "reward", "variant": "blue", "amount": 0.5})))
        .collect();
    d.record(&uuid, json!({"events": events})).await;
    d.clock.advance(1_000);
    let page = d
        .page(&browser, &format!("/experiments/{uuid}?done=created"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("The experiment was created."));
    let (_, text) = d
        .api_text(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    let read: Value = serde_json::from_str(&text).expect("JSON");
    for id in ["green", "blue"] {
        let v = &read["variants"][id];
        let views = cell(&page.text, id, "views").expect("views");
        assert_eq!(views, v["views"].to_string());
        let reward: f64 = cell(&page.text, id, "reward")
            .and_then(|r| r.parse().ok())
            .expect("reward");
        assert_eq!(Some(reward), v["totalReward"].as_f64());
        // Exactly the weight served (compared as text: serde_json's float
        // parsing may be one ulp off).
        let weight = cell(&page.text, id, "weight").expect("weight");
        let served = format!(
            "\"views\":{},\"totalReward\":{},\"weight\":{weight},",
            v["views"], v["totalReward"]
        );
        assert!(text.contains(&served), "{served} in {text}");
        let rate: f64 = cell(&page.text, id, "rate")
            .and_then(|r| r.parse().ok())
            .expect("rate");
        assert_eq!(
            Some(rate),
            Some(reward / v["views"].as_f64().unwrap_or(1.0))
        );
    }
    assert!(page.text.contains("30.00\u{a0}%"), "green converts at 9/30");
    assert!(
        page.text.contains("id=\"weights-chart-t\""),
        "a weight chart"
    );
    assert!(page.text.contains("<polyline") || page.text.contains("<circle"));
    // The snippet, filled in.
    let key = d.api_key().await;
    let headers = [
        // The session as a browser keeps it over HTTPS.
        ("cookie", format!("__Host-{}", browser.cookie)),
        ("host", "ab.example.com".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
    ];
    let page = d
        .send(Method::GET, &format!("/experiments/{uuid}"), &headers, None)
        .await;
    let snippet = between(&page.text, "<code id=\"snippet-code\">", "</code>").expect("snippet");
    assert!(
        snippet.contains("import { Myna } from &quot;myna-sdk&quot;;"),
        "{snippet}"
    );
    assert!(
        snippet.contains(&format!("apiKey: &quot;{key}&quot;")),
        "{snippet}"
    );
    assert!(snippet.contains(&format!("myna.experiment(&quot;{uuid}&quot;)")));
    assert!(
        snippet.contains("apiRoot: &quot;https://ab.example.com&quot;"),
        "{snippet}"
    );

    // Edit: name, visibility, a variant's name and settings, remove one, add one.
    let mut fields = vec![
        ("name", "Buy button, round 2"),
        ("visibility", "draft"),
        ("settings", "{}"),
        ("v0.id", "green"),
        ("v0.name", "Green!"),
        ("v0.settings", "{\"color\": \"#0f0\"}"),
        ("v1.id", "blue"),
        ("v1.name", "blue"),
        ("v1.settings", "{}"),
        ("v1.remove", "1"),
        ("add", "red\n"),
    ];
    // Blue has counts: the first save only asks, and changes nothing.
    let asked = d
        .submit(&browser, &format!("/experiments/{uuid}"), &fields)
        .await;
    assert_eq!(asked.status, StatusCode::CONFLICT, "{}", asked.text);
    assert!(
        asked
            .text
            .contains("<title>Error: Buy button · Myna</title>")
    );
    assert!(
        asked.text.contains("It deletes the variant&#39;s 10 views"),
        "{}",
        asked.text
    );
    // The second button confirms exactly this removal (its tag).
    let tag =
        between(&asked.text, "name=\"confirm_removal\" value=\"", "\"").expect("the second button");
    let (_, unchanged) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(unchanged["name"], "Buy button");
    // Visitors keep coming between the two presses: their views go with
    // the variant, the confirmation still holds.
    d.record(
        &uuid,
        json!({"events": [{"typename": "view", "variant": "blue"}]}),
    )
    .await;
    fields.push(("confirm_removal", &tag));
    let edited = d
        .submit(&browser, &format!("/experiments/{uuid}"), &fields)
        .await;
    assert_eq!(edited.status, StatusCode::SEE_OTHER, "{}", edited.text);
    // At the page's top, where it says so (not at the form's `#edit`).
    assert_eq!(
        edited.location(),
        format!("/experiments/{uuid}?done=saved#main")
    );
    let (_, read) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(read["name"], "Buy button, round 2");
    assert_eq!(read["visibility"], "draft");
    assert_eq!(read["variants"]["green"]["name"], "Green!");
    assert_eq!(
        read["variants"]["green"]["settings"],
        json!({"color": "#0f0"})
    );
    assert_eq!(read["variants"]["green"]["views"], 30, "counts kept");
    assert!(read["variants"]["blue"].is_null());
    assert_eq!(read["variants"]["red"]["views"], 0);

    // A bad edit shows core's problems, with their paths, and changes nothing.
    let bad = d
        .submit(
            &browser,
            &format!("/experiments/{uuid}"),
            &[
                ("name", " "),
                ("visibility", "secret"),
                ("settings", "{nope"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text
            .contains(r##"<a href="#edit-settings">Settings</a>: This is not valid JSON"##),
        "{}",
        bad.text
    );
    // The answer opens at the form's problems, which take the focus
    // (`autofocus`; the action has no `#fragment`: browsers skip autofocus
    // on a page opened at one), not at the page's top far above.
    let action = format!(r#"action="/experiments/{uuid}">"#);
    assert!(bad.text.contains(&action), "{}", bad.text);
    assert!(
        bad.text
            .contains(r#"id="form-problems" role="alert" tabindex="-1" autofocus"#)
    );
    let bad = d
        .submit(
            &browser,
            &format!("/experiments/{uuid}"),
            &[("name", " "), ("visibility", "secret")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.text
            .contains(r##"<a href="#edit-visibility">Visibility</a>: "##)
    );
    assert!(bad.text.contains(r##"<a href="#edit-name">Name</a>: "##));
    let (_, after) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(after["name"], "Buy button, round 2");

    // Reset: a confirmation page, then zero counts.
    let confirm = d
        .page(&browser, &format!("/experiments/{uuid}/reset"))
        .await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.text.contains("Reset the counts?"));
    let cancel = format!(r#"<a href="/experiments/{uuid}" autofocus>Cancel</a>"#);
    assert!(
        confirm.text.contains(&cancel),
        "Enter on arrival cancels: {}",
        confirm.text
    );
    let reset = d
        .submit(&browser, &format!("/experiments/{uuid}/reset"), &[])
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER);
    let (_, read) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(read["variants"]["green"]["views"], 0);
    assert_eq!(read["variants"]["green"]["totalReward"], 0.0);
    let page = d
        .page(&browser, &format!("/experiments/{uuid}?done=reset"))
        .await;
    assert_eq!(cell(&page.text, "green", "views").as_deref(), Some("0"));
    assert!(page.text.contains("The counts were reset to zero."));

    // Delete: a confirmation page, then gone (API 404, dashboard 404).
    let confirm = d
        .page(&browser, &format!("/experiments/{uuid}/delete"))
        .await;
    assert!(confirm.text.contains("Delete this experiment?"));
    let deleted = d
        .submit(&browser, &format!("/experiments/{uuid}/delete"), &[])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.location(), "/?done=deleted");
    let (status, _) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let gone = d.page(&browser, &format!("/experiments/{uuid}")).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_bad_create_form_shows_the_problems_and_creates_nothing() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let answer = d
        .submit(
            &browser,
            "/experiments/new",
            &[
                ("name", "Dupes"),
                ("visibility", "draft"),
                ("variants", "a\na\n"),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .text
            .contains(r##"<a href="#variants">Variant 2 (a)</a>: Variant ids must be unique."##),
        "{}",
        answer.text
    );
    assert!(
        answer.text.contains(">a\na\n</textarea>"),
        "the form keeps what was typed"
    );
    let answer = d
        .submit(
            &browser,
            "/experiments/new",
            &[("name", "No variants"), ("variants", "")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let (_, search) = d
        .api(
            Method::GET,
            "/v2/experiment?visibility=draft,published,archived",
            None,
        )
        .await;
    assert_eq!(search["results"], json!([]));
}

#[tokio::test]
async fn a_hostile_experiment_name_is_escaped_everywhere() {
    let d = Dash::new().await;
    let hostile = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";
    let body = json!({"name": hostile, "visibility": "published",
                      "variants": {"<b>bold</b>": {"name": "</td><script>y()</script>"}, "b": {}}});
    let (status, read) = d.api(Method::POST, "/v2/experiment", Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let uuid = read["uuid"].as_str().unwrap_or_default().to_owned();
    d.record(
        &uuid,
        json!({"events": [{"typename": "view", "variant": "<b>bold</b>"}]}),
    )
    .await;
    let browser = d.sign_in().await;
    for page in [
        "/".to_owned(),
        format!("/?q={}", encode(hostile)),
        format!("/experiments/{uuid}"),
        format!("/experiments/{uuid}/reset"),
        format!("/experiments/{uuid}/delete"),
    ] {
        let answer = d.page(&browser, &page).await;
        assert_eq!(answer.status, StatusCode::OK, "{page}");
        for raw in ["<script", "<img", "<b>bold", "onerror=alert(1)>"] {
            assert!(!answer.text.contains(raw), "{raw} unescaped on {page}");
        }
        assert!(
            answer
                .text
                .contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;&lt;img"),
            "{page}"
        );
    }
}

#[tokio::test]
async fn the_snippet_is_safe_to_paste_and_the_markup_names_the_class_pages_use() {
    let d = Dash::new().await;
    let body = json!({"name": "Snip", "id": "hero", "visibility": "published",
                      "settings": {"myna": {"html": {"cssClass": "banner-test"}}},
                      "variants": {"x\u{2028}run()//": {}, "</script><script>alert(1)</script>": {},
                                   "rtl\u{202e}evil": {}}});
    let (status, read) = d.api(Method::POST, "/v2/experiment", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let uuid = read["uuid"].as_str().unwrap_or_default().to_owned();
    let browser = d.sign_in().await;
    let page = d.page(&browser, &format!("/experiments/{uuid}")).await;
    let snippet = between(&page.text, "<code id=\"snippet-code\">", "</code>").expect("snippet");
    // As pasted: the page's text, unescaped from HTML.
    let pasted = snippet
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(
        !pasted.contains('\u{2028}'),
        "a line break inside a // comment: {pasted}"
    );
    assert!(!pasted.to_lowercase().contains("</script"), "{pasted}");
    assert!(pasted.contains(r#""x\u2028run()//""#), "{pasted}");
    assert!(!pasted.contains('\u{202e}'), "a bidi control: {pasted}");
    assert!(pasted.contains(r#""rtl\u202eevil""#), "{pasted}");
    assert!(
        pasted.contains(r#""\u003c/script>\u003cscript>alert(1)\u003c/script>""#),
        "{pasted}"
    );
    // The markup card says the class the deployment script binds.
    let class = between(&page.text, "<code id=\"markup-class\">", "</code>").expect("class");
    assert_eq!(class, "banner-test");
    let markup = between(&page.text, "<code id=\"markup-code\">", "</code>").expect("markup");
    assert!(markup.contains("class=&quot;banner-test&quot;"), "{markup}");
}

#[tokio::test]
async fn the_keys_page_creates_lists_and_revokes() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let created = d
        .submit(&browser, "/keys", &[("name", "landing <page>")])
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let keys = d.storage.api_keys(d.account).await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name.as_deref(), Some("landing <page>"));
    let key = keys[0].uuid;
    let page = d.page(&browser, "/keys?done=created").await;
    assert!(page.text.contains(&key.to_string()));
    assert!(page.text.contains("landing &lt;page&gt;"));
    // The key works on the API until it is revoked, then at once no more.
    let uuid = d.experiment("Keyed").await;
    let read_with_key = || async {
        let headers = [("authorization", format!("ApiKey {key}"))];
        d.send(
            Method::GET,
            &format!("/v2/experiment/{uuid}"),
            &headers,
            None,
        )
        .await
        .status
    };
    assert_eq!(read_with_key().await, StatusCode::OK);
    let revoked = d
        .submit(&browser, &format!("/keys/{key}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER);
    assert_eq!(revoked.location(), "/keys?done=revoked");
    assert_eq!(read_with_key().await, StatusCode::UNAUTHORIZED);
    assert!(
        d.storage
            .api_keys(d.account)
            .await
            .expect("keys")
            .is_empty()
    );
    // Another account's key, or none, is not found.
    let again = d
        .submit(&browser, &format!("/keys/{key}/revoke"), &[])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // A refused name: the form keeps what was typed, the field marked.
    let long = format!("{}\u{202e}", "k".repeat(300));
    let refused = d.submit(&browser, "/keys", &[("name", &long)]).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let field = tag(&refused.text, "key-name");
    assert!(field.contains(&format!("value=\"{long}\"")), "{field}");
    assert!(field.contains("aria-invalid=\"true\""), "{field}");
    // The problems take the focus, name the field by its label, link to it,
    // and describe it.
    assert!(
        refused
            .text
            .contains(r#"id="form-problems" role="alert" tabindex="-1" autofocus"#)
    );
    assert!(
        refused
            .text
            .contains(r##"<li id="problem-0"><a href="#key-name">Name</a>: "##),
        "{}",
        refused.text
    );
    assert!(field.contains("aria-describedby=\"problem-0\""), "{field}");
    // The title, read first, says so too.
    assert!(
        refused
            .text
            .contains("<title>Error: API keys · Myna</title>")
    );
}

#[tokio::test]
async fn the_list_searches_and_filters_like_the_search_endpoint() {
    let d = Dash::new().await;
    d.experiment("Alpha launch").await;
    let (_, draft) = d
        .api(
            Method::POST,
            "/v2/experiment",
            Some(json!({"name": "Beta draft", "variants": {"x": {}}})),
        )
        .await;
    assert_eq!(draft["visibility"], "draft");
    let browser = d.sign_in().await;
    let all = d.page(&browser, "/").await;
    assert!(all.text.contains("Alpha launch") && all.text.contains("Beta draft"));
    let published = d.page(&browser, "/?visibility=published").await;
    assert!(published.text.contains("Alpha launch") && !published.text.contains("Beta draft"));
    let searched = d.page(&browser, "/?q=beta").await;
    assert!(!searched.text.contains("Alpha launch") && searched.text.contains("Beta draft"));
    let bad = d.page(&browser, "/?sort=sideways").await;
    assert!(bad.text.contains("<code>sort</code>"));
    assert_eq!(
        bad.status,
        StatusCode::BAD_REQUEST,
        "a search it cannot run"
    );
    // Another account's experiments never show, and its pages are not found.
    let other = d
        .page(&browser, &format!("/experiments/{}", Uuid::new_v4()))
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn sign_in_sends_back_to_the_page_asked_for_and_never_off_site() {
    let d = Dash::new().await;
    let page = d
        .send(Method::GET, "/signin?next=%2F%2Fevil.example", &[], None)
        .await;
    assert!(
        page.text.contains("name=\"next\" value=\"/\""),
        "{}",
        page.text
    );
    let page = d.send(Method::GET, "/signin?next=%2Fkeys", &[], None).await;
    assert!(page.text.contains("name=\"next\" value=\"/keys\""));
    assert_eq!(
        d.send(Method::GET, "/assets/dashboard.css", &[], None)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_signed_in_redirect_to_next_never_leaves_the_site_and_always_has_a_location() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let cookie = [("cookie", browser.cookie.clone())];
    // TAB, LF, CR, NUL, DEL, a backslash, `//` anywhere, Unicode controls,
    // a scheme: each a way off the site or a 303 without Location before.
    for next in [
        "%2F%09%2Fevil.example",
        "%2F%0A%2Fevil.example",
        "%2F%0D%2Fevil.example",
        "%2F%00",
        "%2F%7F",
        "%2F%5Cevil.example",
        "%2Fa%2F%2Fevil.example",
        "%2F%E2%80%AE%2Fevil.example",
        "%2F%C2%85%2Fevil.example",
        "https%3A%2F%2Fevil.example",
        "%2F%20%2Fevil.example",
    ] {
        let answer = d
            .send(Method::GET, &format!("/signin?next={next}"), &cookie, None)
            .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(answer.location(), "/", "{next}");
    }
    let answer = d
        .send(
            Method::GET,
            "/signin?next=%2Fkeys%3Fdone%3Dcreated",
            &cookie,
            None,
        )
        .await;
    assert_eq!(answer.location(), "/keys?done=created");
    // The sign-in form's own `next` field is held to the same rule.
    let page = d.send(Method::GET, "/signin", &[], None).await;
    let signin = page.cookie("myna_signin").unwrap_or_default();
    let headers = [(
        "cookie",
        signin.split(';').next().unwrap_or_default().to_owned(),
    )];
    let body = form(&[
        ("csrf", &page.csrf()),
        ("next", "/\t/evil.example"),
        ("email", EMAIL),
        ("password", PASSWORD),
    ]);
    let answer = d.send(Method::POST, "/signin", &headers, Some(body)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location(), "/");
}

#[tokio::test]
async fn the_sign_in_form_needs_a_token_the_server_signed_not_any_matching_pair() {
    let d = Dash::new().await;
    for value in ["x", "0123456789abcdef0123456789abcdef", "a.1.b"] {
        let headers = [("cookie", format!("myna_signin={value}"))];
        let body = form(&[
            ("csrf", value),
            ("next", "/"),
            ("email", EMAIL),
            ("password", PASSWORD),
        ]);
        let answer = d.send(Method::POST, "/signin", &headers, Some(body)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{value}");
        assert!(answer.cookie("myna_session").is_none(), "{value}");
    }
    // A real form's token with another browser's cookie is refused too.
    let page = d.send(Method::GET, "/signin", &[], None).await;
    let headers = [("cookie", "myna_signin=0011".to_owned())];
    let body = form(&[
        ("csrf", &page.csrf()),
        ("email", EMAIL),
        ("password", PASSWORD),
    ]);
    let answer = d.send(Method::POST, "/signin", &headers, Some(body)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // An hour later the form has expired.
    let page = d.send(Method::GET, "/signin", &[], None).await;
    let signin = page.cookie("myna_signin").unwrap_or_default();
    let headers = [(
        "cookie",
        signin.split(';').next().unwrap_or_default().to_owned(),
    )];
    d.clock.advance(3_600_000);
    let body = form(&[
        ("csrf", &page.csrf()),
        ("email", EMAIL),
        ("password", PASSWORD),
    ]);
    let answer = d.send(Method::POST, "/signin", &headers, Some(body)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_api_token_is_no_dashboard_session_and_a_session_is_no_bearer_token() {
    let d = Dash::new().await;
    let (status, login) = d.api(Method::POST, "/v2/user/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let token = login["token"].as_str().unwrap_or_default().to_owned();
    let csrf = "0".repeat(32);
    for value in [format!("{token}.{csrf}"), token.clone()] {
        let cookie = [("cookie", format!("myna_session={value}"))];
        let page = d.send(Method::GET, "/keys", &cookie, None).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{value}");
        assert!(page.location().starts_with("/signin"));
        let body = form(&[("csrf", &csrf), ("name", "planted")]);
        let post = d.send(Method::POST, "/keys", &cookie, Some(body)).await;
        assert_eq!(post.status, StatusCode::SEE_OTHER, "{value}");
    }
    assert!(
        d.storage
            .api_keys(d.account)
            .await
            .expect("keys")
            .is_empty(),
        "no key was created"
    );
    // The other way round: a session cookie's value is no Bearer token.
    let browser = d.sign_in().await;
    let session = browser
        .cookie
        .trim_start_matches("myna_session=")
        .to_owned();
    let answer = d
        .send(
            Method::GET,
            "/v2/experiment",
            &[("authorization", format!("Bearer {session}"))],
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // The session's CSRF token is not the holder's to choose: any other is refused.
    assert_eq!(d.page(&browser, "/keys").await.status, StatusCode::OK);
    let forged = Browser {
        cookie: browser.cookie.clone(),
        csrf: "f".repeat(64),
    };
    let post = d.submit(&forged, "/keys", &[("name", "planted")]).await;
    assert_eq!(post.status, StatusCode::FORBIDDEN);
    let post = d.submit(&browser, "/keys", &[("name", "mine")]).await;
    assert_eq!(post.status, StatusCode::SEE_OTHER);
    assert_eq!(d.storage.api_keys(d.account).await.expect("keys").len(), 1);
}

#[tokio::test]
async fn repeated_wrong_passwords_get_a_clear_429_page_with_retry_after() {
    let d = Dash::new().await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(d.sign_in_as(EMAIL, "wrong password", &[]).await.status);
    }
    assert_eq!(statuses[..11], [StatusCode::UNAUTHORIZED; 11]);
    let limited = d.sign_in_as(EMAIL, PASSWORD, &[]).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.cookie("myna_session").is_none());
    assert!(
        limited.text.contains("Too many failed sign-in attempts"),
        "{}",
        limited.text
    );
    let retry = limited
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    assert!(retry >= 1, "Retry-After: {retry}");
    // Once the wait is over, the right password signs in.
    d.clock.advance(retry * 1000);
    let answer = d.sign_in_as(EMAIL, PASSWORD, &[]).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
}

#[tokio::test]
async fn a_session_and_its_csrf_token_hold_across_a_restart_on_the_same_database() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    // Another server on the same database: a restart, or another instance.
    let options = Options {
        clock: d.clock.clone(),
        passwords: Passwords::fast_for_tests(),
        ..Options::default()
    };
    let (state, _background) = AppState::start(d.storage.clone(), options)
        .await
        .expect("start");
    let client = TestClient::new(app(state).map_to_response().boxed());
    let response = client
        .post("/keys")
        .header("cookie", browser.cookie.as_str())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &browser.csrf), ("name", "after restart")]))
        .send()
        .await
        .0;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let keys = d.storage.api_keys(d.account).await.expect("keys");
    assert_eq!(keys.len(), 1, "the form was accepted");
}

#[tokio::test]
async fn the_page_leads_with_the_verdict_and_the_list_shows_each_verdict() {
    let d = Dash::new().await;
    let decided = d.experiment("Decided headline").await;
    let fresh = d.experiment("Fresh headline").await;
    let settings = json!({"settingsUpdates": {"myna.decision.minViews": 100}});
    let uri = format!("/v2/experiment/{decided}");
    let (status, _) = d.api(Method::PUT, &uri, Some(settings)).await;
    assert_eq!(status, StatusCode::OK);
    let events = |variant: &str, views: usize, rewards: usize| {
        let mut events = vec![json!({"typename": "view", "variant": variant}); views];
        events.extend(vec![
            json!({"typename": "reward", "variant": variant, "amount": 1});
            rewards
        ]);
        json!({ "events": events })
    };
    let record = format!("/v2/experiment/{decided}/record");
    for body in [events("a", 300, 20), events("b", 300, 150)] {
        let (status, form) = d.api(Method::POST, &record, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{form}");
    }
    // Only `a` is shown while both are served: the health check fails.
    d.api(Method::GET, &format!("/v2/experiment/{fresh}"), None)
        .await;
    let record = format!("/v2/experiment/{fresh}/record");
    let (status, _) = d.api(Method::POST, &record, Some(events("a", 20, 0))).await;
    assert_eq!(status, StatusCode::OK);
    d.state.flush_served().await.unwrap();
    let (_, decision) = d
        .api(
            Method::GET,
            &format!("/v2/experiment/{decided}/decision"),
            None,
        )
        .await;
    assert_eq!(decision["verdict"], "decided", "{decision}");
    let message = decision["message"].as_str().unwrap().to_owned();
    let browser = d.sign_in().await;
    let page = d.page(&browser, &format!("/experiments/{decided}")).await;
    assert_eq!(page.status, StatusCode::OK);
    // The verdict's sentence (escaped as the page escapes text) comes first.
    let escaped = message.replace('\'', "&#39;");
    let verdict_at = page.text.find(&escaped).expect("the verdict sentence");
    let results_at = page.text.find("id=\"results\"").unwrap();
    assert!(verdict_at < results_at);
    assert!(page.text.contains("data-verdict=\"decided\""));
    assert!(!page.text.contains("id=\"health\""), "all checks are ok");
    // The fresh one: collecting, and its failing check with its message.
    let page = d.page(&browser, &format!("/experiments/{fresh}")).await;
    assert!(page.text.contains("data-verdict=\"collecting\""));
    let health = between(&page.text, "id=\"health\"", "</ul>").expect("health warnings");
    assert!(
        health.contains("data-check=\"variant-never-shown\""),
        "{health}"
    );
    assert!(health.contains("data-status=\"failing\""));
    let (_, fresh_decision) = d
        .api(
            Method::GET,
            &format!("/v2/experiment/{fresh}/decision"),
            None,
        )
        .await;
    let failing: Vec<&Value> = fresh_decision["health"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "ok")
        .collect();
    assert!(!failing.is_empty(), "{fresh_decision}");
    for check in failing {
        let message = check["message"].as_str().unwrap().replace('\'', "&#39;");
        assert!(health.contains(&message), "{health}");
    }
    assert!(!health.contains("data-status=\"ok\""));
    // The list: each experiment's verdict from the cached counts.
    let list = d.page(&browser, "/").await;
    let row = |uuid: Uuid| between(&list.text, &format!("data-uuid=\"{uuid}\""), "</tr>");
    let decided_row = row(decided).expect("the decided row");
    assert!(
        decided_row.contains("data-verdict=\"decided\""),
        "{decided_row}"
    );
    let fresh_row = row(fresh).expect("the fresh row");
    assert!(
        fresh_row.contains("data-verdict=\"collecting\""),
        "{fresh_row}"
    );
}

#[tokio::test]
async fn the_experiment_page_links_a_csv_of_its_hourly_totals() {
    let d = Dash::new().await;
    let uuid = d.experiment("Exported").await;
    let events = json!({"events": [
        {"typename": "view", "variant": "a"},
        {"typename": "reward", "variant": "a", "amount": 0.5},
        {"typename": "view", "variant": "b"}]});
    d.record(&uuid, events).await;
    let browser = d.sign_in().await;
    let page = d.page(&browser, &format!("/experiments/{uuid}")).await;
    let link = format!("href=\"/experiments/{uuid}/export.csv\"");
    assert!(page.text.contains(&link), "{}", page.text);
    let csv = d
        .page(&browser, &format!("/experiments/{uuid}/export.csv"))
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.header("content-disposition")
            .is_some_and(|d| d.starts_with("attachment"))
    );
    let lines: Vec<&str> = csv.text.lines().collect();
    assert_eq!(lines.len(), 3, "{}", csv.text);
    assert_eq!(lines[0], "hour,variant,views,totalReward");
    assert!(
        lines[1].ends_with(",a,1,0.5") && lines[2].ends_with(",b,1,0.0"),
        "{}",
        csv.text
    );
    // Another account's experiment is not found, not exported.
    let other = d
        .page(
            &browser,
            &format!("/experiments/{}/export.csv", Uuid::new_v4()),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_webhooks_page_adds_shows_the_secret_once_lists_deliveries_and_deletes() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let page = d.page(&browser, "/webhooks").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("No webhooks yet."));
    assert!(
        d.page(&browser, "/")
            .await
            .text
            .contains("href=\"/webhooks\"")
    );

    // A local port nothing listens on: deliveries fail to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    // (`<` would be stored percent-encoded, as it is sent; `&` stays.)
    let url = format!("http://127.0.0.1:{port}/hook?from=myna&to=me");
    let shown = format!("http://127.0.0.1:{port}/hook?from=myna&amp;to=me");
    let url = url.as_str();
    let added = d.submit(&browser, "/webhooks", &[("url", url)]).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    let secret = between(&added.text, "id=\"secret\"", "</div>")
        .and_then(|block| between(&block, "readonly value=\"", "\""))
        .expect("the secret on the page");
    assert_eq!(secret.len(), 64);
    assert!(added.text.contains(&shown));
    let hooks = d.storage.webhooks(d.account).await.expect("webhooks");
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].url, url);
    // Never again: not on the page, not in the API's list.
    let page = d.page(&browser, "/webhooks").await;
    assert!(page.text.contains(&shown));
    assert!(!page.text.contains(&secret));
    let (_, listed) = d.api(Method::GET, "/v2/webhook", None).await;
    assert!(!listed.to_string().contains(&secret));

    // A bad URL: the problem on the page, nothing added.
    let bad = d
        .submit(&browser, "/webhooks", &[("url", "ftp://example.com/")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // In the form's words, linked to the field, which it describes.
    assert!(
        bad.text
            .contains(r##"<li id="problem-0"><a href="#webhook-url">URL</a>: "##),
        "{}",
        bad.text
    );
    let field = tag(&bad.text, "webhook-url");
    assert!(field.contains("aria-invalid=\"true\""), "{field}");
    assert!(field.contains("aria-describedby=\"problem-0\""), "{field}");
    assert!(
        bad.text.contains(r#"value="ftp://example.com/""#),
        "the URL stays in its field to be mended: {}",
        bad.text
    );
    // The form posted again (a reload of the page that showed the secret):
    // no second webhook, which would get every event twice.
    let again = d.submit(&browser, "/webhooks", &[("url", url)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.text);
    assert!(!again.text.contains("id=\"secret\""));
    assert_eq!(
        d.storage.webhooks(d.account).await.expect("webhooks").len(),
        1
    );

    // A change of decision shows up among the deliveries.
    let uuid = d.experiment("Hooked").await;
    let events = json!({"events": [{"typename": "reward", "variant": "b", "amount": 1.0}]});
    d.record(&uuid, events).await;
    assert_eq!(check_now(&d.state).await.expect("check"), 1);
    let page = d.page(&browser, "/webhooks").await;
    let deliveries = between(&page.text, "id=\"deliveries\"", "</table>").expect("deliveries");
    assert!(deliveries.contains("health-failing"));
    assert!(deliveries.contains(&format!(
        "href=\"/experiments/{uuid}\"><bdi>Hooked</bdi></a>"
    )));
    assert!(deliveries.contains("pending"));
    // An attempt that failed: retrying, with its outcome listed.
    assert_eq!(deliver_now(&d.state).await.expect("deliver"), 1);
    let page = d.page(&browser, "/webhooks").await;
    let deliveries = between(&page.text, "id=\"deliveries\"", "</table>").expect("deliveries");
    assert!(deliveries.contains("retrying"));
    assert!(deliveries.contains("could not connect"));

    let hook = hooks[0].uuid;
    let deleted = d
        .submit(&browser, &format!("/webhooks/{hook}/delete"), &[])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(deleted.location(), "/webhooks?done=deleted");
    assert!(
        d.storage
            .webhooks(d.account)
            .await
            .expect("webhooks")
            .is_empty()
    );
    let page = d.page(&browser, "/webhooks?done=deleted").await;
    assert!(page.text.contains("The webhook was deleted."));
    assert!(page.text.contains("No deliveries yet."));
    let again = d
        .submit(&browser, &format!("/webhooks/{hook}/delete"), &[])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_id_field_sets_the_id_pages_use_and_the_page_shows_its_markup() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let new = d.new_form(&browser).await;
    let label = between(&new.text, "<label for=\"id\">", "</label>").expect("an id field");
    assert!(
        label.starts_with("ID ") && label.contains("used by pages"),
        "{label}"
    );
    assert!(new.text.contains(r#"name="id""#));
    // Blank: the default from the name.
    let created = d
        .submit(
            &browser,
            "/experiments/new",
            &[
                ("name", "Hero banner"),
                ("id", ""),
                ("visibility", "published"),
                ("variants", "a\r\nb\"<x>\r\n"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.text);
    let uuid = created
        .location()
        .strip_prefix("/experiments/")
        .and_then(|rest| rest.strip_suffix("?done=created"))
        .and_then(|u| Uuid::parse_str(u).ok())
        .expect("redirected to the new experiment");
    let uri = format!("/v2/experiment/{uuid}");
    assert_eq!(d.api(Method::GET, &uri, None).await.1["id"], "hero-banner");
    // The page says which id pages use, and the markup of each variant,
    // escaped.
    let page = d.page(&browser, &format!("/experiments/{uuid}")).await;
    assert_eq!(
        between(&page.text, "<span id=\"experiment-id\">", "<").as_deref(),
        Some("hero-banner")
    );
    let markup = between(&page.text, "<code id=\"markup-code\">", "</code>").expect("markup");
    assert_eq!(
        markup,
        "&lt;div class=&quot;myna-hero-banner&quot; data-show=&quot;a&quot;&gt;…&lt;/div&gt;\n\
         &lt;div class=&quot;myna-hero-banner&quot; data-show=&quot;b&amp;quot;&lt;x&gt;&quot;&gt;…&lt;/div&gt;\n"
    );
    assert!(page.text.contains(r#"id="edit-id""#) && page.text.contains(r#"value="hero-banner""#));

    // The edit form changes it; a taken one is refused with the problem shown.
    let other = d
        .submit(
            &browser,
            "/experiments/new",
            &[
                ("name", "Other"),
                ("id", "hero"),
                ("visibility", "published"),
                ("variants", "x"),
            ],
        )
        .await;
    assert_eq!(other.status, StatusCode::SEE_OTHER, "{}", other.text);
    let edit = [
        ("name", "Hero banner"),
        ("id", "hero"),
        ("visibility", "published"),
        ("settings", "{}"),
        ("v0.id", "a"),
        ("v0.name", "a"),
        ("v0.settings", "{}"),
        ("v1.id", "b\"<x>"),
        ("v1.name", "b\"<x>"),
        ("v1.settings", "{}"),
    ];
    let refused = d
        .submit(&browser, &format!("/experiments/{uuid}"), &edit)
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(refused.text.contains("has the id"), "{}", refused.text);
    assert_eq!(d.api(Method::GET, &uri, None).await.1["id"], "hero-banner");
    let mut edit = edit.to_vec();
    edit[1] = ("id", "hero_2");
    let saved = d
        .submit(&browser, &format!("/experiments/{uuid}"), &edit)
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(d.api(Method::GET, &uri, None).await.1["id"], "hero_2");
}

#[tokio::test]
async fn the_keys_page_shows_each_keys_deployment() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let key = d.api_key().await;
    let headers = [
        // The session as a browser keeps it over HTTPS.
        ("cookie", format!("__Host-{}", browser.cookie)),
        ("host", "ab.example.com".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
    ];
    let page = d.send(Method::GET, "/keys", &headers, None).await;
    assert_eq!(page.status, StatusCode::OK);
    let section =
        between(&page.text, "<section id=\"deployment\"", "</section>").expect("a section");
    let script = between(&section, "<code class=\"deployment-script\">", "</code>");
    assert_eq!(
        script,
        Some(format!(
            "&lt;script src=&quot;https://ab.example.com/v2/deployment/{key}/myna.js&quot;&gt;&lt;/script&gt;"
        ))
    );
    let json_url = format!("https://ab.example.com/v2/deployment/{key}/myna.json");
    assert!(
        section.contains(&format!("href=\"{json_url}\"")),
        "{section}"
    );
    // The JSON URL answers the deployment.
    let (status, _) = d
        .api(
            Method::GET,
            &format!("/v2/deployment/{key}/myna.json"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Without keys, no deployment to show.
    d.submit(&browser, &format!("/keys/{key}/revoke"), &[])
        .await;
    let page = d.page(&browser, "/keys").await;
    assert!(!page.text.contains("id=\"deployment\""));
}

#[tokio::test]
async fn an_edit_form_loaded_before_a_change_elsewhere_does_not_undo_it() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let uuid = d.experiment("Stale form").await;
    let uri = format!("/experiments/{uuid}");
    let loaded = d.page(&browser, &uri).await;
    let was = loaded.was();
    assert_eq!(was.len(), 32, "{}", loaded.text);
    // Meanwhile, through the API: a setting and a variant's name.
    let change = json!({"settingsUpdates": {"fromApi": 42},
                        "variantUpdates": {"b": {"name": "Renamed by the API"}}});
    let api = format!("/v2/experiment/{uuid}");
    let (status, _) = d.api(Method::PUT, &api, Some(change)).await;
    assert_eq!(status, StatusCode::OK);
    // The old page's form, submitted as it was loaded (a new name typed).
    let stale = [
        ("was", was.as_str()),
        ("name", "Renamed in the old tab"),
        ("visibility", "published"),
        ("settings", "{}"),
        ("v0.id", "a"),
        ("v0.name", "Alpha"),
        ("v0.settings", "{}"),
        ("v1.id", "b"),
        ("v1.name", "b"),
        ("v1.settings", "{}"),
    ];
    let refused = d.submit(&browser, &uri, &stale).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused.text.contains("changed elsewhere"),
        "{}",
        refused.text
    );
    let (_, read) = d.api(Method::GET, &api, None).await;
    assert_eq!(read["name"], "Stale form", "nothing saved");
    assert_eq!(read["settings"]["fromApi"], 42, "the API's change kept");
    assert_eq!(read["variants"]["b"]["name"], "Renamed by the API");
    // The answer keeps the edits typed, tagged with the definition as it
    // is now: saving it again replaces the newer version knowingly.
    assert!(refused.text.contains("Renamed in the old tab"));
    let mut again = stale.to_vec();
    let now = refused.was();
    assert_ne!(now, was);
    again[0] = ("was", now.as_str());
    let saved = d.submit(&browser, &uri, &again).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let (_, read) = d.api(Method::GET, &api, None).await;
    assert_eq!(read["name"], "Renamed in the old tab");
    // A form without the tag is never taken for a fresh one.
    let mut untagged = stale.to_vec();
    untagged[0] = ("was", "");
    let refused = d.submit(&browser, &uri, &untagged).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
}

/// A form that renamed a variant deleted elsewhere meanwhile: the 409 page
/// says that edit is gone with it, naming the variant, rather than
/// dropping it unseen.
#[tokio::test]
async fn a_refused_edit_form_names_the_edited_variants_deleted_elsewhere() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let uuid = d.experiment("Stale form").await;
    let uri = format!("/experiments/{uuid}");
    let loaded = d.page(&browser, &uri).await;
    let (was, digests) = (loaded.was(), loaded.loaded());
    let settings = loaded.textarea("settings");
    // Elsewhere: a and b deleted, c added. The old tab renamed b only.
    let api = format!("/v2/experiment/{uuid}");
    let change = json!({"variantUpdates": {"a": null, "b": null, "c": {}}});
    let (status, _) = d.api(Method::PUT, &api, Some(change)).await;
    assert_eq!(status, StatusCode::OK);
    let stale = edit_form(
        &was,
        &digests,
        &settings,
        "Alpha",
        "Bee, renamed in the old tab",
    );
    let refused = d.submit(&browser, &uri, &stale).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    assert!(
        refused
            .text
            .contains("Variant \u{201c}b\u{201d} was deleted elsewhere: your changes to it"),
        "{}",
        refused.text
    );
    assert!(!refused.text.contains("Bee, renamed in the old tab"));
    // a, deleted too but not edited in the old tab, lost nothing: not named.
    assert!(!refused.text.contains("Variant \u{201c}a\u{201d}"));
}

/// The edit form of [`Dash::experiment`]'s experiment (variants a and b,
/// no settings of their own) as a page loaded with `was` and `loaded`
/// posts it, the variants named `a` and `b`.
fn edit_form<'a>(
    was: &'a str,
    loaded: &'a str,
    settings: &'a str,
    a: &'a str,
    b: &'a str,
) -> [(&'static str, &'a str); 11] {
    [
        ("was", was),
        ("loaded", loaded),
        ("name", "Stale form"),
        ("visibility", "published"),
        ("settings", settings),
        ("v0.id", "a"),
        ("v0.name", a),
        ("v0.settings", "{}"),
        ("v1.id", "b"),
        ("v1.name", b),
        ("v1.settings", "{}"),
    ]
}

#[tokio::test]
async fn a_refused_edit_form_shows_the_newer_version_with_only_the_owners_edits_on_top() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let uuid = d.experiment("Stale form").await;
    let uri = format!("/experiments/{uuid}");
    let loaded = d.page(&browser, &uri).await;
    let (was, digests) = (loaded.was(), loaded.loaded());
    let settings = loaded.textarea("settings");
    assert!(!digests.is_empty(), "{}", loaded.text);
    // Meanwhile, through the API: a setting, a variant's name, draft.
    let change = json!({"visibility": "draft", "settingsUpdates": {"fromApi": 42},
                        "variantUpdates": {"b": {"name": "Renamed by the API"}}});
    let api = format!("/v2/experiment/{uuid}");
    let (status, _) = d.api(Method::PUT, &api, Some(change)).await;
    assert_eq!(status, StatusCode::OK);
    // The old page's form with one edit: a's name. Its textareas as a
    // browser sends them (CRLF).
    let crlf = settings.replace('\n', "\r\n");
    let stale = edit_form(&was, &digests, &crlf, "Alpha, renamed in the old tab", "b");
    let refused = d.submit(&browser, &uri, &stale).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    // The page's form: the API's changes, and the one edit.
    assert_eq!(refused.input("v0.name"), "Alpha, renamed in the old tab");
    assert_eq!(refused.input("v1.name"), "Renamed by the API");
    assert!(
        refused.textarea("settings").contains("fromApi"),
        "{}",
        refused.text
    );
    assert!(
        refused.text.contains("value=\"draft\" selected"),
        "{}",
        refused.text
    );
    // Saved again as the page shows it: only the edit is applied.
    let form = [
        ("was", refused.was()),
        ("loaded", refused.loaded()),
        ("name", refused.input("name")),
        ("visibility", "draft".to_owned()),
        ("settings", refused.textarea("settings")),
        ("v0.id", "a".to_owned()),
        ("v0.name", refused.input("v0.name")),
        ("v0.settings", refused.textarea("v0.settings")),
        ("v1.id", "b".to_owned()),
        ("v1.name", refused.input("v1.name")),
        ("v1.settings", refused.textarea("v1.settings")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = d.submit(&browser, &uri, &form).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let (_, read) = d.api(Method::GET, &api, None).await;
    assert_eq!(
        read["variants"]["a"]["name"],
        "Alpha, renamed in the old tab"
    );
    assert_eq!(read["variants"]["b"]["name"], "Renamed by the API");
    assert_eq!(read["settings"]["fromApi"], 42);
    assert_eq!(read["visibility"], "draft");
}

#[tokio::test]
async fn an_experiment_the_api_accepts_can_be_edited_and_forms_say_what_is_wrong() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    // Near the limit per settings object (64 KiB), arrays throughout: the
    // page shows them indented and the browser percent-encodes the form to
    // several times the definition's size (over 1 MiB here).
    let list = vec![1; 30_000];
    let body = json!({"name": "Arrays", "settings": {"list": list},
                      "variants": {"a": {"settings": {"list": list}},
                                   "b": {"settings": {"list": list}}}});
    let (status, created) = d.api(Method::POST, "/v2/experiment", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let uuid = created["uuid"].as_str().expect("uuid").to_owned();
    let uri = format!("/experiments/{uuid}");
    let page = d.page(&browser, &uri).await;
    let shown = |name: &str| {
        let start = format!("name=\"{name}\"");
        let from = page.text.find(&start).expect(name);
        let from = page.text[from..].find('>').expect("textarea") + from + 1;
        let to = page.text[from..].find("</textarea>").expect("end") + from;
        page.text[from..to]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let (settings, a, b) = (
        shown("settings"),
        shown("v0.settings"),
        shown("v1.settings"),
    );
    let fields = [
        ("name", "Arrays, renamed"),
        ("visibility", "draft"),
        ("settings", settings.as_str()),
        ("v0.id", "a"),
        ("v0.name", "a"),
        ("v0.settings", a.as_str()),
        ("v1.id", "b"),
        ("v1.name", "b"),
        ("v1.settings", b.as_str()),
    ];
    assert!(
        form(&fields).len() > 1024 * 1024,
        "over the API's body limit"
    );
    let saved = d.submit(&browser, &uri, &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let (_, read) = d
        .api(Method::GET, &format!("/v2/experiment/{uuid}"), None)
        .await;
    assert_eq!(read["name"], "Arrays, renamed");
    assert_eq!(
        read["variants"]["b"]["settings"]["list"]
            .as_array()
            .map(Vec::len),
        Some(30_000)
    );

    // A settings textarea is read as strictly as the API's bodies: a key
    // twice is refused at its path, not the last one kept.
    let twice = d
        .submit(
            &browser,
            "/experiments/new",
            &[
                ("name", "Twice"),
                ("visibility", "draft"),
                ("variants", "a"),
                ("settings", r#"{"x": {"k": 1, "k": 2}}"#),
            ],
        )
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST, "{}", twice.text);
    assert!(
        twice
            .text
            .contains(r##"<a href="#settings">Settings</a> at <code>x.k</code>: "##),
        "{}",
        twice.text
    );
    assert!(twice.text.contains("given twice"), "{}", twice.text);

    // A form that is not UTF-8 once decoded is refused, not stored with
    // U+FFFD in place of its bytes.
    let cookie = ("cookie", browser.cookie.clone());
    let raw = format!(
        "csrf={}&visibility=draft&name=%FF%FE&variants=a",
        browser.csrf
    );
    let headers = [
        cookie.clone(),
        (
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        ),
    ];
    let bad = d
        .app
        .send_with(
            Method::POST,
            "/experiments/new",
            &headers,
            Some(raw.into_bytes()),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.text.contains("not sent as UTF-8"), "{}", bad.text);
    // One too large is said to be so (not taken for a forged form).
    let mut huge = format!("csrf={}&name=x&variants=a&settings=", browser.csrf).into_bytes();
    huge.resize(17 * 1024 * 1024, b'a');
    let large = d
        .app
        .send_with(Method::POST, "/experiments/new", &headers, Some(huge))
        .await;
    assert_eq!(
        large.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        large.text
    );
    assert!(large.text.contains("may be at most"), "{}", large.text);
}

#[tokio::test]
async fn the_signin_field_takes_any_account_name() {
    let d = Dash::new().await;
    let page = d.send(Method::GET, "/signin", &[], None).await;
    // `type="email"` would make the browser refuse `admin`, a name the
    // server accepts for an account.
    assert!(
        page.text.contains("name=\"email\" type=\"text\""),
        "{}",
        page.text
    );
    assert!(!page.text.contains("type=\"email\""), "{}", page.text);
}

#[tokio::test]
async fn the_signin_form_is_read_only_up_to_16_kib() {
    let d = Dash::new().await;
    // Anyone may post it: a large one is refused before it is parsed.
    let large = "a=&".repeat(20_000);
    let answer = d.send(Method::POST, "/signin", &[], Some(large)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("The form could not be read."));
    // One that is not UTF-8 once decoded is not read (not a guess spent,
    // nor other bytes passing for the password).
    let bad_password = format!("{}%FF", PASSWORD.replace(' ', "+"));
    let page = d.send(Method::GET, "/signin", &[], None).await;
    let cookie = page.cookie("myna_signin").expect("a sign-in cookie");
    let cookie = (
        "cookie",
        cookie.split(';').next().unwrap_or_default().to_owned(),
    );
    let body = format!(
        "csrf={}&next=%2F&email={}&password={bad_password}",
        page.csrf(),
        EMAIL.replace('@', "%40")
    );
    let answer = d.send(Method::POST, "/signin", &[cookie], Some(body)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert!(answer.text.contains("The form could not be read."));
    // A real one is far below it and still signs in.
    let signed = d.sign_in_as(EMAIL, PASSWORD, &[]).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
}

impl Dash {
    /// A published experiment with `settings`, its variants' ids and their
    /// (views, rewards) recorded through the API.
    async fn counted(&self, name: &str, settings: Value, counts: &[(&str, usize, usize)]) -> Uuid {
        let variants: serde_json::Map<String, Value> = counts
            .iter()
            .map(|(id, _, _)| ((*id).to_owned(), json!({})))
            .collect();
        let body = json!({"name": name, "visibility": "published",
                          "settings": settings, "variants": variants});
        let (status, form) = self.api(Method::POST, "/v2/experiment", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{form}");
        let uuid = form["uuid"]
            .as_str()
            .and_then(|u| Uuid::parse_str(u).ok())
            .expect("a uuid");
        for &(variant, views, rewards) in counts {
            let mut events = vec![json!({"typename": "view", "variant": variant}); views];
            events.extend(vec![
                json!({"typename": "reward", "variant": variant});
                rewards
            ]);
            let record = format!("/v2/experiment/{uuid}/record");
            // At most 1,000 events a batch.
            for batch in events.chunks(1_000) {
                let body = json!({ "events": batch });
                let (status, form) = self.api(Method::POST, &record, Some(body)).await;
                assert_eq!(status, StatusCode::OK, "{form}");
            }
        }
        uuid
    }
}

/// The results table's row of variant `id`.
fn row<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<tr data-variant=\"{id}\">"))
        .expect("the row");
    let row = &html[start..];
    &row[..row.find("</tr>").expect("the row's end")]
}

/// The results table's note on what the weight is.
fn weight_note(html: &str) -> String {
    let results = between(html, "id=\"results\"", "</section>").expect("the results");
    between(&results, "<p class=\"hint\">", "</p>").expect("the note")
}

#[tokio::test]
async fn in_decide_mode_the_page_says_the_weight_is_top_two_sampling_not_the_probability_best() {
    let d = Dash::new().await;
    let counts = [("a", 300, 10), ("b", 300, 60), ("c", 300, 40)];
    let decide = d
        .counted("Decide", json!({"myna.weights.mode": "decide"}), &counts)
        .await;
    let thompson = d.counted("Thompson", json!({}), &counts).await;
    let browser = d.sign_in().await;
    let page = d.page(&browser, &format!("/experiments/{decide}")).await;
    let note = weight_note(&page.text);
    assert!(
        note.contains(
            "top-two sampling, which splits traffic between the leader and its closest challenger"
        ),
        "{note}"
    );
    assert!(note.contains("not the probability of being best"), "{note}");
    assert!(!note.contains("the probability it is best"), "{note}");
    assert!(note.contains("floor of 0.001 per variant"), "{note}");
    // Both shown side by side: the probability of being best has its own
    // column, the API's numbers by the one formatter (b 0.9856: 98 %).
    let (_, decision) = d
        .api(
            Method::GET,
            &format!("/v2/experiment/{decide}/decision"),
            None,
        )
        .await;
    let b = decision["variants"]["b"]["probabilityBest"]
        .as_f64()
        .expect("b's");
    assert!((0.98..0.99).contains(&b), "{decision}");
    assert!(
        row(&page.text, "b").contains(&format!("class=\"num best\" data-value=\"{b}\">98\u{a0}%<")),
        "{}",
        row(&page.text, "b")
    );
    // Thompson sampling: the weight is the probability of being best, floored.
    let page = d.page(&browser, &format!("/experiments/{thompson}")).await;
    let note = weight_note(&page.text);
    assert!(
        note.contains(
            "the probability it is best, with a floor of 0.001 per variant so that every variant keeps being tried \
             (weight = 0.001 + (1 − 3 × 0.001) × probability best)"
        ),
        "{note}"
    );
    assert!(!note.contains("top-two"), "{note}");
}

/// The `x` and `width` of a row's credible-interval bar, in the bar's
/// 100-unit view box.
fn interval_rect(row: &str) -> (f64, f64) {
    let cell = between(row, "class=\"interval\"", "</td>").expect("the interval cell");
    let rect = cell.split("<rect").nth(2).expect("the interval's rect");
    let number = |name: &str| {
        between(rect, &format!("{name}=\""), "\"")
            .and_then(|v| v.parse::<f64>().ok())
            .expect("a number")
    };
    (number("x"), number("width"))
}

#[tokio::test]
async fn credible_interval_bars_use_the_experiments_own_scale_so_different_intervals_look_different()
 {
    let d = Dash::new().await;
    // About 3.3–4.8 % and 5.5–7.4 %: 1.5 px wide on a 0–100 % scale.
    let uuid = d
        .counted(
            "Intervals",
            json!({}),
            &[("low", 2_000, 81), ("high", 2_000, 128)],
        )
        .await;
    let browser = d.sign_in().await;
    let page = d.page(&browser, &format!("/experiments/{uuid}")).await;
    let scale = between(&page.text, "id=\"interval-scale\"", "</span>").expect("the scale");
    assert!(scale.contains("(bars from 0 to 10%)"), "{scale}");
    let (low_x, low_width) = interval_rect(row(&page.text, "low"));
    let (high_x, high_width) = interval_rect(row(&page.text, "high"));
    assert!(
        low_width >= 10.0 && high_width >= 10.0,
        "{low_width} {high_width}"
    );
    // Not overlapping: the low one ends before the high one starts.
    assert!(
        low_x + low_width < high_x,
        "{low_x}+{low_width} vs {high_x}"
    );
}

#[tokio::test]
async fn the_list_and_the_page_show_probability_best_by_one_rule_never_100_percent() {
    let d = Dash::new().await;
    let uuid = d
        .counted(
            "Clear",
            json!({"myna.decision.minViews": 100}),
            &[("a", 300, 20), ("b", 300, 48)],
        )
        .await;
    let (_, decision) = d
        .api(
            Method::GET,
            &format!("/v2/experiment/{uuid}/decision"),
            None,
        )
        .await;
    let b = decision["variants"]["b"]["probabilityBest"]
        .as_f64()
        .expect("b's");
    assert!(b > 0.999 && b < 1.0, "{decision}");
    let browser = d.sign_in().await;
    let list = d.page(&browser, "/").await;
    let listed = between(&list.text, &format!("data-uuid=\"{uuid}\""), "</tr>").expect("the row");
    assert!(
        listed.contains("more than 99.9\u{a0}% likely best"),
        "{listed}"
    );
    assert!(!listed.contains("100.00"), "{listed}");
    let page = d.page(&browser, &format!("/experiments/{uuid}")).await;
    assert!(
        row(&page.text, "b").contains(">more than 99.9\u{a0}%<"),
        "{}",
        row(&page.text, "b")
    );
    assert!(page.text.contains("with more than 99.9 % probability"));
}

#[tokio::test]
async fn table_swatches_differ_where_the_chart_lines_do() {
    let d = Dash::new().await;
    let ids: Vec<String> = (0..8).map(|i| format!("v{i}")).collect();
    let counts: Vec<(&str, usize, usize)> = ids.iter().map(|id| (id.as_str(), 2, 1)).collect();
    let uuid = d.counted("Many", json!({}), &counts).await;
    let browser = d.sign_in().await;
    let page = d.page(&browser, &format!("/experiments/{uuid}")).await;
    let swatch = |id: &str| {
        let cell = between(row(&page.text, id), "<th", "</th>").expect("the name cell");
        between(&cell, "<svg class=\"swatch\"", "</svg>").expect("a drawn swatch")
    };
    // v0 and v7 share a colour: the dash tells them apart, as in the charts.
    let (first, eighth) = (swatch("v0"), swatch("v7"));
    assert!(first.contains("stroke=\"#0072b2\"") && eighth.contains("stroke=\"#0072b2\""));
    assert!(!first.contains("stroke-dasharray"), "{first}");
    assert!(eighth.contains("stroke-dasharray=\"6 3\""), "{eighth}");
    let legend = between(&page.text, "<ul class=\"legend\">", "</ul>").expect("a legend");
    assert!(
        legend.contains(&eighth),
        "the chart's legend draws v7 the same way"
    );
}

/// The attributes of the element with `id="{id}"` (its start tag).
fn tag<'a>(html: &'a str, id: &str) -> &'a str {
    let at = html.find(&format!(" id=\"{id}\"")).expect(id);
    let start = html[..at].rfind('<').expect("a tag");
    let end = html[at..].find('>').expect("its end") + at;
    &html[start..=end]
}

#[tokio::test]
async fn refused_forms_name_each_problem_by_the_forms_labels_and_mark_the_fields() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    // Lines 1 and 3 hold the same id (zero-based, the API's `variants[2]`);
    // the experiment's id is no valid id.
    let typed = "green\nblue\ngreen\n";
    let answer = d
        .submit(
            &browser,
            "/experiments/new",
            &[
                ("name", "Dupes"),
                ("id", "no good!"),
                ("visibility", "draft"),
                ("variants", typed),
            ],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    let page = &answer.text;
    assert!(
        page.contains(
            r##"<a href="#variants">Variant 3 (green)</a>: Variant ids must be unique."##
        ),
        "{page}"
    );
    assert!(page.contains(r##"<a href="#id">ID</a>: "##), "{page}");
    // Core's code spans as code, no backticks shown.
    let summary = between(page, "id=\"form-problems\"", "</div>").expect("the summary");
    assert!(
        summary.contains("<code>-</code> or <code>_</code>"),
        "{summary}"
    );
    assert!(!page.contains('`'), "{page}");
    assert!(!page.contains("variants["), "no API paths: {page}");
    // The summary takes the focus; the field in error is marked and
    // described by its hint and its messages.
    let summary = tag(page, "form-problems");
    assert!(
        summary.contains("tabindex=\"-1\"") && summary.contains("autofocus"),
        "{summary}"
    );
    assert!(!tag(page, "name").contains("autofocus"), "one autofocus");
    let variants = tag(page, "variants");
    assert!(variants.contains("aria-invalid=\"true\""), "{variants}");
    assert!(
        variants.contains("aria-describedby=\"variants-hint problem-"),
        "{variants}"
    );
    assert!(
        !tag(page, "settings").contains("aria-invalid"),
        "only fields in error"
    );
    let id = tag(page, "id");
    assert!(id.contains("aria-invalid=\"true\""), "{id}");
    assert!(id.contains("aria-describedby=\"id-hint problem-"), "{id}");
    assert!(id.contains("value=\"no good!\""), "kept as typed: {id}");
    assert!(
        page.contains(">green\nblue\ngreen\n</textarea>"),
        "kept as typed"
    );

    // The edit form: a variant's settings, and an added id that exists.
    let uuid = d.experiment("Edit labels").await;
    let uri = format!("/experiments/{uuid}");
    let bad = d
        .submit(
            &browser,
            &uri,
            &[
                ("name", "Edit labels"),
                ("visibility", "published"),
                ("v0.id", "a"),
                ("v0.name", "Alpha"),
                ("v0.settings", "{nope"),
                ("v1.id", "b"),
                ("v1.name", "b"),
                ("v1.settings", "{}"),
                ("add", "b\n"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    let page = &bad.text;
    assert!(
        page.contains(
            r##"<a href="#v0-settings">Settings of variant a</a>: This is not valid JSON"##
        ),
        "{page}"
    );
    assert!(
        page.contains(r##"<a href="#edit-add">Add variants</a>: A variant with the id <code>b</code> exists already."##),
        "{page}"
    );
    assert!(!page.contains("variantUpdates"), "no API paths: {page}");
    let settings = tag(page, "v0-settings");
    assert!(settings.contains("aria-invalid=\"true\""), "{settings}");
    assert!(
        settings.contains("aria-describedby=\"problem-0\""),
        "{settings}"
    );
    let add = tag(page, "edit-add");
    assert!(
        add.contains("aria-describedby=\"add-hint problem-1\""),
        "{add}"
    );
    assert!(page.contains(">{nope</textarea>"), "kept as typed");
}

#[tokio::test]
async fn signed_in_an_unknown_path_is_the_dashboards_not_found_page_and_the_api_keeps_json() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    for path in [
        "/nope",
        "/experiment",
        "/key",
        "/experiments/a/b/c",
        "/assets/x.css",
    ] {
        let page = d.page(&browser, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        let kind = page
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert_eq!(kind, Some("text/html; charset=utf-8"), "{path}");
        assert!(
            page.text.contains("<html lang=\"en\">"),
            "{path}: {}",
            page.text
        );
        assert!(
            page.text.contains("<title>Not found · Myna</title>"),
            "{path}"
        );
        assert!(page.text.contains("There is no such page."), "{path}");
        // The navigation, with no item current or highlighted.
        assert!(page.text.contains("aria-label=\"Main\""), "{path}");
        assert!(
            !page.text.contains("aria-current") && !page.text.contains("class=\"current\""),
            "{path}: {}",
            page.text
        );
    }
    // The API and the health check keep their JSON problems, session or not.
    for path in ["/v2/nope", "/v2", "/v2/experiment/x/y/z"] {
        let answer = d.page(&browser, path).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        let problem: Value = serde_json::from_str(&answer.text).expect("JSON");
        assert_eq!(problem["typename"], "problem", "{path}");
    }
    // Without a session: the API's 404 problem to a script, ...
    let answer = d.send(Method::GET, "/nope", &[], None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let problem: Value = serde_json::from_str(&answer.text).expect("JSON");
    assert_eq!(problem["status"], 404);
    // ... and to a browser's navigation a page with a title, a language
    // and a way in, but no navigation (nothing of an account).
    let navigation = [(
        "accept",
        "text/html,application/xhtml+xml,*/*;q=0.8".to_owned(),
    )];
    let answer = d.send(Method::GET, "/nope", &navigation, None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for part in [
        "<html lang=\"en\">",
        "<title>Not found · Myna</title>",
        "href=\"/\"",
    ] {
        assert!(answer.text.contains(part), "{part}: {}", answer.text);
    }
    assert!(!answer.text.contains("Sign out"), "{}", answer.text);
    assert!(!answer.text.contains("API keys"), "{}", answer.text);
}

#[tokio::test]
async fn the_reset_notice_shows_only_while_the_counts_are_zero() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let zero = d.experiment("Just reset").await;
    let page = d
        .page(&browser, &format!("/experiments/{zero}?done=reset"))
        .await;
    assert!(
        page.text.contains("The counts were reset to zero."),
        "{}",
        page.text
    );
    // A reload of the same address once events came in: no stale notice.
    let counted = d
        .counted("Counted since", json!({}), &[("a", 10, 2), ("b", 5, 0)])
        .await;
    let page = d
        .page(&browser, &format!("/experiments/{counted}?done=reset"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("reset to zero"), "{}", page.text);
    // Other notices are unchanged.
    let page = d
        .page(&browser, &format!("/experiments/{counted}?done=saved"))
        .await;
    assert!(page.text.contains("Your changes were saved."));
}

#[tokio::test]
async fn only_the_list_is_the_current_page_and_the_visibility_select_names_its_hint() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let current = r#"<a href="/" aria-current="page">Experiments</a>"#;
    let list = d.page(&browser, "/").await;
    assert!(list.text.contains(current), "{}", list.text);
    let uuid = d.experiment("Nav").await;
    for path in [
        format!("/experiments/{uuid}"),
        format!("/experiments/{uuid}/reset"),
        format!("/experiments/new?uuid={uuid}"),
        // An unknown experiment; an unknown address highlights nothing
        // (`signed_in_an_unknown_path_is_the_dashboards_not_found_page...`).
        "/experiments/00000000-0000-4000-8000-000000000000".to_owned(),
    ] {
        let page = d.page(&browser, &path).await;
        assert!(
            !page.text.contains("aria-current=\"page\""),
            "{path}: {}",
            page.text
        );
        // Still highlighted as the section the page is in.
        assert!(
            page.text
                .contains(r#"<a href="/" class="current">Experiments</a>"#),
            "{path}"
        );
    }
    let keys = d.page(&browser, "/keys").await;
    assert!(
        keys.text
            .contains(r#"<a href="/keys" aria-current="page">API keys</a>"#)
    );
    let new = d.new_form(&browser).await;
    let select = tag(&new.text, "visibility");
    assert!(
        select.contains("aria-describedby=\"visibility-hint\""),
        "{select}"
    );
    assert!(new.text.contains("id=\"visibility-hint\""));
}

/// A sign-in or a change posted from a page of another origin (Fetch
/// Metadata says so), even with a valid token pair its server fetched, is
/// refused: a page on another port of this host could otherwise sign the
/// visitor in as its own account. The same forms from this origin work.
#[tokio::test]
async fn forms_sent_from_another_origin_are_refused() {
    let d = Dash::new().await;
    for site in ["same-site", "cross-site"] {
        let headers = [("sec-fetch-site", site.to_owned())];
        let answer = d.sign_in_as(EMAIL, PASSWORD, &headers).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{site}");
        assert!(answer.cookie("myna_session").is_none(), "{site}");
        assert!(answer.text.contains("sent from another site"), "{site}");
    }
    let headers = [("sec-fetch-site", "same-origin".to_owned())];
    let answer = d.sign_in_as(EMAIL, PASSWORD, &headers).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let browser = d.sign_in().await;
    let form = form(&[("csrf", &browser.csrf), ("name", "planted")]);
    for site in ["same-site", "cross-site"] {
        let headers = [
            ("cookie", browser.cookie.clone()),
            ("sec-fetch-site", site.to_owned()),
        ];
        let answer = d
            .send(Method::POST, "/keys", &headers, Some(form.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{site}");
        // From another site the browser sends no session cookie
        // (SameSite=Strict): still the 403, not "your session ended".
        let headers = [("sec-fetch-site", site.to_owned())];
        let answer = d
            .send(Method::POST, "/keys", &headers, Some(form.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{site}, no cookie");
    }
    assert!(
        d.storage
            .api_keys(d.account)
            .await
            .expect("keys")
            .is_empty()
    );
    let headers = [
        ("cookie", browser.cookie.clone()),
        ("sec-fetch-site", "same-origin".to_owned()),
    ];
    let answer = d.send(Method::POST, "/keys", &headers, Some(form)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
}

/// The new-experiment form sent twice (a second click, its answer
/// reloaded, or sent again after Back) creates one experiment: the second
/// answer leads to it.
#[tokio::test]
async fn a_new_experiment_form_sent_twice_creates_one() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    let page = d.new_form(&browser).await;
    let uuid = between(&page.text, "name=\"uuid\" value=\"", "\"").expect("the form's uuid");
    let fields = [
        ("uuid", uuid.as_str()),
        ("name", "Twice"),
        ("visibility", "draft"),
        ("variants", "a\nb"),
    ];
    let first = d.submit(&browser, "/experiments/new", &fields).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.text);
    assert_eq!(
        first.location(),
        format!("/experiments/{uuid}?done=created")
    );
    // Back shows the form's URL again: the same uuid.
    let back = d
        .page(&browser, &format!("/experiments/new?uuid={uuid}"))
        .await;
    assert_eq!(
        between(&back.text, "name=\"uuid\" value=\"", "\"").as_deref(),
        Some(uuid.as_str())
    );
    let again = d.submit(&browser, "/experiments/new", &fields).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER, "{}", again.text);
    assert_eq!(
        again.location(),
        format!("/experiments/{uuid}?done=sent-before")
    );
    let stored = d.storage.experiments().await.expect("experiments");
    let named = stored.readable.iter().filter(|e| e.name == "Twice").count();
    assert_eq!(named, 1);
    let shown = d
        .page(&browser, &format!("/experiments/{uuid}?done=sent-before"))
        .await;
    assert!(shown.text.contains("had been sent before"));
    // Each form shown has its own uuid.
    let other = d.new_form(&browser).await;
    assert_ne!(
        between(&other.text, "name=\"uuid\" value=\"", "\"").as_deref(),
        Some(uuid.as_str())
    );
}

/// The list's pager says which experiments of how many the page shows,
/// and offers a next page only when there is one (exactly a page of
/// matches has none).
#[tokio::test]
async fn the_pager_counts_the_matches_and_ends_at_the_last() {
    let d = Dash::new().await;
    let browser = d.sign_in().await;
    for n in 0..50 {
        d.experiment(&format!("Paged {n:02}")).await;
    }
    let full = d.page(&browser, "/?q=Paged").await;
    assert!(!full.text.contains("Next page"), "{}", full.text);
    for n in 50..53 {
        d.experiment(&format!("Paged {n:02}")).await;
    }
    d.experiment("Other").await;
    let first = d.page(&browser, "/?q=Paged").await;
    assert!(first.text.contains("1–50 of 53"), "{}", first.text);
    assert!(first.text.contains("Next page"));
    assert!(!first.text.contains("Previous page"));
    let last = d.page(&browser, "/?q=Paged&skip=50").await;
    assert!(last.text.contains("51–53 of 53"), "{}", last.text);
    assert!(last.text.contains("Previous page"));
    assert!(!last.text.contains("Next page"));
    let past = d.page(&browser, "/?q=Paged&skip=100").await;
    assert!(past.text.contains("None of 53"), "{}", past.text);
    let all = d.page(&browser, "/").await;
    assert!(all.text.contains("1–50 of 54"), "{}", all.text);
}
