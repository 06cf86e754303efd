//! The signed-out pages: the sign-in form, and the refusal of a form whose
//! CSRF token is missing or wrong.

use maud::{Markup, html};

use super::{Nav, page};

/// What the sign-in page says above its form.
pub enum Note<'a> {
    /// Why the sign-in was refused.
    Refused(&'a str),
    /// Why the page is shown (the session ended, signed out).
    Said(&'a str),
}

/// The sign-in page: the form (its server-signed `token`, where to go
/// `next`, the `email` typed) and why it was refused or shown, if it was.
pub fn signin_page(token: &str, next: &str, email: &str, note: Option<Note<'_>>) -> Markup {
    let typed = !email.is_empty();
    let said = matches!(note, Some(Note::Said(_)));
    let body = html! {
        section class="narrow card" {
            h1 { "Sign in" }
            @match note {
                Some(Note::Refused(message)) => div class="alert error" role="alert" { p { (message) } },
                Some(Note::Said(message)) => div class="alert warn" role="status" id="signin-note" { p { (message) } },
                None => {},
            }
            form method="post" action="/signin" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                // Text, not `type="email"`: the browser would refuse an
                // account name without `@` (`admin`), which the server takes.
                p class="field" {
                    label for="email" { "Email" }
                    // The field focused on arrival is described by why the
                    // page is shown (a status already there is seldom read).
                    input id="email" name="email" type="text" inputmode="email" autocapitalize="none" spellcheck="false" autocomplete="username" required value=(email)
                        autofocus[!typed] aria-describedby=[said.then_some("signin-note")];
                }
                p class="field" {
                    label for="password" { "Password" }
                    input id="password" name="password" type="password" autocomplete="current-password" required
                        autofocus[typed];
                }
                p { button type="submit" class="primary" { "Sign in" } }
            }
            p class="hint" {
                "The first start of the server created the first account: its email "
                "and password come from " code { "MYNA_ADMIN_EMAIL" } " and " code { "MYNA_ADMIN_PASSWORD" } ", "
                "or were printed once. A lost password is set anew on the server's machine: "
                code { "myna-server account password --email …" } "."
            }
        }
    };
    page("Sign in", Nav::None, None, body)
}

/// The page refusing a POST whose CSRF token is missing or wrong.
pub fn refused_page() -> Markup {
    let body = html! {
        section class="narrow" {
            h1 { "This form cannot be accepted" }
            p { "It did not come from this dashboard page, or it is too old. Nothing was changed." }
            p { a href="/" { "Back to the experiments" } ", reload the page and try again." }
        }
    };
    page("Refused", Nav::None, None, body)
}
