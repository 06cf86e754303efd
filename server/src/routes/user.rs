//! Login and logout: tokens for `Authorization: Bearer`.

use myna_core::account::{ok_answer, parse_login, token_answer};
use myna_core::{Code, Problem};
use poem::web::Data;
use poem::{Body, Request, Response, handler};

use super::authenticate;
use crate::answer::{Format, result_response};
use crate::auth::{self, Credentials, issue_token};
use crate::request::read_body;
use crate::state::AppState;

/// `POST /v2/user/login` with Basic credentials or a JSON `{email, password}`
/// body → `{ "typename": "token", "token", "expires" }`.
#[handler]
pub async fn login(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let now = state.now_ms();
    let result = async {
        let (email, password) = match auth::credentials(request, None) {
            Credentials::Basic { email, password } => (email, password),
            Credentials::ApiKey(_) => {
                return Err(Problem::new(
                    Code::Authorization,
                    "An API key cannot log in; log in with an email and password.",
                ));
            }
            Credentials::Malformed => return Err(auth::invalid()),
            Credentials::Missing | Credentials::Bearer(_) => {
                let body = read_body(request, body).await?;
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Err(auth::missing());
                }
                let login = parse_login(&body)?;
                (login.email, login.password)
            }
        };
        let account = state.checker(request).password(&email, &password).await?;
        let token = issue_token(state.storage.as_ref(), account, now).await?;
        Ok(token_answer(token.token, token.expires_ms).to_string())
    }
    .await;
    result_response(&Format::Json, result, now)
}

/// `POST /v2/user/logout`: a Bearer token ends that token; Basic credentials
/// end every token of the account → `{ "typename": "ok" }`.
#[handler]
pub async fn logout(request: &Request, Data(state): Data<&AppState>) -> Response {
    let result = async {
        let credentials = auth::credentials(request, None);
        let token = match &credentials {
            Credentials::Bearer(token) => Some(*token),
            _ => None,
        };
        let account = authenticate(state, request, credentials).await?.owner()?;
        match token {
            Some(token) => {
                state
                    .storage
                    .delete_token(auth::token_hash(&token.to_string()))
                    .await?;
            }
            None => {
                state.storage.delete_account_tokens(account).await?;
            }
        }
        Ok(ok_answer().to_string())
    }
    .await;
    result_response(&Format::Json, result, state.now_ms())
}
