//! Login and logout: tokens for `Authorization: Bearer`.

use myna_core::account::{ok_answer, parse_login, token_answer};
use myna_core::problem::BODY_PATH;
use myna_core::{Code, Problem};
use poem::web::Data;
use poem::{Body, Request, handler};

use super::extract::Owner;
use crate::answer::Answer;
use crate::auth::{self, Credentials};
use crate::request::read_body;
use crate::service::accounts;
use crate::state::AppState;

/// The email and password to log in with: Basic credentials, else a JSON
/// `{email, password}` body; both at once are refused (which would be
/// read is not for the sender to guess).
async fn login_credentials(request: &Request, body: Body) -> Result<(String, String), Problem> {
    match auth::credentials(request, None) {
        Credentials::Basic { email, password } => {
            let body = read_body(request, body).await?;
            if !body.iter().all(u8::is_ascii_whitespace) {
                return Err(Problem::at(
                    Code::InvalidValue,
                    BODY_PATH,
                    "Log in with Basic credentials or with a JSON body, not both.",
                ));
            }
            Ok((email, password))
        }
        Credentials::ApiKey(_) => Err(Problem::new(
            Code::Authorization,
            "An API key cannot log in; log in with an email and password.",
        )),
        Credentials::Malformed => Err(auth::invalid()),
        Credentials::Missing | Credentials::Bearer(_) => {
            let body = read_body(request, body).await?;
            if body.iter().all(u8::is_ascii_whitespace) {
                return Err(auth::missing());
            }
            let given = parse_login(&body)?;
            Ok((given.email, given.password))
        }
    }
}

/// `POST /v2/user/login` with Basic credentials or a JSON `{email, password}`
/// body → `{ "typename": "token", "token", "expires" }`.
#[utoipa::path(post, path = "/v2/user/login", operation_id = "login", tag = "account", request_body(content = Option<crate::routes::openapi::LoginBody>, description = "Or Basic credentials"), responses((status = 200, description = "A Bearer token", body = crate::routes::openapi::Token), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security((), ("basic" = [])))]
#[handler]
pub async fn login(request: &Request, Data(state): Data<&AppState>, body: Body) -> Answer {
    let result = async {
        let (email, password) = login_credentials(request, body).await?;
        let token = accounts::login(&state.checker(request), &email, &password).await?;
        Ok(token_answer(token.token, token.expires_ms).to_string())
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `POST /v2/user/logout`: a Bearer token ends that token; Basic credentials
/// end every token of the account → `{ "typename": "ok" }`.
#[utoipa::path(post, path = "/v2/user/logout", operation_id = "logout", tag = "account", responses((status = 200, description = "Logged out", body = crate::routes::openapi::Ok), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn logout(owner: Owner, Data(state): Data<&AppState>) -> Answer {
    let result = accounts::logout(state, owner.account, owner.bearer).await;
    Answer::json(result.map(|()| ok_answer().to_string()), state.now_ms())
}
