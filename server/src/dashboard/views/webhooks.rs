//! The webhooks page (`/webhooks`): the add form, the webhooks with their
//! delete buttons, a new webhook's secret (shown once, right after it is
//! added) and the latest deliveries.

use std::collections::HashMap;

use maud::{Markup, html};
use myna_core::Problem;
use uuid::Uuid;

use super::{FieldMarks, Nav, confirm_action, csrf_field, form_problems, page, titled};
use crate::dashboard::experiments::labels::field_problems;
use crate::dashboard::html;
use crate::storage::{AttemptLog, Delivery, Webhook};

/// A webhook just added, with its secret (never shown again).
pub struct Added<'a> {
    /// The webhook.
    pub webhook: &'a Webhook,
    /// Its secret.
    pub secret: &'a str,
}

/// How a delivery stands, in a word.
fn standing(delivery: &Delivery) -> &'static str {
    match (delivery.delivered_ms, delivery.next_ms) {
        (Some(_), _) => "delivered",
        (None, Some(_)) if delivery.attempts == 0 => "pending",
        (None, Some(_)) => "retrying",
        (None, None) => "given up",
    }
}

/// The webhooks page, with a notice, a webhook just added, or the problem
/// of an add or delete (with the URL the add had, kept in its field); `names` gives, for the experiments deliveries are
/// about (by the key they are stored under), the uuid their owner knows
/// them by (an alias's, not its key) and their name (one deleted since
/// shows its key, not linked).
pub fn webhooks_page(
    csrf: &str,
    webhooks: &[Webhook],
    deliveries: &[(Delivery, Vec<AttemptLog>)],
    names: &HashMap<Uuid, (Uuid, String)>,
    notice: Option<Markup>,
    added: Option<Added<'_>>,
    problem: Option<(&Problem, &str)>,
) -> Markup {
    let typed = problem.map_or("", |(_, url)| url);
    // A refused URL: the problems take the focus, in the form's words; the
    // field keeps what was typed, marked invalid and described by them.
    let problems = problem
        .map(|(p, _)| field_problems(p, &[("url", "URL", "webhook-url")]))
        .unwrap_or_default();
    let marks = FieldMarks(&problems);
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        h1 { "Webhooks" }
        p class="lead" {
            "When an experiment's verdict changes, or a health check starts or stops failing, "
            "the server posts the event with the decision to each URL here, signed with the "
            "webhook's secret (header " code { "Myna-Signature" } "), and retries for about an hour."
        }
        @if !problems.is_empty() { (form_problems(&problems)) }
        @if let Some(added) = added {
            div class="alert ok" role="status" id="secret" {
                p { "The webhook for " code { (added.webhook.url) } " was added. Its secret, shown only now:" }
                // A read-only field: focused, Ctrl+A selects the secret
                // alone (a paragraph's Ctrl+A selects the whole page).
                p {
                    label for="webhook-secret" class="sr-only" { "The webhook's secret" }
                    input id="webhook-secret" class="mono" type="text" readonly value=(added.secret)
                        size="64" spellcheck="false" autocomplete="off";
                }
                p { "Keep it where your receiver checks signatures: " code { "sha256=" } " and the hex HMAC-SHA256 of the body under it." }
            }
        }
        form class="card inline" method="post" action="/webhooks" {
            (csrf_field(csrf))
            p class="field grow" {
                label for="webhook-url" { "URL" }
                input id="webhook-url" name="url" type="url" required maxlength="2048"
                    placeholder="https://example.com/myna-events" value=(typed)
                    aria-invalid=[marks.invalid("webhook-url")] aria-describedby=[marks.described("webhook-url", None)];
            }
            p class="field" { button type="submit" class="primary" { "Add webhook" } }
        }
        @if webhooks.is_empty() {
            p class="empty" { "No webhooks yet." }
        } @else {
            div class="table-wrap" tabindex="0" role="region" aria-label="Webhooks" {
                table class="list" id="webhooks" {
                    caption class="sr-only" { "Your webhooks, oldest first" }
                    thead {
                        tr {
                            th scope="col" { "URL" }
                            th scope="col" { "Added" }
                            th scope="col" { span class="sr-only" { "Actions" } }
                        }
                    }
                    tbody {
                        @for webhook in webhooks {
                            tr data-webhook=(webhook.uuid) {
                                th scope="row" data-label="URL" class="mono wrap" { (webhook.url) }
                                td data-label="Added" { (html::time(webhook.created_ms)) }
                                td data-label="" {
                                    (confirm_action(
                                        csrf,
                                        &format!("/webhooks/{}/delete", webhook.uuid),
                                        "Delete",
                                        &format!("Delete the webhook for {}", webhook.url),
                                        "Its URL gets no more events, and its delivery history goes with it.",
                                        "Delete for good",
                                    ))
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 id="webhooks-deliveries" { "Recent deliveries" }
        @if deliveries.is_empty() {
            p class="empty" { "No deliveries yet." }
        } @else {
            div class="table-wrap" tabindex="0" role="region" aria-label="Recent deliveries" {
                table class="list" id="deliveries" {
                    caption class="sr-only" { "The latest deliveries, newest first" }
                    thead {
                        tr {
                            th scope="col" { "Event" }
                            th scope="col" { "Experiment" }
                            th scope="col" { "To" }
                            th scope="col" { "Status" }
                            th scope="col" { "Attempts" }
                            th scope="col" { "Seen" }
                        }
                    }
                    tbody {
                        @for (delivery, attempts) in deliveries {
                            tr data-delivery=(delivery.id) {
                                th scope="row" data-label="Event" { (delivery.event) }
                                td data-label="Experiment" class="mono" {
                                    @match names.get(&delivery.experiment) {
                                        Some((uuid, name)) => {
                                            a href={ "/experiments/" (uuid) } { bdi { (name) } }
                                        }
                                        // Deleted since: nothing to link to.
                                        None => { (delivery.experiment) }
                                    }
                                }
                                td data-label="To" class="mono wrap" { (delivery.url) }
                                td data-label="Status" {
                                    (standing(delivery))
                                    @if let Some(status) = delivery.last_status { " (HTTP " (status) ")" }
                                }
                                td data-label="Attempts" {
                                    (delivery.attempts)
                                    @if !attempts.is_empty() {
                                        ol class="attempts" {
                                            @for attempt in attempts {
                                                li {
                                                    (html::time(attempt.at_ms)) ": "
                                                    @match (&attempt.error, attempt.status) {
                                                        (Some(error), _) => { (error) }
                                                        (None, Some(status)) => { "HTTP " (status) }
                                                        (None, None) => { "no outcome" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                                td data-label="Seen" { (html::time(delivery.created_ms)) }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &titled("Webhooks", !problems.is_empty()),
        Nav::Webhooks,
        Some(csrf),
        body,
    )
}
