//! An experiment's page: results, charts over time, the snippet for pages,
//! the edit form and the way to reset or delete.

use maud::{Markup, html};
use myna_core::decision::{Decision, Status, Verdict};
use myna_core::deployment::css_class;
use myna_core::model::shown_reward;
use myna_core::stats::{conversion_rate, credible_interval};
use myna_core::weights::{WeightsConfig, WeightsMode};
use myna_core::{Experiment, Problem, Visibility};

use super::edit::edit_form;
use super::{Nav, page, titled, visibility_badge};
use crate::cache::Snapshot;
use crate::dashboard::charts::{self, Line};
use crate::dashboard::experiments::forms::EditForm;
use crate::dashboard::html::{self, count, percent, probability};
use crate::storage::{ApiKey, HourTotals};

/// What an experiment's page shows besides the experiment.
pub struct Extras<'a> {
    /// A notice on top.
    pub notice: Option<Markup>,
    /// The hourly totals (or that they cannot be read now).
    pub hourly: Result<&'a [HourTotals], ()>,
    /// The decision (or that it cannot be made now: storage unavailable).
    pub decision: Result<&'a Decision, ()>,
    /// The account's API keys (the snippet uses the newest).
    pub keys: &'a [ApiKey],
    /// The API root pages should call (`https://host`).
    pub api_root: &'a str,
    /// The edit form's values, and its problem when it was refused.
    pub form: &'a EditForm,
    /// The problem of a refused edit.
    pub problem: Option<&'a Problem>,
}

/// The experiment page.
pub fn experiment_page(csrf: &str, snapshot: &Snapshot, extras: &Extras<'_>) -> Markup {
    let e = &snapshot.experiment;
    let uuid = e.public_uuid();
    let body = html! {
        @if let Some(notice) = &extras.notice { (notice) }
        nav class="crumbs" aria-label="Breadcrumb" {
            a href="/" { "Experiments" } " " span aria-hidden="true" { "/" }
        }
        div class="title" { h1 { bdi { (e.name) } } (visibility_badge(e.visibility)) }
        p class="muted mono small" {
            "uuid " span id="uuid" { (uuid) } " · id " span id="experiment-id" { (e.id) }
        }
        (verdict(extras.decision))
        nav class="jump" aria-label="On this page" {
            a href="#results" { "Results" }
            a href="#charts" { "Over time" }
            a href="#snippet" { "Use it on your page" }
            a href="#markup" { "Markup" }
            a href="#edit" { "Edit" }
            a href="#danger" { "Reset or delete" }
        }
        (results(snapshot, extras.decision.ok()))
        @match extras.hourly {
            Ok(hourly) => (history(e, hourly)),
            Err(()) => section id="charts" {
                h2 { "Over time" }
                p class="alert error" { "The history cannot be read right now." }
            },
        }
        (snippet(extras.api_root, e, extras.keys))
        (markup(e))
        (edit_form(csrf, e, extras.problem, extras.form))
        section id="danger" class="card danger" {
            h2 { "Reset or delete" }
            p {
                "Resetting sets every variant's views and rewards to zero (the weights start again from equal); "
                "deleting removes the experiment and everything recorded for it."
            }
            p class="actions" {
                a class="button" href={ "/experiments/" (uuid) "/reset" } { "Reset counts…" }
                " "
                a class="button danger" href={ "/experiments/" (uuid) "/delete" } { "Delete experiment…" }
            }
        }
    };
    page(
        &titled(&e.name, extras.problem.is_some()),
        Nav::InExperiments,
        Some(csrf),
        body,
    )
}

/// The verdict in one sentence, then the health checks that are not ok,
/// each with its message (nothing more when all are).
fn verdict(decision: Result<&Decision, ()>) -> Markup {
    let Ok(decision) = decision else {
        return html! {
            section id="verdict" {
                p class="alert error" { "The decision cannot be made right now: the history cannot be read." }
            }
        };
    };
    let tone = match decision.verdict {
        Verdict::Decided | Verdict::NoDifference => "ok",
        Verdict::Leading | Verdict::Collecting => "info",
    };
    let troubles: Vec<_> = decision
        .health
        .iter()
        .filter(|c| c.status != Status::Ok)
        .collect();
    html! {
        section id="verdict" class={ "verdict " (tone) } data-verdict=(decision.verdict.as_str()) {
            p class="verdict-message" id="verdict-message" {
                span class={ "badge verdict " (decision.verdict.as_str()) } { (decision.verdict.as_str()) }
                " " (decision.message)
            }
            @if !troubles.is_empty() {
                ul class="health" id="health" aria-label="Data health" {
                    @for check in troubles {
                        @let class = if check.status == Status::Failing { "alert error" } else { "alert warn" };
                        li class=(class) data-check=(check.typename) data-status=(check.status.as_str()) {
                            strong { (check.status.as_str()) ": " } (check.message)
                        }
                    }
                }
            }
        }
    }
}

fn results(snapshot: &Snapshot, decision: Option<&Decision>) -> Markup {
    let e = &snapshot.experiment;
    let intervals: Vec<(f64, f64)> = e
        .variants
        .iter()
        .map(|v| credible_interval(v.views, v.total_reward))
        .collect();
    // The bars' scale: 0 to the largest upper bound, rounded up.
    let scale = charts::nice_max(intervals.iter().map(|i| i.1).fold(0.0, f64::max));
    let probability_best = |id: &str| {
        decision
            .and_then(|d| d.variants.iter().find(|n| n.id == id))
            .map(|n| n.probability_best)
    };
    html! {
        section id="results" {
            h2 { "Results" }
            div class="table-wrap" tabindex="0" role="region" aria-label="Results by variant" {
                table class="results" id="variants" {
                    caption class="sr-only" {
                        "Per variant: views, reward, conversion rate with its 95 % credible interval, "
                        "its probability of being best, and the weight pages are served now"
                    }
                    thead {
                        tr {
                            th scope="col" { "Variant" }
                            th scope="col" class="num" { "Views" }
                            th scope="col" class="num" { "Total reward" }
                            th scope="col" class="num" { "Conversion rate" }
                            th scope="col" {
                                "95 % credible interval "
                                span class="muted small" id="interval-scale" data-scale=(scale) {
                                    "(bars from 0 to " (charts::axis_percent(scale)) ")"
                                }
                            }
                            th scope="col" class="num" { "Probability best" }
                            th scope="col" class="num" { "Weight now" }
                        }
                    }
                    tbody {
                        @for (i, v) in e.variants.iter().enumerate() {
                            @let weight = snapshot.weights.get(i).copied().unwrap_or(0.0);
                            @let rate = conversion_rate(v.views, v.total_reward);
                            @let (low, high) = intervals[i];
                            @let best = probability_best(&v.id);
                            tr data-variant=(v.id) {
                                th scope="row" data-label="Variant" {
                                    (charts::swatch(i))
                                    bdi { (v.name) } " "
                                    @if v.id != v.name {
                                        span class="muted mono small" { bdi { (v.id) } }
                                    }
                                }
                                td data-label="Views" class="num views" data-value=(v.views) { (count(v.views)) }
                                td data-label="Total reward" class="num reward" data-value=(shown_reward(v.total_reward)) {
                                    (html::reward(v.total_reward))
                                }
                                td data-label="Conversion rate" class="num rate" data-value=(rate.map_or(String::new(), |r| r.to_string())) {
                                    (rate.map_or("—".to_owned(), percent))
                                }
                                td data-label="95 % credible interval" class="interval" data-low=(low) data-high=(high) {
                                    (interval_bar(low, high, rate, scale))
                                }
                                td data-label="Probability best" class="num best" data-value=(best.map_or(String::new(), |p| p.to_string())) {
                                    (best.map_or("—".to_owned(), probability))
                                }
                                td data-label="Weight now" class="num weight" data-value=(weight) {
                                    (weight_bar(weight, i)) " " (format!("{weight:.4}"))
                                }
                            }
                        }
                    }
                }
            }
            p class="hint" {
                "The credible interval is where the conversion rate lies with 95 % probability "
                "(Beta posterior, equal tails). "
                (weight_note(e))
            }
        }
    }
}

/// What the weight column is, for this experiment's weights mode (and its
/// exploration floor, core's default).
fn weight_note(e: &Experiment) -> String {
    let floor = WeightsConfig::default().exploration_floor;
    let k = e.variants.len();
    let formula = |share: &str| format!("weight = {floor} + (1 − {k} × {floor}) × {share}");
    match WeightsMode::from_settings(&e.settings).0 {
        WeightsMode::Conversions => format!(
            "The weight is the share of visitors the SDK shows the variant next (traffic: most conversions): \
             the probability it is best, with a floor of {floor} per variant so that every variant keeps \
             being tried ({}).",
            formula("probability best")
        ),
        WeightsMode::Decide => format!(
            "The weight is the share of visitors the SDK shows the variant next (traffic: a decision sooner): \
             top-two sampling, which splits traffic between the leader and its closest challenger to decide \
             faster, so it is not the probability of being best (two variants get an even split whatever \
             the counts); a floor of {floor} per variant keeps every variant tried ({}).",
            formula("top-two share")
        ),
    }
}

/// An interval's text with a small SVG drawing of it on `[0, scale]` (the
/// results table's scale, shared by every variant).
fn interval_bar(low: f64, high: f64, rate: Option<f64>, scale: f64) -> Markup {
    let x = |v: f64| 2.0 + 96.0 * (v / scale).clamp(0.0, 1.0);
    html! {
        span class="interval-text" { (percent(low)) " – " (percent(high)) }
        " "
        svg class="bar" viewBox="0 0 100 12" width="72" height="9" aria-hidden="true" focusable="false" {
            rect x="2" y="5" width="96" height="2" fill="#d8dee9" {}
            rect x=(format!("{:.1}", x(low))) y="3" width=(format!("{:.1}", (x(high) - x(low)).max(1.0)))
                height="6" rx="2" fill="#93c5fd" {}
            @if let Some(r) = rate {
                @let x = format!("{:.1}", x(r));
                line x1=(x) x2=(x) y1="1" y2="11" stroke="#111827" stroke-width="2" {}
            }
        }
    }
}

fn weight_bar(weight: f64, index: usize) -> Markup {
    html! {
        svg class="bar" viewBox="0 0 60 10" width="60" height="10" aria-hidden="true" focusable="false" {
            rect x="0" y="2" width="60" height="6" rx="3" fill="#e5e7eb" {}
            rect x="0" y="2" width=(format!("{:.1}", 60.0 * weight.clamp(0.0, 1.0))) height="6" rx="3"
                fill=(charts::color(index)) {}
        }
    }
}

fn history(e: &Experiment, hourly: &[HourTotals]) -> Markup {
    if hourly.is_empty() {
        return html! {
            section id="charts" {
                h2 { "Over time" }
                p class="empty" { "Nothing recorded yet: the charts appear with the first views." }
            }
        };
    }
    let h = charts::history(e, hourly, &WeightsConfig::default());
    let lines = |values: &dyn Fn(usize) -> Vec<Option<f64>>| -> Vec<Line<'_>> {
        e.variants
            .iter()
            .enumerate()
            .map(|(i, v)| Line {
                label: &v.name,
                index: i,
                values: values(i),
            })
            .collect()
    };
    let weight_lines = lines(&|i| h.weights[i].iter().map(|&w| Some(w)).collect());
    let rate_lines = lines(&|i| h.rates[i].clone());
    let rate_top = charts::rate_axis_max(&h);
    let clipped = h.rates.iter().flatten().flatten().any(|r| *r > rate_top);
    let names: Vec<&str> = e.variants.iter().map(|v| v.name.as_str()).collect();
    let names = names.join(", ");
    let csv = format!("/experiments/{}/export.csv", e.public_uuid());
    html! {
        section id="charts" {
            h2 { "Over time" }
            p class="actions" {
                a class="button" id="export-csv" href=(csv) download { "Download CSV" }
                " "
                span class="muted small" { "views and rewards per variant and hour" }
            }
            div class="charts" {
                figure {
                    figcaption { "Weight by hour" }
                    (charts::line_chart(
                        "weights-chart",
                        "Weight of each variant over time",
                        &format!(
                            "The share of visitors each variant ({names}) is shown, hour by hour, from the counts up to that hour."
                        ),
                        &h.hours,
                        &weight_lines,
                        1.0,
                    ))
                    (charts::legend(&weight_lines))
                }
                figure {
                    figcaption { "Conversion rate by hour (cumulative)" }
                    (charts::line_chart(
                        "rates-chart",
                        "Conversion rate of each variant over time",
                        &format!("Cumulative reward over cumulative views of each variant ({names}), hour by hour."),
                        &h.hours,
                        &rate_lines,
                        rate_top,
                    ))
                    @if clipped {
                        p class="muted small" id="rates-clipped" {
                            "Rates above " (percent(rate_top)) " (early hours, on few views) run off the top of the chart, drawn along its edge; the table below has them."
                        }
                    }
                    (charts::legend(&rate_lines))
                }
            }
            // The same numbers as a table, for screen readers and the curious.
            details {
                summary { "The numbers behind the charts" }
                div class="table-wrap" tabindex="0" role="region" aria-label="The numbers behind the charts" {
                    table class="data" {
                        thead {
                            tr {
                                th scope="col" { "Hour" }
                                @for v in &e.variants {
                                    th scope="col" class="num" { bdi { (v.name) } ": weight" }
                                    th scope="col" class="num" { bdi { (v.name) } ": rate" }
                                }
                            }
                        }
                        tbody {
                            @for (j, hour) in h.hours.iter().enumerate().rev().take(48) {
                                tr {
                                    th scope="row" { (html::time(*hour)) }
                                    @for i in 0..e.variants.len() {
                                        td class="num" { (format!("{:.4}", h.weights[i][j])) }
                                        td class="num" { (h.rates[i][j].map_or("—".to_owned(), percent)) }
                                    }
                                }
                            }
                        }
                    }
                }
                p class="hint" { "The latest 48 hours with data, newest first." }
            }
        }
    }
}

/// A JavaScript string literal (JSON's), for the snippet, safe to paste
/// anywhere in a script: `<` escaped (no `</script>` or `<!--` can end an
/// inline script), U+2028/U+2029, which end a `//` comment, and the bidi
/// controls (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069), which would
/// show the code around them in another order than it runs.
fn js_string(text: &str) -> String {
    let json = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned());
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The snippet's code: the SDK connected to `api_root` with `key`, this
/// experiment suggested and rewarded.
fn snippet_code(api_root: &str, key: Option<&ApiKey>, e: &Experiment) -> String {
    let key_text = key.map_or("YOUR-API-KEY".to_owned(), |k| k.uuid.to_string());
    let ids: Vec<String> = e.variants.iter().map(|v| js_string(&v.id)).collect();
    format!(
        "import {{ Myna }} from \"myna-sdk\";\n\n\
         const myna = await Myna.connect({{\n  apiRoot: {root},\n  apiKey: {key},\n}});\n\n\
         // This visitor's variant ({ids}): drawn by weight, then sticky; one view queued.\n\
         const expt = myna.experiment({uuid});\n\
         const variant = expt.suggest();\n\
         // … show the page as variant.id and variant.settings say …\n\n\
         // When the visitor converts (signs up, buys), once:\n\
         expt.reward();\n",
        root = js_string(api_root),
        key = js_string(&key_text),
        ids = ids.join(" or "),
        uuid = js_string(&e.public_uuid().to_string()),
    )
}

/// Text as an HTML attribute value between double quotes.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;")
}

/// Page markup for the deployment's script: one element a variant, shown
/// only for it (its class, `myna-{id}` unless `myna.html.cssClass` says
/// otherwise, and `data-show`, as `myna-html` read them).
fn markup_code(e: &Experiment) -> String {
    e.variants
        .iter()
        .map(|v| {
            format!(
                "<div class=\"{class}\" data-show=\"{variant}\">…</div>\n",
                class = attribute(&css_class(e)),
                variant = attribute(&v.id),
            )
        })
        .collect()
}

/// Which id pages use, and markup for its variants.
fn markup(e: &Experiment) -> Markup {
    html! {
        section id="markup" class="card" {
            h2 { "Markup" }
            p {
                "Pages with the deployment script (see " a href="/keys" { "API keys" } ") know this experiment by its id "
                code { (e.id) } ": elements with the class " code id="markup-class" { (css_class(e)) } " belong to it, "
                "and " code { "data-show" } " shows an element only for that variant."
            }
            pre class="code" tabindex="0" role="region" aria-label="Markup for the variants" {
                code id="markup-code" { (markup_code(e)) }
            }
        }
    }
}

fn snippet(api_root: &str, e: &Experiment, keys: &[ApiKey]) -> Markup {
    let key = keys.last();
    html! {
        section id="snippet" class="card" {
            h2 { "Use it on your page" }
            @match key {
                Some(key) => p {
                    "Paste this into the page's module script (the npm package " code { "myna-sdk" } "). "
                    "It uses your API key " q { bdi { (key.name.as_deref().unwrap_or("unnamed")) } } "; "
                    "API keys are public: they may only read published experiments and record events."
                },
                None => p class="alert warn" {
                    "You have no API key yet: " a href="/keys" { "create one on the API keys page" } ", "
                    "then come back for the snippet with it filled in."
                },
            }
            @if e.visibility != Visibility::Published {
                p class="alert warn" {
                    "Pages see this experiment only once it is " strong { "published" } " "
                    "(it is " (e.visibility.as_str()) " now): change its visibility below."
                }
            }
            pre class="code" tabindex="0" role="region" aria-label="The snippet" {
                code id="snippet-code" { (snippet_code(api_root, key, e)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::charts::tests::{totals, two_variants};

    /// Variant `a`'s hours: `first` (views, reward) in hour 1, then `then`
    /// in each of hours 2 to 29.
    fn hours(first: (u64, f64), then: (u64, f64)) -> Vec<HourTotals> {
        let at = |hour: i64, (views, reward): (u64, f64)| totals("a", hour, views, reward);
        std::iter::once(at(1, first))
            .chain((2..30).map(|hour| at(hour, then)))
            .collect()
    }

    #[test]
    fn the_rate_chart_says_when_early_rates_run_off_its_top() {
        let experiment = two_variants();
        // Only `a` shown: one view and one reward first (100 %), then 5 %.
        let page = history(&experiment, &hours((1, 1.0), (100, 5.0))).into_string();
        assert!(page.contains("id=\"rates-clipped\""), "{page}");
        let above = format!("Rates above {}", percent(0.1));
        assert!(page.contains(&above), "{page}");
        // Settled from the start: nothing runs off.
        let page = history(&experiment, &hours((100, 5.0), (100, 5.0))).into_string();
        assert!(!page.contains("rates-clipped"), "{page}");
    }
}
