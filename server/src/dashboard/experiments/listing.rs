//! `GET /`: the experiments, searched and filtered like the search endpoint.

use myna_core::search::parse_search;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Request, Response, handler};

use super::{done_notice, status_of};
use crate::cache::Snapshot;
use crate::dashboard::html;
use crate::dashboard::signed_in;
use crate::dashboard::views::list::{Found, PAGE_SIZE, Search, list_page};
use crate::request::Params;
use crate::service::experiments::of_account;
use crate::state::AppState;

/// `GET /`: the experiments, searched and filtered like the search endpoint.
#[handler]
pub async fn list(request: &Request, Data(state): Data<&AppState>) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = Params::of(request);
    let search = Search {
        q: params.get("q"),
        visibility: params.all("visibility").collect(),
        sort: params.get("sort"),
    };
    let visibility = if search.visibility.is_empty() {
        "draft,published,archived".to_owned()
    } else {
        search.visibility.join(",")
    };
    let limit = PAGE_SIZE.to_string();
    let query = parse_search(|name| match name {
        "visibility" => Some(visibility.as_str()),
        "limit" => Some(limit.as_str()),
        other => params.get(other),
    });
    let mine: Vec<Snapshot> = of_account(state, session.account);
    let found = match query {
        Err(problem) => Found::Problem(problem),
        Ok(query) => {
            let (experiments, matched) = query.apply_counted(
                mine.iter().map(|s| s.experiment.as_ref()),
                myna_core::Access::Complete,
            );
            Found::Page {
                experiments,
                matched,
                skip: query.skip,
                any: !mine.is_empty(),
            }
        }
    };
    // A search the page cannot run is said on the page, with its status.
    let status = match &found {
        Found::Problem(problem) => status_of(problem),
        Found::Page { .. } => StatusCode::OK,
    };
    let page = list_page(&session.csrf, done_notice(&params), &search, &found);
    html::html(status, page)
}
