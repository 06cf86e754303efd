//! Webhook management (owner only): create (the secret answered once),
//! list, delete.

use myna_core::account::{ok_answer, results_answer};
use myna_core::webhook::webhook_answer;
use myna_core::{Code, Problem};
use poem::web::{Data, Path};
use poem::{Body, Request, handler};

use super::extract::Owner;
use crate::answer::Answer;
use crate::request::read_body;
use crate::service::webhooks;
use crate::state::AppState;

/// `POST /v2/webhook` `{ "url": "https://…" }` → `{ "typename": "webhook",
/// "uuid", "url", "created", "secret" }`: the only answer with the secret.
#[utoipa::path(post, path = "/v2/webhook", operation_id = "createWebhook", tag = "webhooks", request_body = crate::routes::openapi::WebhookBody, responses((status = 200, description = "The new webhook, with its secret (shown only this once)", body = crate::routes::openapi::WebhookForm), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn create(
    request: &Request,
    owner: Owner,
    Data(state): Data<&AppState>,
    body: Body,
) -> Answer {
    let result = async {
        let body = read_body(request, body).await?;
        let (webhook, secret) = webhooks::create_webhook(state, owner.account, &body).await?;
        let answer = webhook_answer(
            webhook.uuid,
            &webhook.url,
            webhook.created_ms,
            Some(&secret),
        );
        Ok(answer.to_string())
    }
    .await;
    Answer::json(result, state.now_ms())
}

/// `GET /v2/webhook` → `{ "results": [ … ] }`, the account's webhooks
/// (without their secrets), oldest first.
#[utoipa::path(get, path = "/v2/webhook", operation_id = "listWebhooks", tag = "webhooks", responses((status = 200, description = "The webhooks of the account (no secrets)", body = crate::routes::openapi::WebhookList), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn list(owner: Owner, Data(state): Data<&AppState>) -> Answer {
    let listed = webhooks::webhooks(state, owner.account).await;
    let result = listed.map(|listed| {
        let answers = listed
            .iter()
            .map(|w| webhook_answer(w.uuid, &w.url, w.created_ms, None))
            .collect();
        results_answer(answers).to_string()
    });
    Answer::json(result, state.now_ms())
}

/// `DELETE /v2/webhook/{uuid}` → `{ "typename": "ok" }`; another account's
/// webhook, or none, is 404 `not-found`.
#[utoipa::path(delete, path = "/v2/webhook/{uuid}", operation_id = "deleteWebhook", tag = "webhooks", params(("uuid" = uuid::Uuid, Path, description = "The webhook")), responses((status = 200, description = "Deleted", body = crate::routes::openapi::Ok), (status = "default", description = "A problem", body = crate::routes::openapi::Problem)), security(("basic" = []), ("bearer" = [])))]
#[handler]
pub async fn delete(
    owner: Owner,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Answer {
    let result = async {
        let missing = || Problem::new(Code::NotFound, "There is no such webhook.");
        let uuid = crate::request::path_uuid(&uuid).ok_or_else(missing)?;
        if !webhooks::delete_webhook(state, owner.account, uuid).await? {
            return Err(missing());
        }
        Ok(ok_answer().to_string())
    }
    .await;
    Answer::json(result, state.now_ms())
}
