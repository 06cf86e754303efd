//! The forms that change an experiment: the new-experiment page, the edit
//! form of the experiment page, and the confirmation of a reset or delete.

use maud::{Markup, html};
use myna_core::limits::MAX_EXPERIMENT_ID_CHARS;
use myna_core::weights::{MODE_SETTING, WeightsMode};
use myna_core::{Experiment, Problem};

use super::{
    FieldMarks, NAME_MAXLENGTH, Nav, csrf_field, form_problems, page, problem_box, titled,
    visibility_select,
};
use crate::dashboard::experiments::actions::Action;
use crate::dashboard::experiments::forms::{EditForm, NewForm, removal_tag};

/// The browser's check of an id field (the server checks again: core's rule).
const ID_PATTERN: &str = "[A-Za-z0-9_\\-]+";

/// The new-experiment page, with what was typed and its problem when the
/// form was refused.
/// The uuid a new-experiment form sends: the one it was sent with, else a
/// fresh one (so each form shown creates at most one experiment).
fn form_uuid(sent: &str) -> String {
    match uuid::Uuid::parse_str(sent) {
        Ok(uuid) => uuid.to_string(),
        Err(_) => uuid::Uuid::new_v4().to_string(),
    }
}

pub fn new_page(csrf: &str, form: &NewForm<'_>, problem: Option<&Problem>) -> Markup {
    let visibility = if form.visibility.is_empty() {
        "draft"
    } else {
        form.visibility
    };
    let problems = problem.map(|p| form.problems(p)).unwrap_or_default();
    let marks = FieldMarks(&problems);
    let body = html! {
        section class="narrow" {
            h1 { "New experiment" }
            @if !problems.is_empty() { (form_problems(&problems)) }
            form method="post" action="/experiments/new" class="card" {
                (csrf_field(csrf))
                input type="hidden" name="uuid" value=(form_uuid(form.uuid));
                p class="field" {
                    label for="name" { "Name" }
                    input id="name" name="name" dir="auto" required maxlength=(NAME_MAXLENGTH) value=(form.name)
                        autofocus[problems.is_empty()]
                        aria-invalid=[marks.invalid("name")] aria-describedby=[marks.described("name", None)];
                }
                p class="field" {
                    label for="id" { "ID " span class="muted" { "(used by pages, optional)" } }
                    input id="id" name="id" maxlength=(MAX_EXPERIMENT_ID_CHARS) pattern=(ID_PATTERN)
                        value=(form.id) class="mono"
                        aria-invalid=[marks.invalid("id")] aria-describedby=[marks.described("id", Some("id-hint"))];
                    span class="hint" id="id-hint" {
                        "Letters, digits, " code { "-" } " and " code { "_" } ". Pages find the experiment by it: "
                        "the class " code { "myna-" i { "id" } } ". Blank: made from the name."
                    }
                }
                p class="field" {
                    label for="visibility" { "Visibility" }
                    (visibility_select("visibility", visibility, &marks, Some("visibility-hint")))
                    span class="hint" id="visibility-hint" { "Pages (API keys) see only published experiments." }
                }
                p class="field" {
                    label for="variants" { "Variants" }
                    textarea id="variants" name="variants" dir="auto" rows="4" required
                        aria-invalid=[marks.invalid("variants")]
                        aria-describedby=[marks.described("variants", Some("variants-hint"))] {
                        (form.variants)
                    }
                    span class="hint" id="variants-hint" {
                        "One variant id a line, e.g. " code { "control" } " and " code { "bold-headline" } ". "
                        "Names and settings can be edited afterwards."
                    }
                }
                p class="field" { (mode_select("mode", form.mode, &marks)) }
                p class="field" {
                    label for="settings" { "Settings " span class="muted" { "(JSON object, optional)" } }
                    textarea id="settings" name="settings" rows="3" class="code"
                        aria-invalid=[marks.invalid("settings")] aria-describedby=[marks.described("settings", None)] {
                        (form.settings)
                    }
                }
                p class="actions" {
                    button type="submit" class="primary" { "Create experiment" }
                    " "
                    a href="/" { "Cancel" }
                }
            }
        }
    };
    let title = titled("New experiment", !problems.is_empty());
    page(&title, Nav::InExperiments, Some(csrf), body)
}

/// The select of how the weights share traffic (the setting
/// `myna.weights.mode`), `mode` chosen (the default when blank).
fn mode_select(id: &str, mode: &str, marks: &FieldMarks<'_>) -> Markup {
    let decide = mode == WeightsMode::Decide.as_str();
    let hint = format!("{id}-hint");
    html! {
        label for=(id) { "Traffic" }
        select id=(id) name="mode" aria-invalid=[marks.invalid(id)] aria-describedby=[marks.described(id, Some(&hint))] {
            option value=(WeightsMode::Conversions.as_str()) selected[!decide] {
                "Most conversions (Thompson sampling)"
            }
            option value=(WeightsMode::Decide.as_str()) selected[decide] {
                "A decision sooner (top-two Thompson sampling)"
            }
        }
        span class="hint" id=(hint) {
            "How the weights share traffic: the setting " code { (MODE_SETTING) } ". "
            "Deciding sooner sends the runner-up about half the traffic."
        }
    }
}

/// Rows for a textarea showing `text`: its lines, from 2 to 12.
fn rows(text: &str) -> usize {
    text.lines().count().clamp(2, 12)
}

/// The experiment page's edit form.
pub fn edit_form(csrf: &str, e: &Experiment, problem: Option<&Problem>, form: &EditForm) -> Markup {
    let problems = problem.map(|p| form.problems(p)).unwrap_or_default();
    let marks = FieldMarks(&problems);
    html! {
        section id="edit" class="card" {
            h2 { "Edit" }
            @if !problems.is_empty() { (form_problems(&problems)) }
            // The answer to a refused save opens at this form: its problems
            // on top take the focus (`autofocus`, which scrolls them into
            // view; no `#fragment` in the action, as browsers skip autofocus
            // on a page opened at one). A saved one is redirected.
            form method="post" action={ "/experiments/" (e.public_uuid()) } {
                (csrf_field(csrf))
                div class="row" {
                    p class="field grow" {
                        label for="edit-name" { "Name" }
                        input id="edit-name" name="name" dir="auto" required maxlength=(NAME_MAXLENGTH) value=(form.name)
                            aria-invalid=[marks.invalid("edit-name")] aria-describedby=[marks.described("edit-name", None)];
                    }
                    p class="field" {
                        label for="edit-id" { "ID " span class="muted" { "(used by pages)" } }
                        input id="edit-id" name="id" maxlength=(MAX_EXPERIMENT_ID_CHARS) pattern=(ID_PATTERN)
                            value=(form.id) class="mono"
                            aria-invalid=[marks.invalid("edit-id")] aria-describedby=[marks.described("edit-id", None)];
                    }
                    p class="field" {
                        label for="edit-visibility" { "Visibility" }
                        (visibility_select("edit-visibility", &form.visibility, &marks, None))
                    }
                }
                p class="field" {
                    (mode_select("edit-mode", &form.mode, &marks))
                    input type="hidden" name="mode_was" value=(form.mode_was);
                    input type="hidden" name="was" value=(form.was);
                    input type="hidden" name="loaded" value=(form.loaded);
                }
                p class="field" {
                    label for="edit-settings" { "Settings " span class="muted" { "(JSON object)" } }
                    textarea id="edit-settings" name="settings" rows=(rows(&form.settings)) class="code"
                        aria-invalid=[marks.invalid("edit-settings")] aria-describedby=[marks.described("edit-settings", None)] {
                        (form.settings)
                    }
                }
                @for (i, v) in form.variants.iter().enumerate() {
                    @let name_field = format!("v{i}-name");
                    @let settings_field = format!("v{i}-settings");
                    @let remove_field = format!("v{i}-remove");
                    fieldset class="variant" {
                        legend { "Variant " code { bdi { (v.id) } } }
                        input type="hidden" name={ "v" (i) ".id" } value=(v.id);
                        div class="row" {
                            p class="field grow" {
                                label for=(name_field) { "Name" }
                                input id=(name_field) name={ "v" (i) ".name" } dir="auto" required maxlength=(NAME_MAXLENGTH) value=(v.name)
                                    aria-invalid=[marks.invalid(&name_field)] aria-describedby=[marks.described(&name_field, None)];
                            }
                            p class="field check" {
                                label {
                                    input id=(remove_field) type="checkbox" name={ "v" (i) ".remove" } value="1" checked[v.remove]
                                        aria-invalid=[marks.invalid(&remove_field)] aria-describedby=[marks.described(&remove_field, None)];
                                    " Remove this variant (and its counts)"
                                }
                            }
                        }
                        p class="field" {
                            label for=(settings_field) { "Settings " span class="muted" { "(JSON object)" } }
                            textarea id=(settings_field) name={ "v" (i) ".settings" } rows=(rows(&v.settings)) class="code"
                                aria-invalid=[marks.invalid(&settings_field)] aria-describedby=[marks.described(&settings_field, None)] {
                                (v.settings)
                            }
                        }
                    }
                }
                p class="field" {
                    label for="edit-add" { "Add variants" }
                    textarea id="edit-add" name="add" dir="auto" rows="2"
                        aria-invalid=[marks.invalid("edit-add")] aria-describedby=[marks.described("edit-add", Some("add-hint"))] {
                        (form.add)
                    }
                    span class="hint" id="add-hint" { "One new variant id a line; they start with no counts." }
                }
                p class="actions" {
                    // "Save changes" first: Enter in a field presses it.
                    button type="submit" class="primary" { "Save changes" }
                    // Only after a refusal named what the removal deletes,
                    // and for exactly that (the tag of the variants and
                    // counts it named).
                    @let removal = removal_tag(e, form);
                    @if !removal.is_empty() {
                        " "
                        button type="submit" class="danger" name="confirm_removal" value=(removal) { "Remove and save" }
                    }
                }
            }
        }
    }
}

/// The confirmation page of a reset or delete.
pub fn confirm_page(csrf: &str, e: &Experiment, action: Action) -> Markup {
    let uuid = e.public_uuid();
    let body = html! {
        section class="narrow card danger" {
            h1 { (action.question()) }
            p class="subject" { bdi { (e.name) } }
            p { (action.warning()) }
            form method="post" action={ "/experiments/" (uuid) "/" (action.path()) } {
                (csrf_field(csrf))
                // Cancel first in focus: an Enter pressed on arrival
                // does not erase anything.
                p class="actions" {
                    button type="submit" class="danger" { (action.button()) }
                    " "
                    a href={ "/experiments/" (uuid) } autofocus { "Cancel" }
                }
            }
        }
    };
    page(action.question(), Nav::InExperiments, Some(csrf), body)
}

/// The page of a problem from a reset or delete.
pub fn problem_page(csrf: &str, problem: &Problem) -> Markup {
    let body = html! {
        section class="narrow" {
            h1 { "That did not work" }
            (problem_box(problem))
            p { a href="/" { "Back to the experiments" } }
        }
    };
    page("Problem", Nav::InExperiments, Some(csrf), body)
}
