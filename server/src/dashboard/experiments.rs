//! The experiment pages: the list (search, filter), creating one, an
//! experiment's results, charts, snippet and edit form, reset and delete.

use std::fmt::Write as _;

use myna_core::search::{MAX_LIMIT, parse_search};
use myna_core::stats::{conversion_rate, credible_interval};
use myna_core::weights::{WeightsConfig, probability_best};
use myna_core::{Code, Experiment, Message, Problem, Visibility};
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{Body, Request, Response, handler};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::charts::{self, Line};
use super::html::{self, Nav, count, csrf_field, esc, percent};
use super::session::{Session, is_https};
use super::{not_found, posted, signed_in};
use crate::auth::Caller;
use crate::cache::Snapshot;
use crate::request::Params;
use crate::service::experiments::{
    create_experiment, delete_experiment, of_account, reset_experiment, snapshot, update_experiment,
};
use crate::state::AppState;
use crate::storage::{ApiKey, HourTotals};

/// Experiments a list page shows.
const PAGE_SIZE: usize = 50;

/// The notices a `done` parameter may ask for (never the parameter's text).
fn done_notice(params: &Params) -> String {
    let text = match params.get("done") {
        Some("created") => "The experiment was created.",
        Some("saved") => "Your changes were saved.",
        Some("reset") => "The counts were reset to zero.",
        Some("deleted") => "The experiment was deleted.",
        _ => return String::new(),
    };
    html::notice(text)
}

fn visibility_badge(visibility: Visibility) -> String {
    format!(
        "<span class=\"badge {v}\">{v}</span>",
        v = visibility.as_str()
    )
}

/// `GET /`: the experiments, searched and filtered like the search endpoint.
#[handler]
pub async fn list(request: &Request, Data(state): Data<&AppState>) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = Params::of(request);
    let chosen: Vec<&str> = params.all("visibility").collect();
    let visibility = if chosen.is_empty() {
        "draft,published,archived".to_owned()
    } else {
        chosen.join(",")
    };
    let limit = PAGE_SIZE.to_string();
    let query = parse_search(|name| match name {
        "visibility" => Some(visibility.as_str()),
        "limit" => Some(limit.as_str()),
        other => params.get(other),
    });
    let mine: Vec<Snapshot> = of_account(state, session.account);
    let mut body = String::new();
    body.push_str(&done_notice(&params));
    let _ = write!(
        body,
        "<div class=\"heading\"><h1>Experiments</h1>\
         <a class=\"button primary\" href=\"/experiments/new\">New experiment</a></div>"
    );
    body.push_str(&search_form(&params, &chosen));
    match query {
        Err(problem) => body.push_str(&html::problem_box(&problem)),
        Ok(query) => {
            let found = query.apply(
                mine.iter().map(|s| s.experiment.as_ref()),
                myna_core::Access::Complete,
            );
            if found.is_empty() {
                let text = if mine.is_empty() {
                    "No experiments yet. Create one to start: give it a name and two or more variants."
                } else {
                    "No experiment matches this search."
                };
                let _ = write!(body, "<p class=\"empty\">{text}</p>");
            } else {
                body.push_str(&list_table(&found));
            }
            body.push_str(&pager(&params, query.skip, found.len()));
        }
    }
    html::html(
        StatusCode::OK,
        html::page("Experiments", Nav::Experiments, Some(&session.csrf), &body),
    )
}

fn search_form(params: &Params, chosen: &[&str]) -> String {
    let mut out = String::from(
        "<form class=\"search\" method=\"get\" action=\"/\" role=\"search\">\
         <p class=\"field grow\"><label for=\"q\">Search</label>",
    );
    let _ = write!(
        out,
        "<input id=\"q\" name=\"q\" type=\"search\" placeholder=\"Name or uuid\" value=\"{}\"></p>\
         <fieldset class=\"field\"><legend>Visibility <span class=\"muted\">(none ticked: all)</span></legend><div class=\"checks\">",
        esc(params.get("q").unwrap_or_default())
    );
    for v in Visibility::ALL {
        let checked = if chosen.contains(&v.as_str()) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<label><input type=\"checkbox\" name=\"visibility\" value=\"{v}\"{checked}> {v}</label>",
            v = v.as_str()
        );
    }
    out.push_str("</div></fieldset><p class=\"field\"><label for=\"sort\">Order</label><select id=\"sort\" name=\"sort\">");
    let sort = params.get("sort").unwrap_or("name-asc");
    for (value, label) in [
        ("name-asc", "Name, A to Z"),
        ("name-desc", "Name, Z to A"),
        ("uuid-asc", "Uuid, ascending"),
        ("uuid-desc", "Uuid, descending"),
    ] {
        let selected = if value == sort { " selected" } else { "" };
        let _ = write!(out, "<option value=\"{value}\"{selected}>{label}</option>");
    }
    out.push_str(
        "</select></p><p class=\"field\"><button type=\"submit\">Search</button></p></form>",
    );
    out
}

fn list_table(found: &[&Experiment]) -> String {
    let mut out = String::from(
        "<div class=\"table-wrap\"><table class=\"list\" id=\"experiments\"><caption class=\"sr-only\">Your experiments</caption>\
         <thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Visibility</th><th scope=\"col\">Variants</th>\
         <th scope=\"col\" class=\"num\">Views</th><th scope=\"col\">Best variant</th></tr></thead><tbody>",
    );
    for e in found {
        let views: u64 = e.variants.iter().map(|v| v.views).sum();
        let names: Vec<String> = e.variants.iter().map(|v| esc(&v.name)).collect();
        let best = if views == 0 || e.variants.len() < 2 {
            "<span class=\"muted\">no data yet</span>".to_owned()
        } else {
            let p = probability_best(&e.arms());
            let (i, p) =
                p.iter().enumerate().fold(
                    (0, f64::MIN),
                    |(bi, bp), (i, &p)| {
                        if p > bp { (i, p) } else { (bi, bp) }
                    },
                );
            format!(
                "<span>{} <span class=\"muted\">({} likely best)</span></span>",
                esc(&e.variants[i].name),
                percent(p)
            )
        };
        let _ = write!(
            out,
            "<tr data-uuid=\"{uuid}\"><th scope=\"row\" data-label=\"Name\"><a href=\"/experiments/{uuid}\">{name}</a></th>\
             <td data-label=\"Visibility\">{badge}</td><td data-label=\"Variants\">{n}: {names}</td>\
             <td data-label=\"Views\" class=\"num\" data-value=\"{views}\">{views_text}</td>\
             <td data-label=\"Best variant\">{best}</td></tr>",
            uuid = e.public_uuid(),
            name = esc(&e.name),
            badge = visibility_badge(e.visibility),
            n = e.variants.len(),
            names = names.join(", "),
            views_text = count(views),
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

fn pager(params: &Params, skip: usize, shown: usize) -> String {
    let link = |skip: usize| {
        let mut query = String::new();
        if let Some(q) = params.get("q") {
            let _ = write!(query, "q={}&", html::url_encode(q));
        }
        for v in params.all("visibility") {
            let _ = write!(query, "visibility={}&", html::url_encode(v));
        }
        if let Some(sort) = params.get("sort") {
            let _ = write!(query, "sort={}&", html::url_encode(sort));
        }
        format!("/?{query}skip={skip}")
    };
    let mut out = String::new();
    if skip > 0 {
        let _ = write!(
            out,
            "<a href=\"{}\">Previous page</a>",
            esc(&link(skip.saturating_sub(PAGE_SIZE)))
        );
    }
    if shown == PAGE_SIZE {
        let _ = write!(
            out,
            "<a href=\"{}\">Next page</a>",
            esc(&link(skip + PAGE_SIZE))
        );
    }
    if out.is_empty() {
        out
    } else {
        format!("<nav class=\"pager\" aria-label=\"Pages\">{out}</nav>")
    }
}

/// What a create form held (to show it again after a problem).
#[derive(Default)]
struct NewValues<'a> {
    name: &'a str,
    visibility: &'a str,
    variants: &'a str,
    settings: &'a str,
}

fn visibility_select(id: &str, current: &str) -> String {
    let mut out = format!("<select id=\"{id}\" name=\"visibility\">");
    for v in Visibility::ALL {
        let selected = if v.as_str() == current {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            out,
            "<option value=\"{v}\"{selected}>{v}</option>",
            v = v.as_str()
        );
    }
    out.push_str("</select>");
    out
}

fn new_page(session: &Session, values: &NewValues<'_>, problem: Option<&Problem>) -> String {
    let mut body = String::from("<section class=\"narrow\"><h1>New experiment</h1>");
    if let Some(problem) = problem {
        body.push_str(&html::problem_box(problem));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/experiments/new\" class=\"card\">{csrf}\
         <p class=\"field\"><label for=\"name\">Name</label>\
         <input id=\"name\" name=\"name\" required maxlength=\"256\" value=\"{name}\" autofocus></p>\
         <p class=\"field\"><label for=\"visibility\">Visibility</label>{vis}\
         <span class=\"hint\" id=\"visibility-hint\">Pages (API keys) see only published experiments.</span></p>\
         <p class=\"field\"><label for=\"variants\">Variants</label>\
         <textarea id=\"variants\" name=\"variants\" rows=\"4\" aria-describedby=\"variants-hint\" required>{variants}</textarea>\
         <span class=\"hint\" id=\"variants-hint\">One variant id a line, e.g. <code>control</code> and <code>bold-headline</code>. \
         Names and settings can be edited afterwards.</span></p>\
         <p class=\"field\"><label for=\"settings\">Settings <span class=\"muted\">(JSON object, optional)</span></label>\
         <textarea id=\"settings\" name=\"settings\" rows=\"3\" class=\"code\">{settings}</textarea></p>\
         <p class=\"actions\"><button type=\"submit\" class=\"primary\">Create experiment</button> \
         <a href=\"/\">Cancel</a></p></form></section>",
        csrf = csrf_field(&session.csrf),
        name = esc(values.name),
        vis = visibility_select(
            "visibility",
            if values.visibility.is_empty() {
                "draft"
            } else {
                values.visibility
            }
        ),
        variants = esc(values.variants),
        settings = esc(values.settings),
    );
    body.push_str("</section>");
    html::page(
        "New experiment",
        Nav::Experiments,
        Some(&session.csrf),
        &body,
    )
}

/// `GET /experiments/new`.
#[handler]
pub async fn new_form(request: &Request, Data(state): Data<&AppState>) -> Response {
    match signed_in(state, request).await {
        Ok(session) => html::html(
            StatusCode::OK,
            new_page(&session, &NewValues::default(), None),
        ),
        Err(redirect) => redirect,
    }
}

/// A settings textarea as a JSON value (blank is `{}`); a problem at `path`
/// when it is not JSON (core checks that it is an object).
fn settings_value(text: &str, path: &str, problems: &mut Vec<Message>) -> Value {
    if text.trim().is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_str(text).unwrap_or_else(|error| {
        problems.push(Message::at(
            Code::InvalidJson,
            path,
            format!("This is not valid JSON: {error}."),
        ));
        Value::Null
    })
}

/// `POST /experiments/new`: core's `parse_create` through the API's create.
#[handler]
pub async fn create(request: &Request, Data(state): Data<&AppState>, body: Body) -> Response {
    let (session, form) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let values = NewValues {
        name: form.get("name").unwrap_or_default(),
        visibility: form.get("visibility").unwrap_or_default(),
        variants: form.get("variants").unwrap_or_default(),
        settings: form.get("settings").unwrap_or_default(),
    };
    let mut problems = Vec::new();
    let settings = settings_value(values.settings, "settings", &mut problems);
    let variants: Vec<Value> = values
        .variants
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|id| json!({ "id": id }))
        .collect();
    if variants.is_empty() {
        problems.push(Message::at(
            Code::MissingField,
            "variants",
            "Give at least one variant id (one a line).",
        ));
    }
    let result = if problems.is_empty() {
        let body = json!({
            "name": values.name,
            "visibility": values.visibility,
            "settings": settings,
            "variants": variants,
        });
        create_experiment(state, session.account, body.to_string().as_bytes()).await
    } else {
        Err(Problem::many(problems))
    };
    match result {
        Ok(uuid) => html::redirect(&format!("/experiments/{uuid}?done=created"), &[]),
        Err(problem) => html::html(
            status_of(&problem),
            new_page(&session, &values, Some(&problem)),
        ),
    }
}

fn status_of(problem: &Problem) -> StatusCode {
    StatusCode::from_u16(problem.status).unwrap_or(StatusCode::BAD_REQUEST)
}

/// The session's experiment `uuid` from the cache (with the weights the read
/// endpoint serves), or the not-found page.
fn owned(state: &AppState, session: &Session, uuid: &str) -> Result<Snapshot, Box<Response>> {
    let owner = Caller::Owner {
        account: session.account,
    };
    Uuid::parse_str(uuid)
        .ok()
        .and_then(|uuid| snapshot(state, owner, uuid))
        .ok_or_else(|| Box::new(not_found(session, "experiment")))
}

/// What an edit form held.
struct EditValues {
    name: String,
    visibility: String,
    settings: String,
    /// Per variant: id, name, settings, remove.
    variants: Vec<(String, String, String, bool)>,
    add: String,
}

impl EditValues {
    fn of(experiment: &Experiment) -> EditValues {
        EditValues {
            name: experiment.name.clone(),
            visibility: experiment.visibility.as_str().to_owned(),
            settings: pretty(&experiment.settings),
            variants: experiment
                .variants
                .iter()
                .map(|v| (v.id.clone(), v.name.clone(), pretty(&v.settings), false))
                .collect(),
            add: String::new(),
        }
    }

    fn from_form(form: &Params) -> EditValues {
        let mut variants = Vec::new();
        for i in 0..MAX_LIMIT {
            let Some(id) = form.get(&format!("v{i}.id")) else {
                break;
            };
            variants.push((
                id.to_owned(),
                form.get(&format!("v{i}.name"))
                    .unwrap_or_default()
                    .to_owned(),
                form.get(&format!("v{i}.settings"))
                    .unwrap_or_default()
                    .to_owned(),
                form.get(&format!("v{i}.remove")).is_some(),
            ));
        }
        EditValues {
            name: form.get("name").unwrap_or_default().to_owned(),
            visibility: form.get("visibility").unwrap_or_default().to_owned(),
            settings: form.get("settings").unwrap_or_default().to_owned(),
            variants,
            add: form.get("add").unwrap_or_default().to_owned(),
        }
    }

    /// The update body (`name`, `visibility`, `settings`, `variantUpdates`)
    /// for core's `apply_update`, or the problems of the form itself.
    fn update_body(&self) -> Result<Value, Problem> {
        let mut problems = Vec::new();
        let settings = settings_value(&self.settings, "settings", &mut problems);
        let mut updates = Map::new();
        for (id, name, settings, remove) in &self.variants {
            let path = myna_core::settings::key_path("variantUpdates", id);
            let update = if *remove {
                Value::Null
            } else {
                let settings = settings_value(settings, &format!("{path}.settings"), &mut problems);
                json!({ "name": name, "settings": settings })
            };
            updates.insert(id.clone(), update);
        }
        for id in self.add.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if updates.contains_key(id) {
                problems.push(Message::at(
                    Code::InvalidValue,
                    myna_core::settings::key_path("variantUpdates", id),
                    "A variant with this id exists already.",
                ));
            } else {
                updates.insert(id.to_owned(), json!({}));
            }
        }
        if problems.is_empty() {
            Ok(json!({
                "name": self.name,
                "visibility": self.visibility,
                "settings": settings,
                "variantUpdates": updates,
            }))
        } else {
            Err(Problem::many(problems))
        }
    }
}

/// Rows for a textarea showing `text`: its lines, from 2 to 12.
fn rows(text: &str) -> usize {
    text.lines().count().clamp(2, 12)
}

fn pretty(value: &Value) -> String {
    match value {
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        value => serde_json::to_string_pretty(value).unwrap_or_default(),
    }
}

/// `GET /experiments/{uuid}`: results, charts, snippet, edit form.
#[handler]
pub async fn show(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let snapshot = match owned(state, &session, &uuid) {
        Ok(snapshot) => snapshot,
        Err(missing) => return *missing,
    };
    let params = Params::of(request);
    let notice = done_notice(&params);
    let values = EditValues::of(&snapshot.experiment);
    let page = experiment_page(state, request, &session, &snapshot, &notice, None, &values).await;
    html::html(StatusCode::OK, page)
}

/// `POST /experiments/{uuid}`: the edit form, as an update body through the
/// API's update (core's `apply_update` in the commit writer).
#[handler]
pub async fn edit(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    let (session, form) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let snapshot = match owned(state, &session, &uuid) {
        Ok(snapshot) => snapshot,
        Err(missing) => return *missing,
    };
    let uuid = snapshot.experiment.public_uuid();
    let values = EditValues::from_form(&form);
    let result = match values.update_body() {
        Ok(body) => {
            update_experiment(state, session.account, uuid, body.to_string().into_bytes()).await
        }
        Err(problem) => Err(problem),
    };
    match result {
        Ok(()) => html::redirect(&format!("/experiments/{uuid}?done=saved"), &[]),
        Err(problem) => {
            let page = experiment_page(
                state,
                request,
                &session,
                &snapshot,
                "",
                Some(&problem),
                &values,
            )
            .await;
            html::html(status_of(&problem), page)
        }
    }
}

async fn experiment_page(
    state: &AppState,
    request: &Request,
    session: &Session,
    snapshot: &Snapshot,
    notice: &str,
    problem: Option<&Problem>,
    values: &EditValues,
) -> String {
    let e = &snapshot.experiment;
    let hourly = state.storage.hourly(e.uuid).await;
    let keys = state
        .storage
        .api_keys(session.account)
        .await
        .unwrap_or_default();
    let mut body = String::new();
    body.push_str(notice);
    let _ = write!(
        body,
        "<nav class=\"crumbs\" aria-label=\"Breadcrumb\"><a href=\"/\">Experiments</a> <span aria-hidden=\"true\">/</span></nav>\
         <div class=\"title\"><h1>{name}</h1>{badge}</div>\
         <p class=\"muted mono small\">uuid <span id=\"uuid\">{uuid}</span></p>\
         <nav class=\"jump\" aria-label=\"On this page\"><a href=\"#results\">Results</a><a href=\"#charts\">Over time</a>\
         <a href=\"#snippet\">Use it on your page</a><a href=\"#edit\">Edit</a><a href=\"#danger\">Reset or delete</a></nav>",
        name = esc(&e.name),
        badge = visibility_badge(e.visibility),
        uuid = e.public_uuid(),
    );
    body.push_str(&results(snapshot));
    body.push_str(&match &hourly {
        Ok(hourly) => history(e, hourly),
        Err(_) => "<section id=\"charts\"><h2>Over time</h2><p class=\"alert error\">The history cannot be read right now.</p></section>".to_owned(),
    });
    body.push_str(&snippet(request, e, &keys));
    body.push_str(&edit_form(session, e, problem, values));
    let _ = write!(
        body,
        "<section id=\"danger\" class=\"card danger\"><h2>Reset or delete</h2>\
         <p>Resetting sets every variant's views and rewards to zero (the weights start again from equal); \
         deleting removes the experiment and everything recorded for it.</p>\
         <p class=\"actions\"><a class=\"button\" href=\"/experiments/{uuid}/reset\">Reset counts…</a> \
         <a class=\"button danger\" href=\"/experiments/{uuid}/delete\">Delete experiment…</a></p></section>",
        uuid = e.public_uuid()
    );
    html::page(&e.name, Nav::Experiments, Some(&session.csrf), &body)
}

fn results(snapshot: &Snapshot) -> String {
    let e = &snapshot.experiment;
    let mut out = String::from(
        "<section id=\"results\"><h2>Results</h2><div class=\"table-wrap\"><table class=\"results\" id=\"variants\">\
         <caption class=\"sr-only\">Per variant: views, reward, conversion rate with its 95 % credible interval, and the weight pages are served now</caption>\
         <thead><tr><th scope=\"col\">Variant</th><th scope=\"col\" class=\"num\">Views</th>\
         <th scope=\"col\" class=\"num\">Total reward</th><th scope=\"col\" class=\"num\">Conversion rate</th>\
         <th scope=\"col\">95 % credible interval</th><th scope=\"col\" class=\"num\">Weight now</th></tr></thead><tbody>",
    );
    for (i, v) in e.variants.iter().enumerate() {
        let weight = snapshot.weights.get(i).copied().unwrap_or(0.0);
        let rate = conversion_rate(v.views, v.total_reward);
        let (low, high) = credible_interval(v.views, v.total_reward);
        let rate_text = rate.map_or("—".to_owned(), percent);
        let rate_value = rate.map_or(String::new(), |r| r.to_string());
        let id_line = if v.id == v.name {
            String::new()
        } else {
            format!("<span class=\"muted mono small\">{}</span>", esc(&v.id))
        };
        let _ = write!(
            out,
            "<tr data-variant=\"{id}\"><th scope=\"row\" data-label=\"Variant\">\
             <span class=\"swatch\" data-i=\"{ci}\" aria-hidden=\"true\"></span>{name} {id_line}</th>\
             <td data-label=\"Views\" class=\"num views\" data-value=\"{views}\">{views_text}</td>\
             <td data-label=\"Total reward\" class=\"num reward\" data-value=\"{reward}\">{reward_text}</td>\
             <td data-label=\"Conversion rate\" class=\"num rate\" data-value=\"{rate_value}\">{rate_text}</td>\
             <td data-label=\"95 % credible interval\" class=\"interval\" data-low=\"{low}\" data-high=\"{high}\">{interval}</td>\
             <td data-label=\"Weight now\" class=\"num weight\" data-value=\"{weight}\">{weight_bar}{weight:.4}</td></tr>",
            id = esc(&v.id),
            ci = i % charts::COLORS.len(),
            name = esc(&v.name),
            views = v.views,
            views_text = count(v.views),
            reward = v.total_reward,
            reward_text = html::reward(v.total_reward),
            interval = interval_bar(low, high, rate),
            weight_bar = weight_bar(weight, i),
        );
    }
    out.push_str("</tbody></table></div>");
    out.push_str(
        "<p class=\"hint\">The credible interval is where the conversion rate lies with 95 % probability \
         (Beta posterior, equal tails). The weight is the share of visitors the SDK shows the variant next: \
         the probability it is best, with a small floor so that every variant keeps being tried.</p></section>",
    );
    out
}

/// An interval's text with a small SVG drawing of it on [0, 100 %].
fn interval_bar(low: f64, high: f64, rate: Option<f64>) -> String {
    let x = |v: f64| 2.0 + 96.0 * v.clamp(0.0, 1.0);
    let mark = rate.map_or(String::new(), |r| {
        format!(
            "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"1\" y2=\"11\" stroke=\"#111827\" stroke-width=\"2\"/>",
            x = x(r)
        )
    });
    format!(
        "<span class=\"interval-text\">{} – {}</span> <svg class=\"bar\" viewBox=\"0 0 100 12\" width=\"100\" height=\"12\" aria-hidden=\"true\" focusable=\"false\">\
         <rect x=\"2\" y=\"5\" width=\"96\" height=\"2\" fill=\"#d8dee9\"/>\
         <rect x=\"{:.1}\" y=\"3\" width=\"{:.1}\" height=\"6\" rx=\"2\" fill=\"#93c5fd\"/>{mark}</svg>",
        percent(low),
        percent(high),
        x(low),
        (x(high) - x(low)).max(1.0),
    )
}

fn weight_bar(weight: f64, index: usize) -> String {
    format!(
        "<svg class=\"bar\" viewBox=\"0 0 60 10\" width=\"60\" height=\"10\" aria-hidden=\"true\" focusable=\"false\">\
         <rect x=\"0\" y=\"2\" width=\"60\" height=\"6\" rx=\"3\" fill=\"#e5e7eb\"/>\
         <rect x=\"0\" y=\"2\" width=\"{:.1}\" height=\"6\" rx=\"3\" fill=\"{}\"/></svg> ",
        60.0 * weight.clamp(0.0, 1.0),
        charts::color(index)
    )
}

fn history(e: &Experiment, hourly: &[HourTotals]) -> String {
    let mut out = String::from("<section id=\"charts\"><h2>Over time</h2>");
    if hourly.is_empty() {
        out.push_str("<p class=\"empty\">Nothing recorded yet: the charts appear with the first views.</p></section>");
        return out;
    }
    let h = charts::history(e, hourly, &WeightsConfig::default());
    let weight_lines: Vec<Line<'_>> = e
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| Line {
            label: &v.name,
            index: i,
            values: h.weights[i].iter().map(|&w| Some(w)).collect(),
        })
        .collect();
    let rate_lines: Vec<Line<'_>> = e
        .variants
        .iter()
        .enumerate()
        .map(|(i, v)| Line {
            label: &v.name,
            index: i,
            values: h.rates[i].clone(),
        })
        .collect();
    let top_rate = h
        .rates
        .iter()
        .flatten()
        .flatten()
        .fold(0.0_f64, |a, &b| a.max(b));
    let names: Vec<&str> = e.variants.iter().map(|v| v.name.as_str()).collect();
    let _ = write!(
        out,
        "<div class=\"charts\"><figure><figcaption>Weight by hour</figcaption>{}{}</figure>\
         <figure><figcaption>Conversion rate by hour (cumulative)</figcaption>{}{}</figure></div>",
        charts::line_chart(
            "weights-chart",
            "Weight of each variant over time",
            &format!(
                "The share of visitors each variant ({}) is shown, hour by hour, from the counts up to that hour.",
                names.join(", ")
            ),
            &h.hours,
            &weight_lines,
            1.0,
        ),
        charts::legend(&weight_lines),
        charts::line_chart(
            "rates-chart",
            "Conversion rate of each variant over time",
            &format!(
                "Cumulative reward over cumulative views of each variant ({}), hour by hour.",
                names.join(", ")
            ),
            &h.hours,
            &rate_lines,
            charts::nice_max(top_rate * 1.1),
        ),
        charts::legend(&rate_lines),
    );
    // The same numbers as a table, for screen readers and the curious.
    let _ = write!(
        out,
        "<details><summary>The numbers behind the charts</summary><div class=\"table-wrap\"><table class=\"data\">\
         <thead><tr><th scope=\"col\">Hour</th>"
    );
    for v in &e.variants {
        let _ = write!(
            out,
            "<th scope=\"col\" class=\"num\">{n}: weight</th><th scope=\"col\" class=\"num\">{n}: rate</th>",
            n = esc(&v.name)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for (j, hour) in h.hours.iter().enumerate().rev().take(48) {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">{}</th>",
            esc(&html::time(*hour))
        );
        for i in 0..e.variants.len() {
            let _ = write!(
                out,
                "<td class=\"num\">{:.4}</td><td class=\"num\">{}</td>",
                h.weights[i][j],
                h.rates[i][j].map_or("—".to_owned(), percent)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div><p class=\"hint\">The latest 48 hours with data, newest first.</p></details></section>");
    out
}

/// The API root pages should call: this request's scheme and host.
fn api_root(request: &Request) -> String {
    let headers = request.headers();
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(poem::http::header::HOST))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let scheme = if is_https(request) { "https" } else { "http" };
    format!("{scheme}://{host}")
}

/// A JavaScript string literal (JSON's), for the snippet.
fn js_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn snippet(request: &Request, e: &Experiment, keys: &[ApiKey]) -> String {
    let key = keys.last();
    let key_text = key.map_or("YOUR-API-KEY".to_owned(), |k| k.uuid.to_string());
    let ids: Vec<String> = e.variants.iter().map(|v| js_string(&v.id)).collect();
    let code = format!(
        "import {{ Myna }} from \"myna-sdk\";\n\n\
         const myna = await Myna.connect({{\n  apiRoot: {root},\n  apiKey: {key},\n}});\n\n\
         // This visitor's variant ({ids}): drawn by weight, then sticky; one view queued.\n\
         const expt = myna.experiment({uuid});\n\
         const variant = expt.suggest();\n\
         // … show the page as variant.id and variant.settings say …\n\n\
         // When the visitor converts (signs up, buys), once:\n\
         expt.reward();\n",
        root = js_string(&api_root(request)),
        key = js_string(&key_text),
        ids = ids.join(" or "),
        uuid = js_string(&e.public_uuid().to_string()),
    );
    let mut out =
        String::from("<section id=\"snippet\" class=\"card\"><h2>Use it on your page</h2>");
    match key {
        Some(key) => {
            let _ = write!(
                out,
                "<p>Paste this into the page's module script (the npm package <code>myna-sdk</code>). \
                 It uses your API key <q>{}</q>; API keys are public: they may only read published \
                 experiments and record events.</p>",
                esc(key.name.as_deref().unwrap_or("unnamed"))
            );
        }
        None => out.push_str(
            "<p class=\"alert warn\">You have no API key yet: <a href=\"/keys\">create one on the API keys page</a>, \
             then come back for the snippet with it filled in.</p>",
        ),
    }
    if e.visibility != Visibility::Published {
        let _ = write!(
            out,
            "<p class=\"alert warn\">Pages see this experiment only once it is <strong>published</strong> \
             (it is {} now): change its visibility below.</p>",
            e.visibility.as_str()
        );
    }
    let _ = write!(
        out,
        "<pre class=\"code\" tabindex=\"0\" aria-label=\"The snippet\"><code id=\"snippet-code\">{}</code></pre></section>",
        esc(&code)
    );
    out
}

fn edit_form(
    session: &Session,
    e: &Experiment,
    problem: Option<&Problem>,
    values: &EditValues,
) -> String {
    let mut out = String::from("<section id=\"edit\" class=\"card\"><h2>Edit</h2>");
    if let Some(problem) = problem {
        out.push_str(&html::problem_box(problem));
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/experiments/{uuid}\">{csrf}\
         <div class=\"row\"><p class=\"field grow\"><label for=\"edit-name\">Name</label>\
         <input id=\"edit-name\" name=\"name\" required maxlength=\"256\" value=\"{name}\"></p>\
         <p class=\"field\"><label for=\"edit-visibility\">Visibility</label>{vis}</p></div>\
         <p class=\"field\"><label for=\"edit-settings\">Settings <span class=\"muted\">(JSON object)</span></label>\
         <textarea id=\"edit-settings\" name=\"settings\" rows=\"{rows}\" class=\"code\">{settings}</textarea></p>",
        uuid = e.public_uuid(),
        csrf = csrf_field(&session.csrf),
        name = esc(&values.name),
        vis = visibility_select("edit-visibility", &values.visibility),
        settings = esc(&values.settings),
        rows = rows(&values.settings),
    );
    for (i, (id, name, settings, remove)) in values.variants.iter().enumerate() {
        let _ = write!(
            out,
            "<fieldset class=\"variant\"><legend>Variant <code>{id}</code></legend>\
             <input type=\"hidden\" name=\"v{i}.id\" value=\"{id}\">\
             <div class=\"row\"><p class=\"field grow\"><label for=\"v{i}-name\">Name</label>\
             <input id=\"v{i}-name\" name=\"v{i}.name\" required maxlength=\"256\" value=\"{name}\"></p>\
             <p class=\"field check\"><label><input type=\"checkbox\" name=\"v{i}.remove\" value=\"1\"{checked}> \
             Remove this variant (and its counts)</label></p></div>\
             <p class=\"field\"><label for=\"v{i}-settings\">Settings <span class=\"muted\">(JSON object)</span></label>\
             <textarea id=\"v{i}-settings\" name=\"v{i}.settings\" rows=\"{rows}\" class=\"code\">{settings}</textarea></p></fieldset>",
            id = esc(id),
            name = esc(name),
            settings = esc(settings),
            checked = if *remove { " checked" } else { "" },
            rows = rows(settings),
        );
    }
    let _ = write!(
        out,
        "<p class=\"field\"><label for=\"edit-add\">Add variants</label>\
         <textarea id=\"edit-add\" name=\"add\" rows=\"2\" aria-describedby=\"add-hint\">{add}</textarea>\
         <span class=\"hint\" id=\"add-hint\">One new variant id a line; they start with no counts.</span></p>\
         <p class=\"actions\"><button type=\"submit\" class=\"primary\">Save changes</button></p></form></section>",
        add = esc(&values.add)
    );
    out
}

/// The confirmation page of a destructive action.
fn confirm_page(session: &Session, e: &Experiment, action: &str) -> String {
    let (title, text, button) = if action == "delete" {
        (
            "Delete this experiment?",
            "It is removed with every view and reward recorded for it, and pages stop seeing it. This cannot be undone.",
            "Delete experiment",
        )
    } else {
        (
            "Reset the counts?",
            "Every variant's views and rewards go back to zero and the history is forgotten; the weights start again from equal. This cannot be undone.",
            "Reset counts",
        )
    };
    let body = format!(
        "<section class=\"narrow card danger\"><h1>{title}</h1><p class=\"subject\">{name}</p><p>{text}</p>\
         <form method=\"post\" action=\"/experiments/{uuid}/{action}\">{csrf}\
         <p class=\"actions\"><button type=\"submit\" class=\"danger\" autofocus>{button}</button> \
         <a href=\"/experiments/{uuid}\">Cancel</a></p></form></section>",
        name = esc(&e.name),
        uuid = e.public_uuid(),
        csrf = csrf_field(&session.csrf),
    );
    html::page(title, Nav::Experiments, Some(&session.csrf), &body)
}

async fn confirm(state: &AppState, request: &Request, uuid: &str, action: &str) -> Response {
    let session = match signed_in(state, request).await {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    match owned(state, &session, uuid) {
        Ok(snapshot) => html::html(
            StatusCode::OK,
            confirm_page(&session, &snapshot.experiment, action),
        ),
        Err(missing) => *missing,
    }
}

/// The page of a problem from a reset or delete.
fn problem_page(session: &Session, problem: &Problem) -> Response {
    let body = format!(
        "<section class=\"narrow\"><h1>That did not work</h1>{}<p><a href=\"/\">Back to the experiments</a></p></section>",
        html::problem_box(problem)
    );
    html::html(
        status_of(problem),
        html::page("Problem", Nav::Experiments, Some(&session.csrf), &body),
    )
}

/// `GET /experiments/{uuid}/reset`: the confirmation.
#[handler]
pub async fn reset_form(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    confirm(state, request, &uuid, "reset").await
}

/// `POST /experiments/{uuid}/reset`: the API's reset.
#[handler]
pub async fn reset(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    confirmed(state, request, &uuid, body, Confirmed::Reset).await
}

/// `GET /experiments/{uuid}/delete`: the confirmation.
#[handler]
pub async fn delete_form(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
) -> Response {
    confirm(state, request, &uuid, "delete").await
}

/// `POST /experiments/{uuid}/delete`: the API's delete.
#[handler]
pub async fn delete(
    request: &Request,
    Data(state): Data<&AppState>,
    Path(uuid): Path<String>,
    body: Body,
) -> Response {
    confirmed(state, request, &uuid, body, Confirmed::Delete).await
}

/// What a confirmation page asked for.
#[derive(Debug, Clone, Copy)]
enum Confirmed {
    Reset,
    Delete,
}

/// A confirmed reset or delete (session, CSRF token and ownership checked),
/// through the API's own functions; then back to the experiment or the list.
async fn confirmed(
    state: &AppState,
    request: &Request,
    uuid: &str,
    body: Body,
    what: Confirmed,
) -> Response {
    let (session, _) = match posted(state, request, body).await {
        Ok(posted) => posted,
        Err(refusal) => return refusal,
    };
    let uuid = match owned(state, &session, uuid) {
        Ok(snapshot) => snapshot.experiment.public_uuid(),
        Err(missing) => return *missing,
    };
    let (done, next) = match what {
        Confirmed::Reset => (
            reset_experiment(state, session.account, uuid).await,
            format!("/experiments/{uuid}?done=reset"),
        ),
        Confirmed::Delete => (
            delete_experiment(state, session.account, uuid).await,
            "/?done=deleted".to_owned(),
        ),
    };
    match done {
        Ok(()) => html::redirect(&next, &[]),
        Err(problem) => problem_page(&session, &problem),
    }
}
