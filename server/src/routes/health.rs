//! `GET /healthz`: 200 when the server and its database are usable.

use myna_core::account::ok_answer;
use myna_core::{Code, Problem};
use poem::web::Data;
use poem::{Response, handler};

use crate::answer::{Format, ok_response, problem_response};
use crate::state::AppState;

/// 200 `{"typename":"ok"}` when the database answers, else 503 `unavailable`.
#[handler]
pub async fn healthz(Data(state): Data<&AppState>) -> Response {
    match state.storage.ping().await {
        Ok(()) => ok_response(&Format::Json, &ok_answer().to_string()),
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            let problem = Problem::new(Code::Unavailable, "The database is unavailable.");
            problem_response(&Format::Json, &problem, state.now_ms())
        }
    }
}
