//! The edit form over a newer version: when a save is refused because the
//! experiment changed elsewhere since the page was loaded (a 409), the page
//! shows the experiment as it is now with the owner's edits on top, so that
//! saving again keeps the other change in every field the owner left alone.
//! The form carries a short digest of each field as it was filled in
//! ([`field_tags`]); a field whose posted value still matches its digest was
//! not edited.

use myna_core::Experiment;

use super::forms::{EditForm, current_variant};

/// Digests of `form`'s fields as filled in, space-separated: name, id,
/// visibility, settings, then each variant's name and settings, in the
/// form's order.
pub fn field_tags(form: &EditForm) -> String {
    let mut fields = vec![
        form.name.as_str(),
        form.id.as_str(),
        form.visibility.as_str(),
        form.settings.as_str(),
    ];
    for v in &form.variants {
        fields.push(&v.name);
        fields.push(&v.settings);
    }
    let tags: Vec<String> = fields.into_iter().map(field_tag).collect();
    tags.join(" ")
}

/// A field's digest, line breaks left out: a browser strips them from a
/// one-line field and sends a textarea's as CRLF, and in JSON settings they
/// are only whitespace.
fn field_tag(text: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for piece in text.split(['\r', '\n']) {
        digest.update(piece.as_bytes());
    }
    crate::auth::secret::hex(&digest.finalize()[..6])
}

impl EditForm {
    /// The form for `stored` (changed elsewhere since this form was filled
    /// in), with this form's edits on top: a field whose posted value
    /// differs from the one the page was loaded with keeps it (every field,
    /// for a form without digests); the others show `stored`'s. Variants
    /// keep their Remove ticks; one deleted elsewhere is gone, one added
    /// elsewhere appears; the mode select keeps a choice made in it.
    pub fn merged_onto(&self, stored: &Experiment) -> EditForm {
        let mut merged = EditForm::of(stored);
        let tags: Vec<&str> = self.loaded.split(' ').collect();
        let edited = |i: usize, posted: &str| tags.get(i).is_none_or(|t| *t != field_tag(posted));
        if edited(0, &self.name) {
            merged.name.clone_from(&self.name);
        }
        if edited(1, &self.id) {
            merged.id.clone_from(&self.id);
        }
        if edited(2, &self.visibility) {
            merged.visibility.clone_from(&self.visibility);
        }
        if edited(3, &self.settings) {
            merged.settings.clone_from(&self.settings);
        }
        if self.mode != self.mode_was {
            merged.mode.clone_from(&self.mode);
        }
        for (i, posted) in self.variants.iter().enumerate() {
            // The stored variant the row was rendered for (CRLF ids too).
            let Some(stored) = current_variant(stored, &posted.id) else {
                continue;
            };
            let Some(row) = merged.variants.iter_mut().find(|row| row.id == stored.id) else {
                continue;
            };
            if edited(4 + 2 * i, &posted.name) {
                row.name.clone_from(&posted.name);
            }
            if edited(5 + 2 * i, &posted.settings) {
                row.settings.clone_from(&posted.settings);
            }
            row.remove = posted.remove;
        }
        merged.add.clone_from(&self.add);
        merged
    }

    /// The ids of the variants this form edits (a name or settings typed,
    /// or a Remove tick) that `stored` no longer has: deleted elsewhere,
    /// so [`EditForm::merged_onto`] drops those edits, and the page says so.
    pub fn edits_lost_on(&self, stored: &Experiment) -> Vec<String> {
        let tags: Vec<&str> = self.loaded.split(' ').collect();
        let edited = |i: usize, posted: &str| tags.get(i).is_none_or(|t| *t != field_tag(posted));
        self.variants
            .iter()
            .enumerate()
            .filter(|(i, posted)| {
                current_variant(stored, &posted.id).is_none()
                    && (posted.remove
                        || edited(4 + 2 * i, &posted.name)
                        || edited(5 + 2 * i, &posted.settings))
            })
            .map(|(_, posted)| posted.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use myna_core::{Variant, Visibility};
    use serde_json::json;

    use super::*;

    fn experiment() -> Experiment {
        Experiment {
            uuid: uuid::Uuid::from_u128(1),
            alias: None,
            id: "hero".into(),
            account_id: uuid::Uuid::from_u128(2),
            name: "Hero".into(),
            visibility: Visibility::Published,
            settings: json!({"a": 1}),
            variants: vec![Variant::new("x"), Variant::new("y"), Variant::new("z")],
        }
    }

    #[test]
    fn a_refused_form_keeps_its_edits_over_the_newer_version_and_nothing_else() {
        let loaded = experiment();
        let mut form = EditForm::of(&loaded);
        // The owner renames the experiment and variant y, ticks z; the
        // browser sends the textareas with CRLF.
        form.name = "Hero, renamed here".into();
        form.variants[1].name = "Why".into();
        form.variants[2].remove = true;
        form.settings = form.settings.replace('\n', "\r\n");
        // Meanwhile, elsewhere: a setting, x's name, draft, y's settings,
        // a variant w added.
        let mut stored = loaded.clone();
        stored.settings = json!({"a": 2});
        stored.variants[0].name = "Ex".into();
        stored.variants[1].settings = json!({"color": "red"});
        stored.visibility = Visibility::Draft;
        stored.variants.push(Variant::new("w"));
        assert!(form.edits_lost_on(&stored).is_empty());
        let merged = form.merged_onto(&stored);
        assert_eq!(merged.name, "Hero, renamed here");
        assert_eq!(merged.visibility, "draft");
        assert_eq!(merged.settings, EditForm::of(&stored).settings);
        let rows: Vec<(&str, &str, bool)> = merged
            .variants
            .iter()
            .map(|v| (v.id.as_str(), v.name.as_str(), v.remove))
            .collect();
        assert_eq!(
            rows,
            [
                ("x", "Ex", false),
                ("y", "Why", false),
                ("z", "z", true),
                ("w", "w", false)
            ]
        );
        assert!(merged.variants[1].settings.contains("red"));
        assert_eq!(
            merged.was,
            crate::dashboard::experiments::forms::definition_tag(&stored)
        );
        // Saved as it is, it changes only what the owner edited.
        let body = merged.update_body(&stored).expect("a valid body");
        assert_eq!(body["settings"], json!({"a": 2}));
        assert_eq!(body["visibility"], "draft");
        assert_eq!(body["variantUpdates"]["x"]["name"], "Ex");
        assert_eq!(
            body["variantUpdates"]["y"]["settings"],
            json!({"color": "red"})
        );
    }

    #[test]
    fn a_form_without_digests_keeps_every_field_as_posted() {
        let loaded = experiment();
        let mut form = EditForm::of(&loaded);
        form.loaded = String::new();
        let mut stored = loaded.clone();
        stored.name = "Renamed elsewhere".into();
        stored.variants.remove(0);
        let merged = form.merged_onto(&stored);
        assert_eq!(merged.name, "Hero");
        let ids: Vec<&str> = merged.variants.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["y", "z"], "x was deleted elsewhere");
    }

    #[test]
    fn edits_to_a_variant_deleted_elsewhere_are_named() {
        let loaded = experiment();
        let mut form = EditForm::of(&loaded);
        // x renamed, y left alone, z ticked; elsewhere, all three deleted
        // but for a new w.
        form.variants[0].name = "Ex".into();
        form.variants[2].remove = true;
        let mut stored = loaded.clone();
        stored.variants = vec![Variant::new("w")];
        assert_eq!(form.edits_lost_on(&stored), ["x", "z"]);
        let ids: Vec<String> = form
            .merged_onto(&stored)
            .variants
            .into_iter()
            .map(|v| v.id)
            .collect();
        assert_eq!(ids, ["w"]);
    }
}
