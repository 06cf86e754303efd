//! The experiments list (`/`): the search form, the table, the pager.

use std::fmt::Write as _;

use maud::{Markup, html};
use myna_core::decision::{Outcome, Thresholds, verdict};
use myna_core::wire::url_encode;
use myna_core::{Experiment, Problem, Visibility};

use super::{Nav, page, problem_box, visibility_badge};
use crate::dashboard::html::{count, probability};

/// Experiments a list page shows.
pub const PAGE_SIZE: usize = 50;

/// The search as asked (the query's own values, to show and to page with).
pub struct Search<'a> {
    /// `q`, the text searched for.
    pub q: Option<&'a str>,
    /// The ticked visibilities (none: all).
    pub visibility: Vec<&'a str>,
    /// `sort`.
    pub sort: Option<&'a str>,
}

/// What the search found: the page's experiments and where it starts, or
/// the problem with the query.
pub enum Found<'a> {
    /// The experiments; `any` whether the account has any at all.
    Page {
        /// This page's experiments.
        experiments: Vec<&'a Experiment>,
        /// How many match the search in all.
        matched: usize,
        /// How many were skipped before them.
        skip: usize,
        /// Whether the account has any experiment.
        any: bool,
    },
    /// The query's problem.
    Problem(Problem),
}

/// The list page.
pub fn list_page(
    csrf: &str,
    notice: Option<Markup>,
    search: &Search<'_>,
    found: &Found<'_>,
) -> Markup {
    let body = html! {
        @if let Some(notice) = notice { (notice) }
        div class="heading" {
            h1 { "Experiments" }
            a class="button primary" href="/experiments/new" { "New experiment" }
        }
        (search_form(search))
        @match found {
            Found::Problem(problem) => (problem_box(problem)),
            Found::Page { experiments, matched, skip, any } => {
                @if experiments.is_empty() {
                    p class="empty" {
                        @if *any {
                            "No experiment matches this search."
                        } @else {
                            "No experiments yet. Create one to start: give it a name and two or more variants."
                        }
                    }
                } @else {
                    (list_table(experiments))
                }
                (pager(search, *skip, experiments.len(), *matched))
            }
        }
    };
    page("Experiments", Nav::Experiments, Some(csrf), body)
}

const SORTS: [(&str, &str); 4] = [
    ("name-asc", "Name, A to Z"),
    ("name-desc", "Name, Z to A"),
    ("uuid-asc", "Uuid, ascending"),
    ("uuid-desc", "Uuid, descending"),
];

fn search_form(search: &Search<'_>) -> Markup {
    let sort = search.sort.unwrap_or("name-asc");
    html! {
        form class="search" method="get" action="/" role="search" {
            p class="field grow" {
                label for="q" { "Search" }
                input id="q" name="q" dir="auto" type="search" placeholder="Name, id or uuid" value=(search.q.unwrap_or_default());
            }
            fieldset class="field" {
                legend { "Visibility " span class="muted" { "(none ticked: all)" } }
                div class="checks" {
                    @for v in Visibility::ALL {
                        label {
                            input type="checkbox" name="visibility" value=(v.as_str()) checked[search.visibility.contains(&v.as_str())];
                            " " (v.as_str())
                        }
                    }
                }
            }
            p class="field" {
                label for="sort" { "Order" }
                select id="sort" name="sort" {
                    @for (value, label) in SORTS {
                        option value=(value) selected[value == sort] { (label) }
                    }
                }
            }
            p class="field" { button type="submit" { "Search" } }
        }
    }
}

/// The verdict on the cached counts (core's rule with the experiment's
/// thresholds; no database read).
fn outcome(e: &Experiment) -> Outcome {
    verdict(&e.arms(), &Thresholds::from_settings(&e.settings).0)
}

/// The most likely best variant's name and that probability, once there
/// are views and two variants to compare.
fn best_variant<'e>(e: &'e Experiment, outcome: &Outcome) -> Option<(&'e str, f64)> {
    let views: u64 = e.variants.iter().map(|v| v.views).sum();
    if views == 0 || e.variants.len() < 2 {
        return None;
    }
    let (i, p) =
        outcome
            .probability_best
            .iter()
            .enumerate()
            .fold(
                (0, f64::MIN),
                |(bi, bp), (i, &p)| if p > bp { (i, p) } else { (bi, bp) },
            );
    Some((e.variants.get(i)?.name.as_str(), p))
}

fn list_table(found: &[&Experiment]) -> Markup {
    html! {
        div class="table-wrap" tabindex="0" role="region" aria-label="Experiments" {
            table class="list" id="experiments" {
                caption class="sr-only" { "Your experiments" }
                thead {
                    tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Visibility" }
                        th scope="col" { "Variants" }
                        th scope="col" class="num" { "Views" }
                        th scope="col" { "Best variant" }
                        th scope="col" { "Verdict" }
                    }
                }
                tbody {
                    @for e in found {
                        @let uuid = e.public_uuid();
                        @let views: u64 = e.variants.iter().map(|v| v.views).sum();
                        @let outcome = outcome(e);
                        tr data-uuid=(uuid) {
                            th scope="row" data-label="Name" { a href={ "/experiments/" (uuid) } { bdi { (e.name) } } }
                            td data-label="Visibility" { (visibility_badge(e.visibility)) }
                            td data-label="Variants" {
                                // One element: on phones the cell is a flex row of its label and this.
                                span class="names" {
                                    @if e.variants.is_empty() {
                                        span class="muted" { "none" }
                                    } @else {
                                        (e.variants.len()) ": "
                                        @for (i, v) in e.variants.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            bdi { (v.name) }
                                        }
                                    }
                                }
                            }
                            td data-label="Views" class="num" data-value=(views) { (count(views)) }
                            td data-label="Best variant" {
                                @match best_variant(e, &outcome) {
                                    Some((name, p)) => span class="names" { bdi { (name) } " " span class="muted" { "(" (probability(p)) " likely best)" } },
                                    None if e.variants.len() == 1 => span class="muted" { "one variant: nothing to compare" },
                                    None => span class="muted" { "no data yet" },
                                }
                            }
                            td data-label="Verdict" class="verdict" data-verdict=(outcome.verdict.as_str()) {
                                span class={ "badge verdict " (outcome.verdict.as_str()) } { (outcome.verdict.as_str()) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The link to the page of the same search starting at `skip`.
fn page_link(search: &Search<'_>, skip: usize) -> String {
    let mut query = String::new();
    if let Some(q) = search.q {
        let _ = write!(query, "q={}&", url_encode(q));
    }
    for v in &search.visibility {
        let _ = write!(query, "visibility={}&", url_encode(v));
    }
    if let Some(sort) = search.sort {
        let _ = write!(query, "sort={}&", url_encode(sort));
    }
    format!("/?{query}skip={skip}")
}

fn pager(search: &Search<'_>, skip: usize, shown: usize, matched: usize) -> Markup {
    let previous = skip > 0;
    let next = skip + shown < matched;
    html! {
        @if previous || next {
            nav class="pager" aria-label="Pages" {
                @if previous {
                    a href=(page_link(search, skip.saturating_sub(PAGE_SIZE))) { "Previous page" }
                }
                span class="muted" {
                    @if shown > 0 {
                        (count((skip + 1) as u64)) "–" (count((skip + shown) as u64))
                    } @else {
                        "None"
                    }
                    " of " (count(matched as u64))
                }
                @if next {
                    a href=(page_link(search, skip + PAGE_SIZE)) { "Next page" }
                }
            }
        }
    }
}
