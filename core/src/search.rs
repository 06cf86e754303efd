//! Search: the `q`, `visibility`, `sort`, `limit`, `skip` parameters and the
//! filtering and ordering they ask for.

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
    /// Whether `experiment` matches the text and visibility filters for `access`
    /// (an API key only ever matches published experiments).
    pub fn matches(&self, experiment: &Experiment, access: Access) -> bool {
        access.may_see(experiment.visibility)
            && self.visibility.contains(&experiment.visibility)
            && self.q.as_deref().is_none_or(|q| {
                let q = folded(q);
                experiment.public_uuid().to_string() == q
                    || folded(&experiment.name).contains(&q)
                    || experiment.id.to_ascii_lowercase().contains(&q)
            })
    }

    /// Filters, orders and pages `experiments` as asked.
    pub fn apply<'e>(
        &self,
        experiments: impl IntoIterator<Item = &'e Experiment>,
        access: Access,
    ) -> Vec<&'e Experiment> {
        let mut found: Vec<&Experiment> = experiments
            .into_iter()
            .filter(|e| self.matches(e, access))
            .collect();
        let by_name = |e: &&Experiment| (folded(&e.name), e.public_uuid());
        match self.sort {
            Sort::UuidAsc => found.sort_by_key(|e| e.public_uuid()),
            Sort::UuidDesc => found.sort_by_key(|e| std::cmp::Reverse(e.public_uuid())),
            Sort::NameAsc => found.sort_by_cached_key(by_name),
            Sort::NameDesc => found.sort_by_cached_key(|e| std::cmp::Reverse(by_name(e))),
        }
        found.into_iter().skip(self.skip).take(self.limit).collect()
    }
}

/// A name as search and sort compare it: accents and case folded
/// (`Été` as `ete`, `Straße` as `strasse`), by compatibility decomposition
/// with the combining marks dropped, then full lower case.
pub fn folded(text: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
        .replace('ß', "ss")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::empty_object;
    use uuid::Uuid;

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
}
