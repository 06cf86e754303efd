//! The API's extractors: what a handler takes from its request before it
//! runs. [`Format`] (the JSONP `callback`), [`Caller`] (credentials from the
//! `Authorization` header or `?apikey=`) and [`Owner`] (account credentials
//! only). What they refuse is a [`Refusal`], answered in the format the
//! endpoint would have answered in.

use myna_core::{Code, Problem};
use poem::http::{Method, StatusCode};
use poem::{FromRequest, Request, RequestBody};
use uuid::Uuid;

use crate::answer::{Format, Refusal};
use crate::auth::{self, Caller, Credentials};
use crate::request::Params;
use crate::state::AppState;

/// The shared state (`app` adds it to every request).
fn state(request: &Request) -> poem::Result<&AppState> {
    request
        .data::<AppState>()
        .ok_or_else(|| poem::Error::from_status(StatusCode::INTERNAL_SERVER_ERROR))
}

/// The format a request by `method` with these parameters asks for: JSONP
/// for a GET with a `callback` (an invalid one is a problem), else JSON (a
/// POST's `callback` is not read).
pub fn asked_by(method: &Method, params: &Params) -> Result<Format, Problem> {
    match *method {
        // Which of two callbacks to call would be a guess.
        Method::GET if params.all("callback").nth(1).is_some() => Err(Problem::at(
            Code::InvalidCallback,
            "callback",
            "Give `callback` once.",
        )),
        Method::GET => Format::from_callback(params.get("callback")),
        _ => Ok(Format::Json),
    }
}

/// The format of an endpoint that answers JSONP: an invalid callback is a
/// plain JSON 400, never echoed.
impl<'a> FromRequest<'a> for Format {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Format> {
        let now_ms = state(request)?.now_ms();
        asked_by(request.method(), &Params::of(request))
            .map_err(|problem| Refusal::new(Format::Json, problem, now_ms).into())
    }
}

/// The caller of an endpoint an API key may call: the `Authorization`
/// header, else the `apikey` parameter. Refused (401, 429, 503) in the
/// endpoint's format: JSONP for a GET with a valid `callback`, else JSON.
impl<'a> FromRequest<'a> for Caller {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Caller> {
        let state = state(request)?;
        let params = Params::of(request);
        let format = asked_by(request.method(), &params).unwrap_or(Format::Json);
        // A repeated `apikey` is malformed (an empty key): which key to
        // take would be a guess.
        let apikey = match params.all("apikey").nth(1) {
            Some(_) => Some(""),
            None => params.get("apikey"),
        };
        let mut basic_ignored = false;
        let credentials = match auth::credentials(request, apikey) {
            // A browser attaches the Basic credentials it knows for this
            // origin to any page's `<script>` or `<img>`, whichever site the
            // page is on: a JSONP call never authenticates by them (a hostile
            // page would read the owner's drafts and counts), nor does a GET
            // that records (it would count events in them), only by API key.
            Credentials::Basic { .. } if matches!(format, Format::Jsonp(_)) || records(request) => {
                basic_ignored = true;
                auth::apikey_parameter(apikey)
            }
            credentials => credentials,
        };
        // The general advice (Basic among the credentials) would be wrong here.
        let basic_only = basic_ignored && matches!(credentials, Credentials::Missing);
        let checker = state.checker(request);
        checker.authenticate(credentials).await.map_err(|problem| {
            let problem = if basic_only {
                basic_not_accepted()
            } else {
                problem
            };
            Refusal::new(format, problem, checker.now_ms).into()
        })
    }
}

/// The 401 of a JSONP call or a record GET that came with Basic credentials
/// only: they are not read there, so it says what is.
fn basic_not_accepted() -> Problem {
    Problem::new(
        Code::Authentication,
        "This call takes an API key (the `apikey` parameter or `Authorization: ApiKey …`) \
         or a Bearer token. Basic credentials are not accepted on a JSONP call or a record \
         GET: a browser sends them with any page's script or image, whichever site it is on.",
    )
}

/// Whether `request` is a GET that records events (`…/record`).
pub(super) fn records(request: &Request) -> bool {
    request.method() == Method::GET && request.uri().path().ends_with("/record")
}

/// A caller with account credentials (Basic or Bearer, from the
/// `Authorization` header only): everything on its own account. An API key
/// is refused 403; every refusal is plain JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The account.
    pub account: Uuid,
    /// The Bearer token the call came with (`None` for Basic).
    pub bearer: Option<Uuid>,
}

impl Owner {
    /// The owner as a [`Caller`].
    pub fn caller(self) -> Caller {
        Caller::Owner {
            account: self.account,
        }
    }
}

impl<'a> FromRequest<'a> for Owner {
    async fn from_request(request: &'a Request, _body: &mut RequestBody) -> poem::Result<Owner> {
        let state = state(request)?;
        let credentials = auth::credentials(request, None);
        let bearer = match credentials {
            Credentials::Bearer(token) => Some(token),
            _ => None,
        };
        let checker = state.checker(request);
        let account: Result<Uuid, Problem> = checker
            .authenticate(credentials)
            .await
            .and_then(Caller::owner);
        match account {
            Ok(account) => Ok(Owner { account, bearer }),
            Err(problem) => Err(Refusal::new(Format::Json, problem, checker.now_ms).into()),
        }
    }
}
