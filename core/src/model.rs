//! The model: experiments, their variants, visibility and access levels.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::weights::Arm;

pub use crate::limits::{MAX_NAME_CHARS, MAX_VARIANT_ID_CHARS};

/// Who may see an experiment with an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Being prepared: only its owner sees it.
    Draft,
    /// Live: pages (API keys) see it and record events.
    Published,
    /// Finished: only its owner sees it.
    Archived,
}

impl Visibility {
    /// Every visibility, in wire order.
    pub const ALL: [Visibility; 3] = [
        Visibility::Draft,
        Visibility::Published,
        Visibility::Archived,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Draft => "draft",
            Visibility::Published => "published",
            Visibility::Archived => "archived",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.as_str() == text)
    }
}

/// What a caller may see of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// The owner: everything, including counts and the account id.
    Complete,
    /// An API key: published experiments only, no counts, no account id.
    Summary,
}

impl Access {
    /// Whether this access level may see an experiment of `visibility` at all.
    pub fn may_see(self, visibility: Visibility) -> bool {
        match self {
            Access::Complete => true,
            Access::Summary => visibility == Visibility::Published,
        }
    }
}

/// One variant of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Unique inside the experiment; non-empty, at most 128 characters.
    pub id: String,
    /// A human name (defaults to the id).
    pub name: String,
    /// Free JSON object the page uses to render the variant.
    pub settings: Value,
    /// How many views were recorded.
    pub views: u64,
    /// The sum of the reward amounts recorded.
    pub total_reward: f64,
}

impl Variant {
    /// A new variant with no counts; the name defaults to the id.
    pub fn new(id: impl Into<String>) -> Self {
        let id = id.into();
        Variant {
            name: id.clone(),
            id,
            settings: empty_object(),
            views: 0,
            total_reward: 0.0,
        }
    }

    /// Whether anything was recorded for it (removing or resetting it
    /// would lose something).
    pub fn has_counts(&self) -> bool {
        self.views > 0 || self.total_reward != 0.0
    }

    /// The bandit's view of this variant's counts.
    pub fn arm(&self) -> Arm {
        Arm {
            views: self.views,
            total_reward: self.total_reward,
        }
    }
}

/// A sum of reward amounts as owners are shown it (API, export, dashboard):
/// to 15 significant digits, all a double holds surely, so a float sum's
/// last-bit error does not show (ten rewards of 0.1 are `1`, not
/// `0.9999999999999999`). The stored sum is kept as it is.
pub fn shown_reward(total: f64) -> f64 {
    if !total.is_finite() || total == 0.0 {
        return total;
    }
    format!("{total:.14e}").parse().unwrap_or(total)
}

/// An experiment: its definition and its variants' counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    /// Its identity on this server (the key it is stored under).
    pub uuid: Uuid,
    /// The uuid its owner and pages know it by, when that is not `uuid`:
    /// uuids are per account, so a uuid chosen at creation that another
    /// account's experiment already has is kept here, and `uuid` is then
    /// one the server made. `None` for nearly every experiment.
    pub alias: Option<Uuid>,
    /// The short name pages know it by (`myna-{id}`): see
    /// [`crate::experiment::id`]; unique among the account's published
    /// experiments.
    pub id: String,
    /// The account that owns it.
    pub account_id: Uuid,
    /// A human name.
    pub name: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Free JSON object.
    pub settings: Value,
    /// Variants in creation order.
    pub variants: Vec<Variant>,
}

impl Experiment {
    /// The uuid the world sees (read forms, search, links): the alias if it
    /// has one, else its uuid.
    pub fn public_uuid(&self) -> Uuid {
        self.alias.unwrap_or(self.uuid)
    }

    /// The variant with this id.
    pub fn variant(&self, id: &str) -> Option<&Variant> {
        self.variants.iter().find(|v| v.id == id)
    }

    /// Whether `other` has the same definition (everything but the counts):
    /// the test of a change made elsewhere since this one was read.
    pub fn same_definition(&self, other: &Experiment) -> bool {
        self.uuid == other.uuid
            && self.alias == other.alias
            && self.id == other.id
            && self.account_id == other.account_id
            && self.name == other.name
            && self.visibility == other.visibility
            && self.settings == other.settings
            && self.variants.len() == other.variants.len()
            && self
                .variants
                .iter()
                .zip(&other.variants)
                .all(|(a, b)| a.id == b.id && a.name == b.name && a.settings == b.settings)
    }

    /// Whether the experiment has a variant with this id.
    pub fn has_variant(&self, id: &str) -> bool {
        self.variant(id).is_some()
    }

    /// The bandit's view of every variant, in order.
    pub fn arms(&self) -> Vec<Arm> {
        self.variants.iter().map(Variant::arm).collect()
    }

    /// Sets every variant's counts to zero.
    pub fn reset(&mut self) {
        for v in &mut self.variants {
            v.views = 0;
            v.total_reward = 0.0;
        }
    }
}

/// A fresh empty JSON object (the default settings).
pub fn empty_object() -> Value {
    Value::Object(Map::new())
}
