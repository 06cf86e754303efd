//! The API keys page (`/keys`): the create form and the keys, each with
//! its revoke button; then each key's deployment (the one-line script tag
//! and the JSON URL).

use maud::{Markup, html};
use myna_core::Problem;

use super::{
    FieldMarks, NAME_MAXLENGTH, Nav, confirm_action, csrf_field, form_problems, page, titled,
};
use crate::dashboard::experiments::labels::field_problems;
use crate::dashboard::html;
use crate::storage::ApiKey;

/// The keys page, with a notice or the problem of a create or revoke;
/// `api_root` is where pages reach this server.
pub fn keys_page(
    csrf: &str,
    api_root: &str,
    keys: &[ApiKey],
    notice: Option<Markup>,
    problem: Option<&Problem>,
    typed: &str,
) -> Markup {
    // A refused name: the problems take the focus, in the form's words; the
    // field keeps what was typed, marked invalid and described by them.
    let problems = problem
        .map(|p| field_problems(p, &[("name", "Name", "key-name")]))
        .unwrap_or_default();
    let marks = FieldMarks(&problems);
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        h1 { "API keys" }
        p class="lead" {
            "Pages use an API key to read published experiments and record events "
            "(see each experiment's " q { "Use it on your page" } "). "
            "Keys are public by design: they sit in page source and can do nothing else. "
            "Revoking a key stops it at once."
        }
        @if !problems.is_empty() { (form_problems(&problems)) }
        form class="card inline" method="post" action="/keys" {
            (csrf_field(csrf))
            p class="field grow" {
                label for="key-name" { "Name " span class="muted" { "(where it is used, optional)" } }
                input id="key-name" name="name" dir="auto" maxlength=(NAME_MAXLENGTH) placeholder="landing page" value=(typed)
                    aria-invalid=[marks.invalid("key-name")] aria-describedby=[marks.described("key-name", None)];
            }
            p class="field" { button type="submit" class="primary" { "Create API key" } }
        }
        @if keys.is_empty() {
            p class="empty" { "No API keys yet." }
        } @else {
            div class="table-wrap" tabindex="0" role="region" aria-label="API keys" {
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
                                    @if name.is_empty() { span class="muted" { "unnamed" } } @else { bdi { (name) } }
                                }
                                td data-label="Key" class="mono" { (key.uuid) }
                                td data-label="Created" { (html::time(key.created_ms)) }
                                td data-label="" {
                                    (confirm_action(
                                        csrf,
                                        &format!("/keys/{}/revoke", key.uuid),
                                        "Revoke",
                                        &format!("Revoke the key {}", if name.is_empty() { "unnamed" } else { name }),
                                        "Pages that use this key stop getting experiments and counting events at once; this cannot be undone.",
                                        "Revoke for good",
                                    ))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !keys.is_empty() { (deployments(api_root, keys)) }
    };
    page(
        &titled("API keys", !problems.is_empty()),
        Nav::Keys,
        Some(csrf),
        body,
    )
}

/// Each key's deployment: the script tag a page includes to run every
/// published experiment, and the JSON it reads.
fn deployments(api_root: &str, keys: &[ApiKey]) -> Markup {
    html! {
        section id="deployment" class="card" {
            h2 { "Deployment" }
            p {
                "One script tag runs every published experiment on a page: elements with the class "
                code { "myna-" i { "id" } } " (each experiment's page shows its id and markup) are shown "
                "by variant, and views and rewards are recorded with the key."
            }
            @for key in keys {
                @let name = key.name.as_deref().filter(|n| !n.is_empty()).unwrap_or("unnamed");
                @let base = format!("{api_root}/v2/deployment/{}", key.uuid);
                div class="deployment" data-key=(key.uuid) {
                    h3 { "Key " q { bdi { (name) } } }
                    p { "Script tag:" }
                    pre class="code" tabindex="0" role="region" aria-label={ "The script tag of the key " (name) } {
                        code class="deployment-script" {
                            "<script src=\"" (base) "/myna.js\"></script>"
                        }
                    }
                    p {
                        "Its data (JSON, or JSONP with " code { "?callback=" } "): "
                        a class="deployment-json mono wrap" href={ (base) "/myna.json" } { (base) "/myna.json" }
                    }
                }
            }
        }
    }
}
