//! The dashboard's markup, as maud templates: every spliced value is
//! escaped by construction. This module is the page layout (head, top bar,
//! navigation, sign-out form) and the pieces every page shares; one module
//! a page group beside it. Views only render what handlers hand them: no
//! storage, no request.

use maud::{Markup, PreEscaped, html};
use myna_core::{Problem, Visibility};

use crate::dashboard::experiments::labels::FieldProblem;

/// A name field's `maxlength`. Browsers count UTF-16 units, the server
/// characters (core's `MAX_NAME_CHARS`), and a character is at most two
/// units: so a name of 256 emoji can be typed and saved whole, and a longer
/// one is refused by the server, which names its limit.
pub const NAME_MAXLENGTH: usize = 2 * myna_core::limits::MAX_NAME_CHARS;

pub mod edit;
pub mod experiment;
pub mod keys;
pub mod list;
pub mod signin;
pub mod webhooks;

/// Which item of the top navigation is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// The experiments list (the current page of the item).
    Experiments,
    /// A page under the experiments (an experiment, the new form): the
    /// item is highlighted, not announced as the current page.
    InExperiments,
    /// The API keys page.
    Keys,
    /// The webhooks page.
    Webhooks,
    /// A page of no item (an unknown address): the navigation, no item
    /// current.
    Elsewhere,
    /// No navigation (signed out).
    None,
}

/// The logo as an inline SVG (decorative; a constant, no data in it).
const ICON_INLINE: &str = "<svg class=\"logo\" viewBox=\"0 0 32 32\" width=\"24\" height=\"24\" \
    aria-hidden=\"true\" focusable=\"false\"><circle cx=\"16\" cy=\"16\" r=\"15\" fill=\"#1d4ed8\"/>\
    <path d=\"M8 21 L13 11 L16 17 L19 11 L24 21\" fill=\"none\" stroke=\"#fff\" stroke-width=\"2.6\" \
    stroke-linecap=\"round\" stroke-linejoin=\"round\"/></svg>";

/// A whole page: its `title`, the navigation when signed in (with the CSRF
/// token for the sign-out form), and `body` in `main`.
pub fn page(title: &str, nav: Nav, csrf: Option<&str>, body: Markup) -> Markup {
    let current = |n: Nav| (n == nav).then_some("page");
    html! {
        (PreEscaped("<!doctype html>\n"))
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Myna" }
                link rel="stylesheet" href="/assets/dashboard.css";
                link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    div class="topbar" {
                        a class="brand" href="/" { (PreEscaped(ICON_INLINE)) "Myna" }
                        @if nav != Nav::None {
                            nav aria-label="Main" {
                                a href="/" aria-current=[current(Nav::Experiments)]
                                    class=[(nav == Nav::InExperiments).then_some("current")] { "Experiments" }
                                a href="/keys" aria-current=[current(Nav::Keys)] { "API keys" }
                                a href="/webhooks" aria-current=[current(Nav::Webhooks)] { "Webhooks" }
                            }
                            @if let Some(csrf) = csrf {
                                form class="signout" method="post" action="/signout" {
                                    (csrf_field(csrf))
                                    button type="submit" class="quiet" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
        "\n"
    }
}

/// The hidden CSRF field every signed-in form carries.
pub fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

/// A destructive action behind a second click, with no script: `label`
/// (a disclosure, named `aria` for screen readers) opens the `warning` and
/// the button that posts to `action`.
pub fn confirm_action(
    csrf: &str,
    action: &str,
    label: &str,
    aria: &str,
    warning: &str,
    confirm: &str,
) -> Markup {
    html! {
        details class="confirm" {
            summary class="button danger small" aria-label=(aria) { (label) "…" }
            form method="post" action=(action) {
                (csrf_field(csrf))
                p class="small" { (warning) }
                button type="submit" class="danger small" { (confirm) }
            }
        }
    }
}

/// A problem's messages as an alert (each with its path where it has one).
pub fn problem_box(problem: &Problem) -> Markup {
    html! {
        div class="alert error" role="alert" {
            p { strong { "That did not work:" } }
            ul {
                @for message in &problem.messages {
                    li {
                        @if let Some(path) = &message.path {
                            code { (path) } ": "
                        }
                        (code_spans(&message.message))
                    }
                }
            }
        }
    }
}

/// A message whose `` `code` `` spans (as core writes them) are shown as
/// code, escaped like any text; unpaired backticks stay as they are.
pub fn code_spans(text: &str) -> Markup {
    let parts: Vec<&str> = text.split('`').collect();
    if parts.len().is_multiple_of(2) {
        return html! { (text) };
    }
    html! {
        @for (i, part) in parts.iter().enumerate() {
            @if !i.is_multiple_of(2) { code { (part) } } @else { (part) }
        }
    }
}

/// The element id of the `n`-th message of [`form_problems`] (a field in
/// error points at it with `aria-describedby`).
pub fn problem_id(n: usize) -> String {
    format!("problem-{n}")
}

/// A page's title, said to be about a refused form when `refused` (the
/// title is what a screen reader says first on the page that answers it).
pub fn titled(title: &str, refused: bool) -> String {
    if refused {
        format!("Error: {title}")
    } else {
        title.to_owned()
    }
}

/// A refused form's problems, each named by the form's label and linked to
/// its field; focused when the page opens, so the first thing read and
/// seen is what to fix.
pub fn form_problems(problems: &[FieldProblem]) -> Markup {
    html! {
        div class="alert error" id="form-problems" role="alert" tabindex="-1" autofocus {
            p { strong { "That did not work:" } }
            ul {
                @for (n, p) in problems.iter().enumerate() {
                    li id=(problem_id(n)) {
                        @match (&p.label, &p.field) {
                            (Some(label), Some(field)) => a href={ "#" (field) } { (label) },
                            (Some(label), None) => (label),
                            _ => {},
                        }
                        @if let Some(at) = &p.at {
                            @if p.label.is_some() { " at " }
                            code { (at) }
                        }
                        @if p.label.is_some() || p.at.is_some() { ": " }
                        (code_spans(&p.message))
                    }
                }
            }
        }
    }
}

/// The `aria-invalid` and `aria-describedby` of form fields, from a refused
/// form's problems: a field in error is marked and described by its hint
/// and its messages.
pub struct FieldMarks<'a>(pub &'a [FieldProblem]);

impl FieldMarks<'_> {
    /// `"true"` when `field` has a problem.
    pub fn invalid(&self, field: &str) -> Option<&'static str> {
        self.0
            .iter()
            .any(|p| p.field.as_deref() == Some(field))
            .then_some("true")
    }

    /// `field`'s `aria-describedby`: its `hint`, then its messages.
    pub fn described(&self, field: &str, hint: Option<&str>) -> Option<String> {
        let ids: Vec<String> = hint
            .map(str::to_owned)
            .into_iter()
            .chain(
                self.0
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.field.as_deref() == Some(field))
                    .map(|(n, _)| problem_id(n)),
            )
            .collect();
        (!ids.is_empty()).then(|| ids.join(" "))
    }
}

/// The page for a form that could not be read (too large, too slow, not
/// UTF-8): why, and that nothing changed.
pub fn form_refused(csrf: &str, problem: &Problem) -> Markup {
    let body = html! {
        section class="narrow" {
            h1 { "This form cannot be accepted" }
            (problem_box(problem))
            p { "Nothing was changed." }
            p { a href="/" { "Back to the experiments" } }
        }
    };
    page("Refused", Nav::InExperiments, Some(csrf), body)
}

/// The page of a request the database could not serve (an outage): try
/// again shortly; the session is not over.
pub fn unavailable(problem: &Problem) -> Markup {
    let body = html! {
        section class="narrow" {
            h1 { "Try again in a moment" }
            (problem_box(problem))
            p { "The dashboard could not reach its database. You are still signed in; reload this page shortly." }
        }
    };
    page("Unavailable", Nav::InExperiments, None, body)
}

/// A confirmation notice (after a redirect).
pub fn notice(text: &str) -> Markup {
    html! { div class="alert ok" role="status" { p { (text) } } }
}

/// The page for something that is not there (or is another account's),
/// with the navigation `nav` (the item of what was asked for, or
/// [`Nav::Elsewhere`]); signed out (no `csrf`), without the navigation.
pub fn not_found(nav: Nav, csrf: Option<&str>, what: &str) -> Markup {
    let body = html! {
        section class="narrow" {
            h1 { "Not found" }
            p { "There is no such " (what) "." }
            p { a href="/" { (if csrf.is_some() { "Back to the experiments" } else { "To the dashboard" }) } }
        }
    };
    let nav = if csrf.is_some() { nav } else { Nav::None };
    page("Not found", nav, csrf, body)
}

/// An experiment's visibility as a badge.
pub fn visibility_badge(visibility: Visibility) -> Markup {
    let v = visibility.as_str();
    html! { span class={ "badge " (v) } { (v) } }
}

/// A visibility `select` (named `visibility`), `current` selected, described
/// by its hint and its problems.
pub fn visibility_select(
    id: &str,
    current: &str,
    marks: &FieldMarks<'_>,
    hint: Option<&str>,
) -> Markup {
    html! {
        select id=(id) name="visibility" aria-invalid=[marks.invalid(id)] aria-describedby=[marks.described(id, hint)] {
            @for v in Visibility::ALL {
                option value=(v.as_str()) selected[v.as_str() == current] { (v.as_str()) }
            }
        }
    }
}
