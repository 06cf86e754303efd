//! The API keys page (`/keys`): the create form and the keys, each with
//! its revoke button.

use maud::{Markup, html};
use myna_core::Problem;

use super::{Nav, csrf_field, page, problem_box};
use crate::dashboard::html;
use crate::storage::ApiKey;

/// The keys page, with a notice or the problem of a create or revoke.
pub fn keys_page(
    csrf: &str,
    keys: &[ApiKey],
    notice: Option<Markup>,
    problem: Option<&Problem>,
) -> Markup {
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        h1 { "API keys" }
        p class="lead" {
            "Pages use an API key to read published experiments and record events "
            "(see each experiment's " q { "Use it on your page" } "). "
            "Keys are public by design: they sit in page source and can do nothing else. "
            "Revoking a key stops it at once."
        }
        @if let Some(problem) = problem { (problem_box(problem)) }
        form class="card inline" method="post" action="/keys" {
            (csrf_field(csrf))
            p class="field grow" {
                label for="key-name" { "Name " span class="muted" { "(where it is used, optional)" } }
                input id="key-name" name="name" maxlength="256" placeholder="landing page";
            }
            p class="field" { button type="submit" class="primary" { "Create API key" } }
        }
        @if keys.is_empty() {
            p class="empty" { "No API keys yet." }
        } @else {
            div class="table-wrap" {
                table class="list" id="keys" {
                    caption class="sr-only" { "Your API keys, oldest first" }
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Key" }
                            th scope="col" { "Created" }
                            th scope="col" { span class="sr-only" { "Actions" } }
                        }
                    }
                    tbody {
                        @for key in keys {
                            @let name = key.name.as_deref().unwrap_or("");
                            tr data-key=(key.uuid) {
                                th scope="row" data-label="Name" {
                                    @if name.is_empty() { span class="muted" { "unnamed" } } @else { (name) }
                                }
                                td data-label="Key" class="mono" { (key.uuid) }
                                td data-label="Created" { (html::time(key.created_ms)) }
                                td data-label="" {
                                    form method="post" action={ "/keys/" (key.uuid) "/revoke" } {
                                        (csrf_field(csrf))
                                        button type="submit" class="danger small"
                                            aria-label={ "Revoke the key " (if name.is_empty() { "unnamed" } else { name }) } {
                                            "Revoke"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page("API keys", Nav::Keys, Some(csrf), body)
}
