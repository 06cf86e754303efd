//! `GET /healthz`: 200 when the server and its database are usable, which
//! means written to: a small write commits, and commits have not been
//! failing for the database's sake (a full disk, I/O errors).

use myna_core::account::ok_answer;
use myna_core::{Code, Problem};
use poem::handler;
use poem::web::Data;

use crate::answer::Answer;
use crate::state::AppState;

/// 200 `{"typename":"ok"}` when the database takes writes, else 503
/// `unavailable`.
#[utoipa::path(get, path = "/healthz", operation_id = "health", tag = "server", responses((status = 200, description = "The database takes writes", body = crate::routes::openapi::Ok), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)))]
#[handler]
pub async fn healthz(Data(state): Data<&AppState>) -> Answer {
    let storage = state.storage.as_ref();
    let writable = state
        .health_probe
        .writable(async || storage.ping().await)
        .await;
    let writes = state.committer.write_health();
    let result = if writes.healthy(writable, state.now_ms()) {
        Ok(ok_answer().to_string())
    } else {
        Err(Problem::new(
            Code::Unavailable,
            "The database is unavailable: it cannot be written now.",
        ))
    };
    Answer::json(result, state.now_ms())
}
