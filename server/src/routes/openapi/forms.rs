//! The wire forms the API description names (core makes and reads them;
//! these structs only describe them to utoipa).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// A problem: every error answer.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `problem`.
    #[schema(pattern = "^problem$")]
    pub typename: String,
    /// When, ISO 8601 in UTC.
    pub timestamp: String,
    /// The HTTP status (inside a JSONP callback, the would-be status).
    pub status: u16,
    /// What went wrong, at least one.
    #[schema(min_items = 1)]
    pub messages: Vec<ProblemMessage>,
}

/// One thing that went wrong.
#[derive(Serialize, ToSchema)]
pub struct ProblemMessage {
    /// A stable machine-readable code (`unknown-variant`, `authentication`…).
    pub typename: String,
    /// For people.
    pub message: String,
    /// The field it is about (`events[3].amount`).
    #[schema(nullable = false)]
    pub path: Option<String>,
    /// Details.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Value>,
}

/// Who may see an experiment.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only the owner.
    Draft,
    /// The owner and API keys.
    Published,
    /// Only the owner.
    Archived,
}

/// A variant in the read form.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantForm {
    /// Its name.
    pub name: String,
    /// Views (owner only).
    #[schema(nullable = false)]
    pub views: Option<u64>,
    /// Sum of rewards (owner only).
    #[schema(nullable = false)]
    pub total_reward: Option<f64>,
    /// Probability to show it next (the weights sum to 1).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub weight: f64,
    /// Free settings.
    #[schema(value_type = Object)]
    pub settings: Value,
}

/// The read form of an experiment: `complete` for the owner, `summary` (no
/// counts, no `accountId`) for an API key.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Experiment {
    /// Always `experiment`.
    #[schema(pattern = "^experiment$")]
    pub typename: String,
    /// `complete` or `summary`.
    #[schema(pattern = "^(complete|summary)$")]
    pub subtype: String,
    /// Its uuid.
    pub uuid: Uuid,
    /// The short name pages know it by (the CSS class `myna-{id}`).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    /// The owner's account (owner only).
    #[schema(nullable = false)]
    pub account_id: Option<Uuid>,
    /// Its name.
    pub name: String,
    /// Who may see it.
    pub visibility: Visibility,
    /// Free settings.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Variants by id, in creation order.
    pub variants: BTreeMap<String, VariantForm>,
}

/// The search answer.
#[derive(Serialize, ToSchema)]
pub struct ExperimentList {
    /// The experiments found.
    pub results: Vec<Experiment>,
}

/// A variant to create or update (`null` deletes it).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantInput {
    /// Its name (default: its id).
    #[schema(min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// Replaces its settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Sets entries of its settings by path (`null` removes one).
    #[schema(value_type = Option<Object>)]
    pub settings_updates: Option<Value>,
}

/// The body of create.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    /// The uuid it gets (default: a new one); taken in the account: 409 at `uuid`.
    pub uuid: Option<Uuid>,
    /// The short name pages know it by (default: from the name, made
    /// unique); unique among the account's published experiments.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// Its name.
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
    /// Default `draft`.
    pub visibility: Option<Visibility>,
    /// Free settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Entries set by path after `settings` (`null` removes one), as an
    /// update takes them (the hosted Myna's create took them too).
    #[schema(value_type = Option<Object>)]
    pub settings_updates: Option<Value>,
    /// Variants by id.
    pub variants: Option<BTreeMap<String, VariantInput>>,
}

/// The body of update: each field optional.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    /// A new id (unique among the account's published experiments).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: Option<String>,
    /// A new name.
    #[schema(min_length = 1, max_length = 256)]
    pub name: Option<String>,
    /// A new visibility.
    pub visibility: Option<Visibility>,
    /// Replaces the settings.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    /// Sets entries by path (`"buttons.color": "blue"`; `null` removes).
    #[schema(value_type = Option<Object>)]
    pub settings_updates: Option<Value>,
    /// Variants by id: an object creates or updates, `null` deletes.
    #[schema(value_type = Option<Object>)]
    pub variant_updates: Option<Value>,
}

/// What a page reports.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// A visitor was shown the variant.
    View,
    /// A visitor who saw it converted.
    Reward,
}

/// One event.
#[derive(Serialize, ToSchema)]
pub struct Event {
    /// `view` or `reward`.
    pub typename: EventType,
    /// A variant id of the experiment.
    pub variant: String,
    /// Rewards only: in `[0, 1]`, default 1.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub amount: Option<f64>,
    /// Epoch milliseconds or RFC 3339; at most 24 hours ahead.
    #[schema(schema_with = timestamp_schema)]
    pub timestamp: Option<Value>,
}

/// An event's time: epoch milliseconds, or an RFC 3339 date-time.
fn timestamp_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{
        KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
    };
    let either = OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .description(Some("Epoch milliseconds")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                .description(Some("RFC 3339")),
        )
        .description(Some(
            "Epoch milliseconds or RFC 3339; at most 24 hours ahead.",
        ))
        .build();
    Schema::OneOf(either)
}

/// A batch of events, recorded atomically (SPEC: unknown fields are
/// ignored, here and in events).
#[derive(Serialize, ToSchema)]
pub struct RecordBody {
    /// At most 1,000.
    #[schema(max_items = 1000)]
    pub events: Vec<Event>,
    /// Makes the call idempotent: a batch id already recorded is not counted again.
    pub batch: Option<Uuid>,
    /// When the sender sent the batch, on its own clock (epoch
    /// milliseconds or RFC 3339): the events' timestamps are read on that
    /// clock.
    #[serde(rename = "sentAt")]
    #[schema(schema_with = timestamp_schema)]
    pub sent_at: Option<Value>,
}

/// One variant in a deployment.
#[derive(Serialize, ToSchema)]
pub struct DeployedVariant {
    /// Always `variant`.
    #[schema(pattern = "^variant$")]
    pub typename: String,
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The probability with which a page should show it next.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub weight: f64,
    /// Free settings.
    #[schema(value_type = Object)]
    pub settings: Value,
}

/// One published experiment in a deployment.
#[derive(Serialize, ToSchema)]
pub struct DeployedExperiment {
    /// Always `experiment`.
    #[schema(pattern = "^experiment$")]
    pub typename: String,
    /// Its uuid.
    pub uuid: Uuid,
    /// The short name pages know it by (the CSS class `myna-{id}`).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Free settings.
    #[schema(value_type = Object)]
    pub settings: Value,
    /// Its variants in creation order.
    pub variants: Vec<DeployedVariant>,
}

/// The deployment form: every published experiment of an account.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Always `deployment`.
    #[schema(pattern = "^deployment$")]
    pub typename: String,
    /// The API key.
    pub uuid: Uuid,
    /// The API key (again, as the original clients read it).
    pub api_key: Uuid,
    /// The server's public root URL.
    pub api_root: String,
    /// This deployment's URL.
    pub latest: String,
    /// The published experiments, by id.
    pub experiments: Vec<DeployedExperiment>,
}

/// `{ "typename": "ok" }`.
#[derive(Serialize, ToSchema)]
pub struct Ok {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub typename: String,
}

/// A login's answer.
#[derive(Serialize, ToSchema)]
pub struct Token {
    /// Always `token`.
    #[schema(pattern = "^token$")]
    pub typename: String,
    /// The Bearer token.
    pub token: Uuid,
    /// When it expires if unused (ISO 8601).
    pub expires: String,
}

/// A login body (or Basic credentials instead).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The account's email.
    pub email: String,
    /// Its password.
    pub password: String,
}

/// An API key.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyForm {
    /// Always `apikey`.
    #[schema(pattern = "^apikey$")]
    pub typename: String,
    /// The key (public: it goes in page source).
    pub uuid: Uuid,
    /// Its label.
    #[schema(nullable = false)]
    pub name: Option<String>,
    /// When it was made (ISO 8601).
    pub created: String,
}

/// The account's API keys.
#[derive(Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Oldest first.
    pub results: Vec<ApiKeyForm>,
}

/// The body of API key creation (optional).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyBody {
    /// A label.
    pub name: Option<String>,
}

/// A variant's decision numbers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionNumbers {
    /// Probability that it is the best.
    pub probability_best: f64,
    /// Conversion rate given up, in expectation, by choosing it.
    pub expected_loss: f64,
}

/// One health check.
#[derive(Serialize, ToSchema)]
pub struct HealthCheck {
    /// Which check (`sample-ratio`, `rewards-exceed-views`…).
    pub typename: String,
    /// `ok`, `warning` or `failing`.
    #[schema(pattern = "^(ok|warning|failing)$")]
    pub status: String,
    /// For people.
    pub message: String,
    /// Its figures.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// The decision form.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Always `decision`.
    #[schema(pattern = "^decision$")]
    pub typename: String,
    /// The experiment.
    pub uuid: Uuid,
    /// When it was made (ISO 8601).
    pub at: String,
    /// `collecting`, `leading`, `decided` or `no-difference`.
    #[schema(pattern = "^(collecting|leading|decided|no-difference)$")]
    pub verdict: String,
    /// The leading variant's id.
    pub leader: Option<String>,
    /// The verdict in one sentence.
    pub message: String,
    /// Per variant.
    pub variants: BTreeMap<String, DecisionNumbers>,
    /// For `leading`: the views likely still needed.
    pub more_views: Option<u64>,
    /// The health checks.
    pub health: Vec<HealthCheck>,
}

/// One row of an export.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportRow {
    /// The hour (ISO 8601, UTC).
    pub hour: String,
    /// The variant's id.
    pub variant: String,
    /// Views in the hour.
    pub views: u64,
    /// Sum of rewards in the hour.
    pub total_reward: f64,
}

/// The JSON export.
#[derive(Serialize, ToSchema)]
pub struct Export {
    /// Always `export`.
    #[schema(pattern = "^export$")]
    pub typename: String,
    /// The experiment.
    pub uuid: Uuid,
    /// Hours oldest first, variants in creation order.
    pub rows: Vec<ExportRow>,
}

/// The body of webhook creation.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookBody {
    /// Where deliveries are posted: `http` or `https`, at most 2,048 bytes.
    #[schema(max_length = 2048)]
    pub url: String,
}

/// A webhook.
#[derive(Serialize, ToSchema)]
pub struct WebhookForm {
    /// Always `webhook`.
    #[schema(pattern = "^webhook$")]
    pub typename: String,
    /// Its uuid.
    pub uuid: Uuid,
    /// Where deliveries go.
    pub url: String,
    /// When it was made (ISO 8601).
    pub created: String,
    /// The HMAC-SHA256 key of `Myna-Signature` (only when created).
    #[schema(nullable = false)]
    pub secret: Option<String>,
}

/// The account's webhooks.
#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub results: Vec<WebhookForm>,
}
