//! Search: the `q`, `visibility`, `sort`, `limit`, `skip` parameters and the
//! filtering and ordering they ask for.

use std::borrow::Cow;

use crate::model::{Access, Experiment, Visibility};
use crate::problem::{Code, Message, Problem};

/// The parameters of a search.
pub const SEARCH_PARAMS: [&str; 5] = ["q", "visibility", "sort", "limit", "skip"];

/// Most results one search answers.
pub const MAX_LIMIT: usize = 1000;
/// Results answered when `limit` is absent.
pub const DEFAULT_LIMIT: usize = 25;

/// The order of search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// By uuid, ascending.
    UuidAsc,
    /// By uuid, descending.
    UuidDesc,
    /// By name (case and accents folded: [`folded`]), ascending; ties by uuid.
    NameAsc,
    /// By name (case and accents folded), descending; ties by uuid.
    NameDesc,
}

impl Sort {
    fn parse(text: &str) -> Option<Sort> {
        match text {
            "uuid-asc" => Some(Sort::UuidAsc),
            "uuid-desc" => Some(Sort::UuidDesc),
            "name-asc" => Some(Sort::NameAsc),
            "name-desc" => Some(Sort::NameDesc),
            _ => None,
        }
    }
}

/// A validated search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// Case-insensitive text found in the name or the id (the one pages
    /// use), or the exact uuid.
    pub q: Option<String>,
    /// Visibilities to include (default: published).
    pub visibility: Vec<Visibility>,
    /// Result order (default: name ascending).
    pub sort: Sort,
    /// At most this many results.
    pub limit: usize,
    /// Skip this many matches first.
    pub skip: usize,
}

impl Default for SearchQuery {
    fn default() -> Self {
        SearchQuery {
            q: None,
            visibility: vec![Visibility::Published],
            sort: Sort::NameAsc,
            limit: DEFAULT_LIMIT,
            skip: 0,
        }
    }
}

/// Parses the search parameters; `param` looks one up by name.
pub fn parse_search<'a>(param: impl Fn(&str) -> Option<&'a str>) -> Result<SearchQuery, Problem> {
    let mut query = SearchQuery::default();
    let mut problems = Vec::new();
    query.q = param("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    if let Some(text) = param("visibility") {
        let parsed: Option<Vec<_>> = text
            .split(',')
            .map(|v| Visibility::parse(v.trim()))
            .collect();
        match parsed {
            Some(list) if !list.is_empty() => query.visibility = list,
            _ => problems.push(Message::at(
                Code::InvalidValue,
                "visibility",
                "`visibility` must be a comma-separated list of draft, published, archived.",
            )),
        }
    }
    if let Some(text) = param("sort") {
        match Sort::parse(text.trim()) {
            Some(sort) => query.sort = sort,
            None => problems.push(Message::at(
                Code::InvalidValue,
                "sort",
                "`sort` must be uuid-asc, uuid-desc, name-asc or name-desc.",
            )),
        }
    }
    if let Some(text) = param("limit") {
        match text.trim().parse::<usize>() {
            Ok(limit) if limit <= MAX_LIMIT => query.limit = limit,
            _ => problems.push(Message::at(
                Code::InvalidValue,
                "limit",
                format!("`limit` must be an integer from 0 to {MAX_LIMIT}."),
            )),
        }
    }
    if let Some(text) = param("skip") {
        match text.trim().parse::<usize>() {
            Ok(skip) => query.skip = skip,
            Err(_) => problems.push(Message::at(
                Code::InvalidValue,
                "skip",
                "`skip` must be a non-negative integer.",
            )),
        }
    }
    if problems.is_empty() {
        Ok(query)
    } else {
        Err(Problem::many(problems))
    }
}

impl SearchQuery {
    /// Filters, orders and pages `experiments` as asked (an API key only
    /// ever finds published experiments). `q` is folded once per search and
    /// each name at most once; an experiment whose name and id are too short
    /// to hold `q` is passed over without reading them.
    pub fn apply<'e>(
        &self,
        experiments: impl IntoIterator<Item = &'e Experiment>,
        access: Access,
    ) -> Vec<&'e Experiment> {
        self.apply_named(experiments.into_iter().map(|e| (e, None)), access)
    }

    /// [`SearchQuery::apply`] to experiments given with their [`folded`]
    /// names where the caller keeps them (each is then not folded again).
    pub fn apply_named<'e>(
        &self,
        experiments: impl IntoIterator<Item = (&'e Experiment, Option<&'e str>)>,
        access: Access,
    ) -> Vec<&'e Experiment> {
        self.page_of(experiments, access).0
    }

    /// [`SearchQuery::apply`], with how many experiments match in all (the
    /// page holds those from `skip`, at most `limit`): for a pager.
    pub fn apply_counted<'e>(
        &self,
        experiments: impl IntoIterator<Item = &'e Experiment>,
        access: Access,
    ) -> (Vec<&'e Experiment>, usize) {
        self.page_of(experiments.into_iter().map(|e| (e, None)), access)
    }

    /// The page and the number of matches.
    fn page_of<'e>(
        &self,
        experiments: impl IntoIterator<Item = (&'e Experiment, Option<&'e str>)>,
        access: Access,
    ) -> (Vec<&'e Experiment>, usize) {
        let needle = self.q.as_deref().map(Needle::new);
        let by_name = matches!(self.sort, Sort::NameAsc | Sort::NameDesc);
        let mut found: Vec<Found<'e>> = experiments
            .into_iter()
            .filter(|(e, _)| {
                access.may_see(e.visibility) && self.visibility.contains(&e.visibility)
            })
            .filter_map(|(experiment, kept)| {
                let mut name = kept.map(Cow::Borrowed);
                if let Some(needle) = &needle
                    && !needle.finds(experiment, &mut name)
                {
                    return None;
                }
                if by_name && name.is_none() {
                    name = Some(Cow::Owned(folded(&experiment.name)));
                }
                Some(Found { name, experiment })
            })
            .collect();
        let matched = found.len();
        // A total order (ties by uuid): only the `skip + limit` first are
        // sorted, once selected from the rest in linear time.
        let order = |a: &Found<'e>, b: &Found<'e>| match self.sort {
            Sort::UuidAsc => a.experiment.public_uuid().cmp(&b.experiment.public_uuid()),
            Sort::UuidDesc => b.experiment.public_uuid().cmp(&a.experiment.public_uuid()),
            Sort::NameAsc => a.name_order().cmp(&b.name_order()),
            Sort::NameDesc => b.name_order().cmp(&a.name_order()),
        };
        let wanted = self.skip.saturating_add(self.limit);
        if wanted == 0 {
            found.clear();
        } else if wanted < found.len() {
            found.select_nth_unstable_by(wanted - 1, order);
            found.truncate(wanted);
        }
        found.sort_unstable_by(order);
        let page = found
            .into_iter()
            .skip(self.skip)
            .take(self.limit)
            .map(|f| f.experiment)
            .collect();
        (page, matched)
    }
}

/// An experiment a search found, with its folded name when it was needed.
struct Found<'e> {
    name: Option<Cow<'e, str>>,
    experiment: &'e Experiment,
}

impl Found<'_> {
    fn name_order(&self) -> (&str, uuid::Uuid) {
        (
            self.name.as_deref().unwrap_or_default(),
            self.experiment.public_uuid(),
        )
    }
}

/// Most bytes [`folded`] makes of one byte of text (U+FDFA, 3 bytes, folds
/// to 33), so a name of `n` bytes cannot hold a folded `q` longer than
/// `n * MAX_FOLD_GROWTH` bytes.
const MAX_FOLD_GROWTH: usize = 11;

/// The `q` of a search, folded once: what each experiment is compared with.
struct Needle {
    folded: String,
    /// `q` is an experiment's public uuid as answers write it.
    uuid: Option<uuid::Uuid>,
}

impl Needle {
    fn new(q: &str) -> Needle {
        let folded = folded(q);
        let uuid = uuid::Uuid::try_parse(&folded)
            .ok()
            .filter(|u| u.to_string() == folded);
        Needle { folded, uuid }
    }

    /// Whether `experiment` is found: `q` in its folded name (`name` when
    /// given) or its lower case id, or its exact uuid. Leaves the folded
    /// name in `name` when it was computed.
    fn finds<'e>(&self, experiment: &Experiment, name: &mut Option<Cow<'e, str>>) -> bool {
        let q = self.folded.as_str();
        if self.uuid == Some(experiment.public_uuid()) {
            return true;
        }
        if q.len() <= experiment.id.len() && experiment.id.to_ascii_lowercase().contains(q) {
            return true;
        }
        if name.is_none() && q.len() > experiment.name.len().saturating_mul(MAX_FOLD_GROWTH) {
            return false;
        }
        let folded_name = name.get_or_insert_with(|| Cow::Owned(folded(&experiment.name)));
        q.len() <= folded_name.len() && folded_name.contains(q)
    }
}

/// A name as search and sort compare it: accents and case folded
/// (`Été` as `ete`, `Straße` as `strasse`), by compatibility decomposition
/// with the combining marks dropped, then full lower case.
pub fn folded(text: &str) -> String {
    #[cfg(test)]
    tests::FOLDS.with(|folds| folds.set(folds.get() + 1));
    if text.is_ascii() {
        // ASCII has no decompositions nor combining marks: only the case
        // folds (most names; a search sorts every name of the account).
        return text.to_ascii_lowercase();
    }
    folded_unicode(text)
}

/// [`folded`] of any text, the long way.
fn folded_unicode(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    let lower = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase();
    let mut out = String::with_capacity(lower.len());
    for c in lower.chars() {
        // Latin letters with no decomposition, as their readers type them.
        match c {
            'ß' => out.push_str("ss"),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'þ' => out.push_str("th"),
            'ø' => out.push('o'),
            'ł' => out.push('l'),
            'đ' | 'ð' => out.push('d'),
            'ħ' => out.push('h'),
            'ı' => out.push('i'),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::empty_object;
    use std::cell::Cell;
    use uuid::Uuid;

    thread_local! {
        /// How many times this thread called [`folded`].
        pub(super) static FOLDS: Cell<usize> = const { Cell::new(0) };
    }

    /// Calls of [`folded`] while `run` runs.
    fn folds_during(run: impl FnOnce()) -> usize {
        let before = FOLDS.with(Cell::get);
        run();
        FOLDS.with(Cell::get) - before
    }

    fn exp(n: u128, name: &str, visibility: Visibility) -> Experiment {
        Experiment {
            uuid: Uuid::from_u128(n),
            alias: None,
            id: name.into(),
            account_id: Uuid::from_u128(99),
            name: name.into(),
            visibility,
            settings: empty_object(),
            variants: vec![],
        }
    }

    fn query(pairs: &[(&str, &str)]) -> Result<SearchQuery, Problem> {
        let pairs = pairs.to_vec();
        parse_search(move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
    }

    #[test]
    fn filters_sorts_and_pages() {
        let all = [
            exp(1, "beta", Visibility::Published),
            exp(2, "Alpha", Visibility::Published),
            exp(3, "alpha draft", Visibility::Draft),
            exp(4, "gamma", Visibility::Archived),
        ];
        let names = |q: &SearchQuery, access| {
            q.apply(&all, access)
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>()
        };
        let default = query(&[]).unwrap_or_default();
        assert_eq!(names(&default, Access::Complete), ["Alpha", "beta"]);
        let drafts =
            query(&[("visibility", "draft,published"), ("q", "ALPHA")]).unwrap_or_default();
        assert_eq!(names(&drafts, Access::Complete), ["Alpha", "alpha draft"]);
        assert_eq!(names(&drafts, Access::Summary), ["Alpha"]);
        let paged = query(&[
            ("visibility", "draft,published,archived"),
            ("sort", "uuid-desc"),
            ("limit", "2"),
            ("skip", "1"),
        ])
        .unwrap_or_default();
        assert_eq!(names(&paged, Access::Complete), ["alpha draft", "Alpha"]);
    }

    /// Each page is the slice of the whole order it names, in every sort,
    /// with names that tie (ordered by uuid), whatever skip and limit: only
    /// the first `skip + limit` are sorted.
    #[test]
    fn pages_are_slices_of_the_whole_order() {
        let all: Vec<Experiment> = (0..40u128)
            .map(|n| {
                let name = ["b", "A", "a", "Été", "ete", "z"][(n * 7 % 6) as usize];
                exp(
                    (n * 7919) % 101,
                    &format!("{name} {}", n % 3),
                    Visibility::Published,
                )
            })
            .collect();
        let order = |sort: &str, skip: usize, limit: usize| {
            let pairs = [
                ("sort", sort.to_owned()),
                ("skip", skip.to_string()),
                ("limit", limit.to_string()),
            ];
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            query(&pairs)
                .unwrap_or_default()
                .apply(&all, Access::Complete)
                .iter()
                .map(|e| e.uuid)
                .collect::<Vec<_>>()
        };
        for sort in ["uuid-asc", "uuid-desc", "name-asc", "name-desc"] {
            let whole = order(sort, 0, 100);
            assert_eq!(whole.len(), all.len());
            for skip in 0..=41 {
                for limit in 1..=5 {
                    let end = (skip + limit).min(whole.len());
                    let want = whole.get(skip..end).unwrap_or_default();
                    assert_eq!(order(sort, skip, limit), want, "{sort} {skip} {limit}");
                }
            }
        }
    }

    /// The count of matches is every experiment the filters keep, whatever
    /// page is asked (a pager's "of N"), and 0 past the last.
    #[test]
    fn matches_are_counted_whatever_the_page() {
        let all: Vec<Experiment> = (0..30u128)
            .map(|n| {
                let visibility = [Visibility::Published, Visibility::Draft][(n % 2) as usize];
                exp(
                    n,
                    &format!("{} {n}", ["red", "blue", "green"][(n % 3) as usize]),
                    visibility,
                )
            })
            .collect();
        for (pairs, want) in [
            (vec![], 15),
            (vec![("visibility", "draft,published")], 30),
            (vec![("q", "red")], 5),
            (vec![("q", "red"), ("visibility", "draft,published")], 10),
            (vec![("q", "nothing")], 0),
        ] {
            for skip in ["0", "3", "29", "100"] {
                for limit in ["0", "1", "25"] {
                    let mut asked = pairs.clone();
                    asked.extend([("skip", skip), ("limit", limit)]);
                    let q = query(&asked).unwrap_or_default();
                    let (page, matched) = q.apply_counted(&all, Access::Complete);
                    assert_eq!(matched, want, "{asked:?}");
                    assert_eq!(page, q.apply(&all, Access::Complete), "{asked:?}");
                }
            }
        }
        let drafts = query(&[("visibility", "draft")]).unwrap_or_default();
        assert_eq!(drafts.apply_counted(&all, Access::Summary).1, 0);
    }

    /// ASCII text takes a short way: the same as the long one, every
    /// character and a few names.
    #[test]
    fn ascii_folds_as_any_text_does() {
        let every: String = (0u8..128).map(char::from).collect();
        for text in [every.as_str(), "Hero BANNER 2", "a-B_c.D", ""] {
            assert_eq!(folded(text), folded_unicode(text), "{text:?}");
        }
        assert_eq!(folded("Été"), "ete");
        // Letters without a decomposition, as their readers type them.
        assert_eq!(
            folded("Æsir Ørsted Łódź Œuvre Þór Straße"),
            "aesir orsted lodz oeuvre thor strasse"
        );
    }

    #[test]
    fn names_sort_and_match_with_accents_and_case_folded() {
        let all = [
            exp(1, "Widgets headline", Visibility::Published),
            exp(2, "Été campaign Straße", Visibility::Published),
            exp(3, "Edit test", Visibility::Published),
            exp(4, "apple", Visibility::Published),
        ];
        let names = |pairs: &[(&str, &str)]| {
            query(pairs)
                .unwrap_or_default()
                .apply(&all, Access::Complete)
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&[]),
            [
                "apple",
                "Edit test",
                "Été campaign Straße",
                "Widgets headline"
            ]
        );
        assert_eq!(
            names(&[("q", "ete campaign strasse")]),
            ["Été campaign Straße"]
        );
        assert_eq!(names(&[("q", "ÉTÉ")]), ["Été campaign Straße"]);
        assert_eq!(
            names(&[("sort", "name-desc")]),
            [
                "Widgets headline",
                "Été campaign Straße",
                "Edit test",
                "apple"
            ]
        );
    }

    #[test]
    fn q_finds_the_id_pages_use() {
        let mut renamed = exp(1, "Blue button", Visibility::Published);
        renamed.id = "Checkout-CTA".into();
        let all = [renamed, exp(2, "checkout page", Visibility::Published)];
        let found = |q: &str| {
            query(&[("q", q)])
                .unwrap_or_default()
                .apply(&all, Access::Summary)
                .iter()
                .map(|e| e.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(found("checkout-cta"), ["Blue button"]);
        assert_eq!(found("CHECKOUT"), ["Blue button", "checkout page"]);
    }

    #[test]
    fn bad_parameters_are_named() {
        let problem = query(&[
            ("visibility", "live"),
            ("sort", "x"),
            ("limit", "-1"),
            ("skip", "a"),
        ])
        .err()
        .unwrap_or_else(Problem::internal);
        let paths: Vec<_> = problem
            .messages
            .iter()
            .filter_map(|m| m.path.clone())
            .collect();
        assert_eq!(paths, ["visibility", "sort", "limit", "skip"]);
    }

    #[test]
    fn q_is_folded_once_and_names_at_most_once_per_search() {
        let all: Vec<_> = (0..200)
            .map(|n| exp(n, &format!("Experiment {n}"), Visibility::Published))
            .collect();
        let mut found = 0;
        let folds = folds_during(|| {
            found = query(&[("q", "ÉXPERIMENT 1"), ("limit", "1000")])
                .unwrap_or_default()
                .apply(&all, Access::Summary)
                .len();
        });
        assert_eq!(found, 111, "1, 10 to 19, 100 to 199");
        assert_eq!(
            folds,
            1 + all.len(),
            "q once, each name once (sort included)"
        );

        let long_q = "z".repeat(7900);
        let folds = folds_during(|| {
            found = query(&[("q", long_q.as_str()), ("limit", "1000")])
                .unwrap_or_default()
                .apply(&all, Access::Summary)
                .len();
        });
        assert_eq!(found, 0);
        assert_eq!(folds, 1, "a q no name can hold reads no name");
    }

    #[test]
    fn no_character_folds_to_more_than_max_fold_growth_bytes_a_byte() {
        let worst = (0..=0x10_FFFF)
            .filter_map(char::from_u32)
            .map(|c| {
                let text = c.to_string();
                (folded(&text).len().div_ceil(text.len()), c)
            })
            .max()
            .unwrap_or_default();
        assert_eq!(worst, (MAX_FOLD_GROWTH, '\u{FDFA}'));
    }
}
