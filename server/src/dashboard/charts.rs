//! The experiment page's charts, rendered on the server as SVG (no script):
//! each variant's weight and conversion rate over time, from the hourly
//! totals. At each hour the counts are the cumulative ones up to and
//! including that hour; the weight is core's `weights` of those counts and
//! the rate their cumulative reward over cumulative views.

use maud::{Markup, html};
use myna_core::Experiment;
use myna_core::weights::{Arm, WeightsConfig, weights};

use super::html::time;
use crate::storage::HourTotals;

/// Most points a line gets: longer histories are sampled evenly (the last
/// hour always kept), so a page stays quick whatever the experiment's age.
const MAX_POINTS: usize = 240;

/// Line colours (Okabe–Ito, distinguishable with colour-blindness; its
/// purple, orange and sky blue darkened to 3:1 against the page, WCAG
/// 1.4.11; ordered so that alike colours, blue and sky blue, orange and
/// vermilion, never share a dash in the first two rounds), each line also
/// dashed differently.
pub const COLORS: [&str; 7] = [
    "#0072b2", "#d55e00", "#009e73", "#b07d00", "#c06a9b", "#000000", "#2b8cc4",
];
const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

/// The colour of the variant at `index`.
pub fn color(index: usize) -> &'static str {
    COLORS[index % COLORS.len()]
}

fn dash(index: usize) -> &'static str {
    // Over the colours' first rounds, the dash moves on by one a round: no
    // two of the first 28 lines alike, and neighbours always differ.
    DASHES[(index % COLORS.len() + index / COLORS.len()) % DASHES.len()]
}

/// Cumulative series for every variant of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The hours (epoch milliseconds of their start), ascending.
    pub hours: Vec<i64>,
    /// Per variant (experiment order): the weight at each hour.
    pub weights: Vec<Vec<f64>>,
    /// Per variant: the conversion rate at each hour (`None` before any view).
    pub rates: Vec<Vec<Option<f64>>>,
    /// Per variant: the views the rate at each hour is of.
    pub views: Vec<Vec<u64>>,
}

/// The history of `experiment` from its hourly totals.
pub fn history(experiment: &Experiment, hourly: &[HourTotals], config: &WeightsConfig) -> History {
    let mut hours: Vec<i64> = hourly.iter().map(|h| h.hour_ms).collect();
    hours.sort_unstable();
    hours.dedup();
    let k = experiment.variants.len();
    // Per hour, per variant: that hour's views and reward.
    let mut per_hour = vec![vec![(0u64, 0.0f64); k]; hours.len()];
    for h in hourly {
        let Some(v) = experiment.variants.iter().position(|v| v.id == h.variant) else {
            continue;
        };
        if let Ok(i) = hours.binary_search(&h.hour_ms) {
            per_hour[i][v].0 += h.views;
            per_hour[i][v].1 += h.total_reward;
        }
    }
    let keep = sample(hours.len());
    let mut out = History {
        hours: Vec::with_capacity(keep.len()),
        weights: vec![Vec::with_capacity(keep.len()); k],
        rates: vec![Vec::with_capacity(keep.len()); k],
        views: vec![Vec::with_capacity(keep.len()); k],
    };
    let mut arms = vec![Arm::default(); k];
    // The experiment's own weights mode (`myna.weights.mode`).
    let config = config.for_settings(&experiment.settings).0;
    let mut next = keep.iter().peekable();
    for (i, hour) in per_hour.iter().enumerate() {
        for (arm, &(views, reward)) in arms.iter_mut().zip(hour) {
            arm.views = arm.views.saturating_add(views);
            arm.total_reward += reward;
        }
        if next.peek() != Some(&&i) {
            continue;
        }
        next.next();
        out.hours.push(hours[i]);
        for (v, w) in weights(&arms, &config).into_iter().enumerate() {
            out.weights[v].push(w);
        }
        for (v, arm) in arms.iter().enumerate() {
            out.views[v].push(arm.views);
            out.rates[v].push(myna_core::stats::conversion_rate(
                arm.views,
                arm.total_reward,
            ));
        }
    }
    out
}

/// Views a cumulative rate needs before it counts toward the rate chart's
/// scale: the first few views' rates (one view, one reward: 100 %) would
/// squash the rest of the chart into its bottom.
const SETTLED_VIEWS: u64 = 100;

/// The top of the rate chart's y axis: a round bound above the rates of
/// at least [`SETTLED_VIEWS`] views and every variant's latest rate, so
/// that the early spikes of a few views run off the top of the chart
/// (clipped there; the table below it has them) rather than hiding where
/// the rates settle.
pub fn rate_axis_max(history: &History) -> f64 {
    let mut top = 0.0_f64;
    for (rates, views) in history.rates.iter().zip(&history.views) {
        let settled = rates
            .iter()
            .zip(views)
            .filter(|(_, views)| **views >= SETTLED_VIEWS)
            .filter_map(|(rate, _)| *rate);
        let latest = rates.iter().rev().find_map(|r| *r);
        top = settled.chain(latest).fold(top, f64::max);
    }
    nice_max(top * 1.1)
}

/// Indices of at most [`MAX_POINTS`] of `n` hours, evenly spread, the last kept.
fn sample(n: usize) -> Vec<usize> {
    if n <= MAX_POINTS {
        return (0..n).collect();
    }
    let mut out: Vec<usize> = (0..MAX_POINTS)
        .map(|i| i * (n - 1) / (MAX_POINTS - 1))
        .collect();
    out.dedup();
    out
}

/// One line of a chart.
pub struct Line<'a> {
    /// The variant's name.
    pub label: &'a str,
    /// Its index (colour and dash).
    pub index: usize,
    /// A value per hour, `None` where there is none.
    pub values: Vec<Option<f64>>,
}

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 280.0;
/// The least room for the y labels (`18.75%`, `0.025%`: about 50 px at
/// 13 px in a wide sans font) and [`TICK_GAP`]; wider ones get more.
const LEFT: f64 = 60.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 34.0;
/// The space between a y label's end and the plot.
const TICK_GAP: f64 = 6.0;

/// A round upper bound for a y axis showing values up to `max` (for rates).
pub fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    for step in [
        1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 0.001, 0.002, 0.005, 0.01, 0.02,
        0.05, 0.1, 0.2, 0.25, 0.5, 1.0,
    ] {
        if max <= step {
            return step;
        }
    }
    1.0
}

/// The `stroke-dasharray` of the line at `index`, if it is dashed.
fn dash_array(index: usize) -> Option<&'static str> {
    Some(dash(index)).filter(|d| !d.is_empty())
}

/// A line chart (values in `[0, y_max]`, shown as percentages) of `lines`
/// over `hours`, with a title and description for assistive technology.
pub fn line_chart(
    id: &str,
    title: &str,
    description: &str,
    hours: &[i64],
    lines: &[Line<'_>],
    y_max: f64,
) -> Markup {
    let ticks = y_ticks(y_max);
    let left = left_of(&ticks);
    let plot_w = WIDTH - left - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |v: f64| TOP + plot_h * (1.0 - (v / y_max).clamp(0.0, 1.0));
    let (first, last) = (
        hours.first().copied().unwrap_or(0),
        hours.last().copied().unwrap_or(0),
    );
    let span = (last - first).max(1) as f64;
    let x = |h: i64| {
        if hours.len() <= 1 {
            left + plot_w / 2.0
        } else {
            left + plot_w * (h - first) as f64 / span
        }
    };
    let px = |v: f64| format!("{v:.1}");
    // X labels: first and last hour (one in the middle when they are one).
    let base = HEIGHT - BOTTOM + 18.0;
    html! {
        svg class="chart" viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img"
            aria-labelledby={ (id) "-t " (id) "-d" } preserveAspectRatio="xMidYMid meet" {
            title id={ (id) "-t" } { (title) }
            desc id={ (id) "-d" } { (description) }
            // Grid lines and y labels: five steps.
            @for (v, label) in &ticks {
                @let yy = y(*v);
                line x1=(left) x2=(WIDTH - RIGHT) y1=(px(yy)) y2=(px(yy)) stroke="#d8dee9" stroke-width="1" {}
                text x=(left - TICK_GAP) y=(px(yy + 4.0)) text-anchor="end" font-size="13" fill="#4b5563" { (label) }
            }
            @if let (Some(&a), Some(&b)) = (hours.first(), hours.last()) {
                @if a == b {
                    text x=(px(x(a))) y=(base) text-anchor="middle" font-size="13" fill="#4b5563" { (time(a)) }
                } @else {
                    text x=(left) y=(base) text-anchor="start" font-size="13" fill="#4b5563" { (time(a)) }
                    text x=(WIDTH - RIGHT) y=(base) text-anchor="end" font-size="13" fill="#4b5563" { (time(b)) }
                }
            }
            @for line in lines {
                g {
                    title { (line.label) }
                    @for run in runs(hours, &line.values, &x, &y) {
                        @if let [(cx, cy)] = run[..] {
                            circle cx=(px(cx)) cy=(px(cy)) r="4" fill=(color(line.index)) {}
                        } @else {
                            polyline points=(points(&run)) fill="none" stroke=(color(line.index)) stroke-width="2.5"
                                stroke-linejoin="round" stroke-linecap="round" stroke-dasharray=[dash_array(line.index)] {}
                        }
                    }
                }
            }
        }
    }
}

/// A line's points: consecutive defined values form one run (a polyline;
/// a lone point is a dot).
fn runs(
    hours: &[i64],
    values: &[Option<f64>],
    x: &dyn Fn(i64) -> f64,
    y: &dyn Fn(f64) -> f64,
) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (h, v) in hours.iter().zip(values) {
        match v {
            Some(v) => {
                if let Some(run) = runs.last_mut() {
                    run.push((x(*h), y(*v)));
                }
            }
            None => runs.push(Vec::new()),
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// A polyline's `points`.
fn points(run: &[(f64, f64)]) -> String {
    let points: Vec<String> = run.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
    points.join(" ")
}

/// The y axis's ticks, top to bottom: each value and its label.
fn y_ticks(y_max: f64) -> Vec<(f64, String)> {
    (0..=4)
        .rev()
        .map(|i| {
            let v = y_max * f64::from(i) / 4.0;
            (v, axis_percent(v))
        })
        .collect()
}

/// The plot's left edge: [`LEFT`], or more where the widest y label and
/// [`TICK_GAP`] need it (`0.000125%` on an axis for tiny rates).
fn left_of(ticks: &[(f64, String)]) -> f64 {
    ticks
        .iter()
        .map(|(_, label)| (label_width(label) + TICK_GAP + 2.0).ceil())
        .fold(LEFT, f64::max)
}

/// About how wide `label` is drawn at the charts' 13 px (advance widths of
/// a wide sans font, in its 2,048 units per em).
fn label_width(label: &str) -> f64 {
    let units: f64 = label
        .chars()
        .map(|c| match c {
            '.' => 651.0,
            '%' => 1946.0,
            _ => 1303.0,
        })
        .sum();
    units / 2048.0 * 13.0
}

/// A tick's percentage with as many decimals as it needs (`6.25%`, `50%`,
/// `0.025%`, `0.000125%`): six at most, which every tick of a [`nice_max`]
/// axis needs.
pub fn axis_percent(v: f64) -> String {
    let text = format!("{:.6}", v * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The small line that stands for the variant at `index`: its colour and
/// its dash, as its lines in the charts (the legend's, the results table's).
pub fn swatch(index: usize) -> Markup {
    html! {
        svg class="swatch" width="28" height="10" aria-hidden="true" focusable="false" data-i=(index) {
            line x1="1" y1="5" x2="27" y2="5" stroke=(color(index)) stroke-width="3"
                stroke-dasharray=[dash_array(index)] {}
        }
    }
}

/// The legend of a chart: a swatch and the name of each line.
pub fn legend(lines: &[Line<'_>]) -> Markup {
    html! {
        ul class="legend" {
            @for line in lines {
                li {
                    (swatch(line.index))
                    (line.label)
                }
            }
        }
    }
}

/// Fixtures the dashboard's page tests share.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use myna_core::model::empty_object;
    use myna_core::{Variant, Visibility};
    use proptest::prelude::*;
    use uuid::Uuid;

    /// One variant's totals of one hour (`hour` hours after the epoch).
    pub(crate) fn totals(variant: &str, hour: i64, views: u64, reward: f64) -> HourTotals {
        HourTotals {
            variant: variant.into(),
            hour_ms: hour * 3_600_000,
            views,
            total_reward: reward,
        }
    }

    /// A published experiment of variants `a` and `b`, no counts.
    pub(crate) fn two_variants() -> Experiment {
        Experiment {
            uuid: Uuid::from_u128(1),
            alias: None,
            id: "e".into(),
            account_id: Uuid::from_u128(2),
            name: "e".into(),
            visibility: Visibility::Published,
            settings: empty_object(),
            variants: vec![Variant::new("a"), Variant::new("b")],
        }
    }

    #[test]
    fn history_is_cumulative_and_ends_at_the_current_counts() {
        let mut experiment = two_variants();
        let hourly = [
            totals("a", 1, 10, 1.0),
            totals("a", 3, 10, 5.0),
            totals("b", 3, 20, 2.0),
            totals("gone", 2, 5, 5.0),
        ];
        let config = WeightsConfig::default();
        let h = history(&experiment, &hourly, &config);
        assert_eq!(h.hours, vec![3_600_000, 7_200_000, 10_800_000]);
        assert_eq!(h.rates[0], vec![Some(0.1), Some(0.1), Some(0.3)]);
        assert_eq!(h.rates[1], vec![None, None, Some(0.1)]);
        assert_eq!(h.views[0], vec![10, 10, 20]);
        experiment.variants[0].views = 20;
        experiment.variants[0].total_reward = 6.0;
        experiment.variants[1].views = 20;
        experiment.variants[1].total_reward = 2.0;
        let now = weights(&experiment.arms(), &config);
        assert_eq!(h.weights[0].last(), now.first());
        assert_eq!(h.weights[1].last(), now.get(1));
    }

    #[test]
    fn the_rate_axis_is_scaled_by_settled_rates_not_the_first_views() {
        let experiment = two_variants();
        // Hour 1: one view, one reward each (100 %); then 4 % and 6 %.
        let mut hourly = vec![totals("a", 1, 1, 1.0), totals("b", 1, 1, 1.0)];
        for hour in 2..50 {
            hourly.push(totals("a", hour, 50, 2.0));
            hourly.push(totals("b", hour, 50, 3.0));
        }
        let h = history(&experiment, &hourly, &WeightsConfig::default());
        assert_eq!(h.rates[0].first(), Some(&Some(1.0)));
        assert_eq!(rate_axis_max(&h), 0.1, "6 % settled: the axis ends at 10 %");
        // A young experiment (no rate of 100 views yet) is scaled by its
        // latest rates.
        let young = history(&experiment, &hourly[..4], &WeightsConfig::default());
        assert_eq!(young.rates[1].last(), Some(&Some(4.0 / 51.0)));
        assert_eq!(rate_axis_max(&young), 0.1);
    }

    /// The red, green and blue of a `#rrggbb` colour, from 0 to 255.
    fn rgb(hex: &str) -> [f64; 3] {
        assert!(hex.len() == 7 && hex[1..].bytes().all(|b| b.is_ascii_hexdigit()));
        [1, 3, 5].map(|i| f64::from(u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0)))
    }

    /// WCAG's contrast ratio of two `#rrggbb` colours.
    fn contrast(a: &str, b: &str) -> f64 {
        let luminance = |hex: &str| {
            let [r, g, b] = rgb(hex).map(|c| {
                let c = c / 255.0;
                if c <= 0.03928 {
                    c / 12.92
                } else {
                    ((c + 0.055) / 1.055).powf(2.4)
                }
            });
            0.2126 * r + 0.7152 * g + 0.0722 * b
        };
        let (x, y) = (luminance(a), luminance(b));
        (x.max(y) + 0.05) / (x.min(y) + 0.05)
    }

    #[test]
    fn every_line_colour_stands_out_from_the_card_and_the_page() {
        // dashboard.css: `--card: #fff`, `--bg: #f6f7fb`.
        for background in ["#ffffff", "#f6f7fb"] {
            for color in COLORS {
                let ratio = contrast(color, background);
                assert!(ratio >= 3.0, "{color} on {background}: {ratio:.2}:1");
            }
        }
    }

    #[test]
    fn lines_of_one_dash_differ_clearly_in_colour_over_two_rounds() {
        let rounds = 2 * COLORS.len();
        for i in 0..rounds {
            for j in i + 1..rounds {
                if dash(i) != dash(j) {
                    continue;
                }
                let (a, b) = (rgb(color(i)), rgb(color(j)));
                let distance = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| (x - y).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(
                    distance >= 80.0,
                    "lines {i} and {j}: {} and {}, both dashed {:?}",
                    color(i),
                    color(j),
                    dash(i)
                );
            }
        }
    }

    #[test]
    fn the_first_28_lines_differ_in_colour_or_dash() {
        let styles: std::collections::HashSet<_> = (0..COLORS.len() * DASHES.len())
            .map(|i| (color(i), dash(i)))
            .collect();
        assert_eq!(styles.len(), 28);
        assert!((1..100).all(|i| (color(i), dash(i)) != (color(i - 1), dash(i - 1))));
    }

    #[test]
    fn swatches_of_variants_a_colour_round_apart_differ() {
        // 0, 7, 14, 21: one colour, four dashes, as the chart lines.
        let drawn: std::collections::HashSet<String> = [0, 7, 14, 21]
            .map(|i| {
                swatch(i)
                    .into_string()
                    .replace(&format!("data-i=\"{i}\""), "")
            })
            .into_iter()
            .collect();
        assert_eq!(drawn.len(), 4, "{drawn:?}");
        assert!(swatch(7).into_string().contains("stroke-dasharray=\"6 3\""));
    }

    #[test]
    fn long_histories_are_sampled_keeping_the_ends() {
        let s = sample(10_000);
        assert!(s.len() <= MAX_POINTS);
        assert_eq!(s.first(), Some(&0));
        assert_eq!(s.last(), Some(&9_999));
        assert_eq!(sample(3), vec![0, 1, 2]);
    }

    #[test]
    fn axis_ticks_keep_the_decimals_they_need() {
        assert_eq!(axis_percent(0.0), "0%");
        assert_eq!(axis_percent(0.0625), "6.25%");
        assert_eq!(axis_percent(0.125), "12.5%");
        assert_eq!(axis_percent(0.5), "50%");
        assert_eq!(axis_percent(0.0005), "0.05%");
        assert_eq!(axis_percent(0.00025), "0.025%");
        assert_eq!(axis_percent(0.1875), "18.75%");
    }

    /// A label's width in pixels at the ticks' font size, from DejaVu Sans's
    /// advance widths (in units of 1/2048 em; the widest of the usual system
    /// sans fonts): digits 1303, `.` 651, `%` 1946.
    /// Best rates from 0 up, small ones as likely as large ones (every
    /// step of [`nice_max`] gets its share), and a few beyond 100 %.
    fn top_rates() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            (-7.0..0.0f64).prop_map(|e| 10f64.powf(e)),
            0.0..=2.0f64,
        ]
    }

    proptest! {
        /// Whatever the best rate, the rate chart's y labels read as an
        /// axis: from its top down to 0 % in equal steps, each label the
        /// value of its grid line, each fitting left of the plot.
        #[test]
        fn rate_axis_labels_read_back_as_their_grid_lines(top_rate in top_rates()) {
            let y_max = nice_max(top_rate * 1.1);
            let ticks = y_ticks(y_max);
            prop_assert_eq!(ticks.len(), 5);
            let read: Vec<f64> = ticks
                .iter()
                .map(|(_, label)| label.trim_end_matches('%').parse().unwrap_or(f64::NAN))
                .collect();
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * y_max * 100.0;
            prop_assert!(close(read[0], y_max * 100.0), "{ticks:?} starts at the top");
            prop_assert!(read[4] == 0.0, "{ticks:?} ends at 0");
            let step = read[0] / 4.0;
            for (i, (value, label)) in ticks.iter().enumerate() {
                let position = y_max * (4 - i) as f64 / 4.0;
                prop_assert!(close(*value, position), "{ticks:?}");
                prop_assert!(close(read[i], position * 100.0), "{label} is not {}%", position * 100.0);
                if i > 0 {
                    prop_assert!(read[i] < read[i - 1], "{ticks:?} decreases");
                    prop_assert!(close(read[i - 1] - read[i], step), "{ticks:?} in equal steps");
                }
                let (width, room) = (label_width(label), left_of(&ticks) - TICK_GAP);
                prop_assert!(width <= room, "{label} is {width} px wide, the room {room} px");
            }
        }
    }

    #[test]
    fn charts_escape_names_and_have_titles() {
        let lines = [Line {
            label: "<b>x</b>",
            index: 0,
            values: vec![Some(0.5), Some(0.7)],
        }];
        let svg =
            line_chart("c", "Weight <over> time", "d", &[0, 3_600_000], &lines, 1.0).into_string();
        assert!(svg.contains("<title id=\"c-t\">Weight &lt;over&gt; time</title>"));
        assert!(svg.contains("&lt;b&gt;x&lt;/b&gt;"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("<polyline"));
        assert_eq!(nice_max(0.13), 0.2);
        assert_eq!(nice_max(0.0), 1.0);
        // 3 rewards in 151,000 views: a rate of 0.002 % is not drawn on 0.
        assert_eq!(nice_max(3.0 / 151_000.0 * 1.1), 5e-5);
        assert_eq!(y_ticks(5e-5)[3].1, "0.00125%");
    }
}
