//! A refused form's problems in the form's own words: each problem's API
//! path (`variants[2]`, `variantUpdates.green.settings`) read back as the
//! label of the field it is about ("Variant 3 (green)", "Settings of
//! variant green") and that field's element id, so the page can name it,
//! link to it and mark it.

use myna_core::Problem;
use myna_core::settings::key_path;

use super::forms::{EditForm, NewForm, ids};

/// One problem of a refused form, placed on the form.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    /// What the problem is about, in the form's words (none: the form as a
    /// whole, or a path no field claims).
    pub label: Option<String>,
    /// Where inside the field (`x.k` of a settings object), or the whole
    /// path when no field claims it.
    pub at: Option<String>,
    /// The element id of the field in error.
    pub field: Option<String>,
    /// The problem's message.
    pub message: String,
}

/// Where a problem is, before its message is added.
struct Place {
    label: Option<String>,
    at: Option<String>,
    field: Option<String>,
}

impl Place {
    fn field(label: String, field: &str, at: Option<&str>) -> Place {
        Place {
            label: Some(label),
            at: at.map(str::to_owned),
            field: Some(field.to_owned()),
        }
    }
}

/// What is left of `path` inside `base` (`None`: not inside it; `Some(None)`:
/// `base` itself; `Some(Some("x.k"))`: a place within it).
fn within<'p>(path: &'p str, base: &str) -> Option<Option<&'p str>> {
    let rest = path.strip_prefix(base)?;
    match rest.chars().next() {
        None => Some(None),
        Some('.') => Some(Some(&rest[1..])),
        Some('[') => Some(Some(rest)),
        Some(_) => None,
    }
}

/// `problem`'s messages placed by `place` (which answers `None` for a path
/// no field claims: then the path is shown as it is).
fn placed(problem: &Problem, place: impl Fn(&str) -> Option<Place>) -> Vec<FieldProblem> {
    problem
        .messages
        .iter()
        .map(|m| {
            let path = m.path.as_deref().unwrap_or_default();
            let place = match path {
                "" => None,
                path => place(path),
            };
            let place = place.unwrap_or_else(|| Place {
                label: None,
                at: (!path.is_empty()).then(|| path.to_owned()),
                field: None,
            });
            FieldProblem {
                label: place.label,
                at: place.at,
                field: place.field,
                message: m.message.clone(),
            }
        })
        .collect()
}

/// `problem` placed on a form of plain fields (API path, label, element
/// id): the API keys and webhooks forms.
pub fn field_problems(problem: &Problem, fields: &[(&str, &str, &str)]) -> Vec<FieldProblem> {
    placed(problem, |path| plain(fields, path))
}

/// The plain fields: API path, label, element id.
fn plain(fields: &[(&str, &str, &str)], path: &str) -> Option<Place> {
    fields.iter().find_map(|(base, label, field)| {
        within(path, base).map(|at| Place::field((*label).to_owned(), field, at))
    })
}

/// The new form's fields, in the order the page shows them.
const NEW_ORDER: [&str; 6] = ["name", "id", "visibility", "variants", "mode", "settings"];

/// Where the edit form's `field` is on the page: name, id, visibility,
/// traffic and settings, then each variant's name, removal and settings in
/// the experiment's order, then the variants to add.
fn edit_rank(field: &str) -> usize {
    const TOP: [&str; 5] = [
        "edit-name",
        "edit-id",
        "edit-visibility",
        "edit-mode",
        "edit-settings",
    ];
    if let Some(i) = TOP.iter().position(|f| *f == field) {
        return i + 1;
    }
    let variant = field
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(i, part)| Some((i.parse::<usize>().ok()?, part)));
    match variant {
        Some((i, part)) => {
            let within = match part {
                "name" => 0,
                "remove" => 1,
                _ => 2,
            };
            TOP.len() + 1 + i.saturating_mul(3).saturating_add(within)
        }
        None => usize::MAX,
    }
}

/// `problems` in the order of their fields on the page (`rank`), those
/// about the whole form first, so the summary reads as the form does.
fn in_form_order(
    mut problems: Vec<FieldProblem>,
    rank: impl Fn(&str) -> usize,
) -> Vec<FieldProblem> {
    problems.sort_by_key(|p| p.field.as_deref().map_or(0, &rank));
    problems
}

impl NewForm<'_> {
    /// `problem` (of the create body this form made) placed on this form.
    pub fn problems(&self, problem: &Problem) -> Vec<FieldProblem> {
        let placed = placed(problem, |path| {
            // `variants[i]` is the i-th id line (blank lines are skipped).
            for (i, id) in ids(self.variants).enumerate() {
                if let Some(at) = within(path, &format!("variants[{i}]")) {
                    let label = format!("Variant {} ({id})", i + 1);
                    return Some(Place::field(label, "variants", at.filter(|&a| a != "id")));
                }
            }
            plain(
                &[
                    ("name", "Name", "name"),
                    ("id", "ID", "id"),
                    ("visibility", "Visibility", "visibility"),
                    ("variants", "Variants", "variants"),
                    ("settings", "Settings", "settings"),
                    ("mode", "Traffic", "mode"),
                ],
                path,
            )
        });
        in_form_order(placed, |field| {
            NEW_ORDER
                .iter()
                .position(|f| *f == field)
                .map_or(usize::MAX, |i| i + 1)
        })
    }
}

impl EditForm {
    /// `problem` (of the update body this form made, or of its save)
    /// placed on this form.
    pub fn problems(&self, problem: &Problem) -> Vec<FieldProblem> {
        let placed = placed(problem, |path| {
            for (i, v) in self.variants.iter().enumerate() {
                // The stored id, as the paths have it (a browser sends a
                // line break in the hidden id as CRLF).
                let id = v.id.replace("\r\n", "\n");
                let Some(at) = within(path, &key_path("variantUpdates", &id)) else {
                    continue;
                };
                let (what, field, at) = match at {
                    Some(at) => match within(at, "settings") {
                        Some(inner) => ("Settings of variant", "settings", inner),
                        None if at == "name" => ("Name of variant", "name", None),
                        None if at == "remove" => ("Removing variant", "remove", None),
                        None => ("Variant", "name", Some(at)),
                    },
                    None => ("Variant", "name", None),
                };
                let label = format!("{what} {id}");
                return Some(Place::field(label, &format!("v{i}-{field}"), at));
            }
            for id in ids(&self.add) {
                if let Some(at) = within(path, &key_path("variantUpdates", id)) {
                    return Some(Place::field(format!("New variant {id}"), "edit-add", at));
                }
            }
            plain(
                &[
                    ("name", "Name", "edit-name"),
                    ("id", "ID", "edit-id"),
                    ("visibility", "Visibility", "edit-visibility"),
                    ("settings", "Settings", "edit-settings"),
                    ("mode", "Traffic", "edit-mode"),
                    ("add", "Add variants", "edit-add"),
                    ("variantUpdates", "Variants", "edit-add"),
                ],
                path,
            )
        });
        in_form_order(placed, edit_rank)
    }
}

#[cfg(test)]
mod tests {
    use myna_core::{Code, Message};

    use super::*;

    fn at(path: &str) -> Problem {
        Problem::one(Message::at(Code::InvalidValue, path, "Wrong."))
    }

    fn said(found: &[FieldProblem]) -> (Option<&str>, Option<&str>, Option<&str>) {
        let p = &found[0];
        (p.label.as_deref(), p.at.as_deref(), p.field.as_deref())
    }

    #[test]
    fn new_form_paths_read_as_its_labels() {
        let form = NewForm {
            variants: "red\n\n blue \ngreen\n",
            ..NewForm::default()
        };
        let cases = [
            (
                "variants[2]",
                (Some("Variant 3 (green)"), None, Some("variants")),
            ),
            (
                "variants[0].id",
                (Some("Variant 1 (red)"), None, Some("variants")),
            ),
            (
                "variants[1]",
                (Some("Variant 2 (blue)"), None, Some("variants")),
            ),
            ("variants", (Some("Variants"), None, Some("variants"))),
            (
                "settings.x.k",
                (Some("Settings"), Some("x.k"), Some("settings")),
            ),
            (
                "settings[\"a.b\"]",
                (Some("Settings"), Some("[\"a.b\"]"), Some("settings")),
            ),
            ("id", (Some("ID"), None, Some("id"))),
            ("elsewhere", (None, Some("elsewhere"), None)),
        ];
        for (path, expected) in cases {
            assert_eq!(said(&form.problems(&at(path))), expected, "{path}");
        }
        let whole = Problem::one(Message::new(Code::Conflict, "Changed."));
        assert_eq!(said(&form.problems(&whole)), (None, None, None));
    }

    fn several(paths: &[&str]) -> Problem {
        let mut problem = at(paths[0]);
        for path in &paths[1..] {
            problem
                .messages
                .push(Message::at(Code::InvalidValue, *path, "Wrong."));
        }
        problem
    }

    fn fields(found: &[FieldProblem]) -> Vec<&str> {
        found
            .iter()
            .map(|p| p.field.as_deref().unwrap_or("-"))
            .collect()
    }

    #[test]
    fn a_refused_forms_problems_are_listed_as_the_form_reads() {
        let form = NewForm {
            variants: "red\nblue\n",
            ..NewForm::default()
        };
        let found = form.problems(&several(&["settings.k", "variants[1]", "id", "name"]));
        assert_eq!(fields(&found), ["name", "id", "variants", "settings"]);
        let e = super::super::forms::tests::draft(&["green", "blue"]);
        let mut form = EditForm::of(&e);
        form.add = "new\n".into();
        let found = form.problems(&several(&[
            "settings",
            "variantUpdates[\"new\"]",
            "variantUpdates.blue.settings",
            "variantUpdates.green.settings",
            "variantUpdates.blue.name",
            "name",
            "elsewhere",
        ]));
        assert_eq!(
            fields(&found),
            [
                "-",
                "edit-name",
                "edit-settings",
                "v0-settings",
                "v1-name",
                "v1-settings",
                "edit-add"
            ]
        );
    }

    #[test]
    fn edit_form_paths_read_as_its_labels() {
        let e = super::super::forms::tests::draft(&["green", "a.b"]);
        let mut form = EditForm::of(&e);
        form.add = "new one\n".into();
        let cases = [
            (
                "variantUpdates.green.settings",
                (Some("Settings of variant green"), None, Some("v0-settings")),
            ),
            (
                "variantUpdates[\"a.b\"].settings.k",
                (
                    Some("Settings of variant a.b"),
                    Some("k"),
                    Some("v1-settings"),
                ),
            ),
            (
                "variantUpdates.green",
                (Some("Variant green"), None, Some("v0-name")),
            ),
            (
                "variantUpdates.green.name",
                (Some("Name of variant green"), None, Some("v0-name")),
            ),
            (
                "variantUpdates[\"new one\"]",
                (Some("New variant new one"), None, Some("edit-add")),
            ),
            ("add", (Some("Add variants"), None, Some("edit-add"))),
            ("settings", (Some("Settings"), None, Some("edit-settings"))),
            ("name", (Some("Name"), None, Some("edit-name"))),
        ];
        for (path, expected) in cases {
            assert_eq!(said(&form.problems(&at(path))), expected, "{path}");
        }
    }
}
