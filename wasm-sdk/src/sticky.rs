//! The original Myna client's decision rules, per visitor and experiment:
//! `suggest` is sticky, one view per suggestion, one reward per view. Pure
//! logic, tested natively; the client keeps the state in localStorage
//! ([`crate::claims`], in [`crate::stored`]'s form).
//!
//! The promises hold across the tabs of one visitor through *claims*. The
//! state every tab shares keeps the visitor's last few views, each with its
//! place in the visitor's sequence of views (`seq`), a random token and the
//! id of the reward claimed for it. Each queued event carries the claim it
//! made (a view: its seq and token; a reward: also its id). Tabs acting at
//! the same moment each write their claim, and the shared state settles on
//! one of them (the last write wins); so when a batch is sealed, later
//! (before it is sent, beaconed or handed to another tab), an event whose
//! claim lost is dropped: of ten tabs that drew a variant at once, or
//! rewarded one view at once, exactly one is counted. Only an event whose
//! loss is certain is dropped (its seq is held by another token, or its
//! view's reward by another id); a view too old to be remembered is kept.
//! A view the page made itself (`view`, not a draw of `suggest`) is never
//! dropped for another tab's view at its seq: tabs viewing at the same
//! time each showed their variant, and each view (and its one reward)
//! counts.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
/// Views remembered per visitor and experiment (the newest).
pub(crate) const KEPT: usize = 8;

/// One view of the visitor's, as the tabs share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Its place in the visitor's views of the experiment (from 1).
    pub(crate) seq: u32,
    /// A random token naming it (tabs that view at once draw different ones).
    pub(crate) token: u64,
    /// The id of the reward claimed for it, 0 when none.
    pub(crate) reward: u64,
    /// Shown by the page's own `view` call, not drawn by `suggest`: its
    /// events are kept whatever view holds its seq (see [`keeps`]).
    pub(crate) shown: bool,
}

/// What a queued event claims: the view it is or rewards, and (a reward)
/// its own id. `seq` 0: no claim (an event queued before claims existed).
pub(crate) type Claim = Entry;

/// What this visitor last saw of one experiment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sticky {
    /// The variant shown last (by `suggest` or `view`), if any.
    pub(crate) variant: Option<String>,
    /// Whether that view was rewarded already.
    pub(crate) rewarded: bool,
    /// The last views, oldest first (at most [`KEPT`]).
    pub(crate) views: Vec<Entry>,
}

/// The state after a new view of `variant` named `token` drawn by
/// `suggest`, and the claim its event carries: the next seq after the views
/// this tab knows of.
pub(crate) fn view(state: &Sticky, variant: &str, token: u64) -> (Sticky, Claim) {
    viewed(state, variant, token, false)
}

/// The state after a view of `variant` the page showed itself (`view`),
/// and its claim: as [`view`]'s, marked `shown`.
pub(crate) fn shown(state: &Sticky, variant: &str, token: u64) -> (Sticky, Claim) {
    viewed(state, variant, token, true)
}

fn viewed(state: &Sticky, variant: &str, token: u64, shown: bool) -> (Sticky, Claim) {
    let seq = state.views.last().map_or(1, |e| e.seq.saturating_add(1));
    let claim = Entry {
        seq,
        token,
        reward: 0,
        shown,
    };
    let mut views = state.views.clone();
    views.push(claim);
    let excess = views.len().saturating_sub(KEPT);
    views.drain(..excess);
    let next = Sticky {
        variant: Some(variant.to_owned()),
        rewarded: false,
        views,
    };
    (next, claim)
}

/// The state after a reward `reward` of the current view (the caller checked
/// [`reward`] said so), and its claim. A state from before claims (no views
/// remembered) gets an entry for its view, named `token`.
pub(crate) fn rewarded(state: &Sticky, reward: u64, token: u64) -> (Sticky, Claim) {
    let mut next = state.clone();
    if next.views.is_empty() {
        next.views.push(Entry {
            seq: 1,
            token,
            ..Entry::default()
        });
    }
    let mut claim = Entry::default();
    if let Some(last) = next.views.last_mut() {
        last.reward = reward;
        claim = *last;
    }
    next.rewarded = true;
    (next, claim)
}

/// Whether an event with `claim` is still the one counted, by the shared
/// `state` as it settled: false only when, for a reward, its view's reward
/// is held by another id, or when its view was drawn by `suggest` and its
/// seq is held by another token (another tab's draw at the same moment
/// won). A view the page showed itself is kept (with its reward) even when
/// another tab's view took its seq.
pub(crate) fn keeps(state: &Sticky, claim: &Claim) -> bool {
    if claim.seq == 0 {
        return true;
    }
    match state.views.iter().find(|e| e.token == claim.token) {
        Some(e) => claim.reward == 0 || e.reward == 0 || e.reward == claim.reward,
        None => claim.shown || state.views.iter().all(|e| e.seq != claim.seq),
    }
}

/// The state after `unstick`: nothing shown, the views remembered (so
/// claims of events still queued are judged as before).
pub(crate) fn unstuck(state: &Sticky) -> Sticky {
    Sticky {
        variant: None,
        rewarded: false,
        views: state.views.clone(),
    }
}

/// What `suggest` should do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Suggestion {
    /// Show this variant again; record nothing.
    Again(String),
    /// Show the variant at this index (chosen by weight) and record a view.
    Fresh(usize),
    /// The experiment has no variants.
    Nothing,
}

/// Decides a suggestion: the sticky variant while it still exists, otherwise
/// one drawn by weight with core's [`myna_core::weights::choose`] from the
/// uniform number `u`.
pub(crate) fn suggest(
    state: &Sticky,
    ids: &[impl AsRef<str>],
    weights: &[f64],
    u: f64,
) -> Suggestion {
    if let Some(v) = &state.variant
        && ids.iter().any(|id| id.as_ref() == v)
    {
        return Suggestion::Again(v.clone());
    }
    if ids.is_empty() {
        return Suggestion::Nothing;
    }
    Suggestion::Fresh(myna_core::weights::choose(weights, u).min(ids.len() - 1))
}

/// What `reward` should do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reward {
    /// Nothing was viewed: there is nothing to reward.
    NoView,
    /// The last view was rewarded already: record nothing.
    Already,
    /// Record a reward for this variant.
    Record(String),
}

/// Decides a reward from the visitor's state.
pub(crate) fn reward(state: &Sticky) -> Reward {
    match (&state.variant, state.rewarded) {
        (None, _) => Reward::NoView,
        (Some(_), true) => Reward::Already,
        (Some(v), false) => Reward::Record(v.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn first_suggestion_is_by_weight_then_sticky() {
        let ids = ["a", "b", "c"];
        let weights = [0.2, 0.5, 0.3];
        let fresh = suggest(&Sticky::default(), &ids, &weights, 0.3);
        assert_eq!(fresh, Suggestion::Fresh(1));
        assert_eq!(
            suggest(&Sticky::default(), &ids, &weights, 0.1),
            Suggestion::Fresh(0)
        );
        assert_eq!(
            suggest(&Sticky::default(), &ids, &weights, 0.95),
            Suggestion::Fresh(2)
        );
        let state = view(&Sticky::default(), "b", 7).0;
        for u in [0.0, 0.5, 0.99] {
            assert_eq!(
                suggest(&state, &ids, &weights, u),
                Suggestion::Again("b".into())
            );
        }
    }

    #[test]
    fn a_vanished_sticky_variant_is_chosen_afresh() {
        let state = view(&Sticky::default(), "gone", 7).0;
        assert_eq!(suggest(&state, &["a"], &[1.0], 0.7), Suggestion::Fresh(0));
        assert_eq!(
            suggest(&state, &[] as &[&str], &[], 0.7),
            Suggestion::Nothing
        );
    }

    #[test]
    fn one_reward_per_view() {
        assert_eq!(reward(&Sticky::default()), Reward::NoView);
        let (state, _) = view(&Sticky::default(), "a", 7);
        assert_eq!(reward(&state), Reward::Record("a".into()));
        let (state, _) = rewarded(&state, 99, 0);
        assert_eq!(reward(&state), Reward::Already);
        // A new view may be rewarded again.
        assert_eq!(reward(&view(&state, "a", 8).0), Reward::Record("a".into()));
    }

    #[test]
    fn views_follow_each_other_and_only_the_newest_are_remembered() {
        let mut state = Sticky::default();
        for token in 1..=20 {
            let (next, claim) = view(&state, "a", token);
            assert_eq!(claim.seq, token as u32);
            state = next;
        }
        assert_eq!(state.views.len(), KEPT);
        assert_eq!(state.views[0].seq, 13);
        // Claims of views no longer remembered are kept: nothing says they lost.
        assert!(keeps(
            &state,
            &Entry {
                seq: 2,
                token: 2,
                ..Entry::default()
            }
        ));
        assert!(keeps(
            &state,
            &Entry {
                seq: 20,
                token: 20,
                ..Entry::default()
            }
        ));
    }

    #[test]
    fn of_tabs_drawing_at_once_only_the_claim_the_state_settled_on_counts() {
        // Three tabs found no state and drew at once: each wrote its view;
        // the last write (tab c's) is what every tab reads afterwards.
        let empty = Sticky::default();
        let (_, a) = view(&empty, "x", 101);
        let (_, b) = view(&empty, "y", 102);
        let (settled, c) = view(&empty, "x", 103);
        assert!(!keeps(&settled, &a));
        assert!(!keeps(&settled, &b));
        assert!(keeps(&settled, &c));
        // A later view (by any tab that saw c's) leaves c counted.
        let (later, d) = view(&settled, "y", 104);
        assert!(keeps(&later, &c) && keeps(&later, &d) && !keeps(&later, &a));
        // Rewards of the views that lost go with them.
        let (_, ra) = rewarded(&view(&empty, "x", 101).0, 55, 0);
        assert!(!keeps(&later, &ra));
    }

    #[test]
    fn views_tabs_showed_at_once_all_count_with_their_rewards() {
        // Two tabs each showed a variant by `view` at the same moment: both
        // took seq 2 after the visitor's first view; tab b wrote last.
        let (first, _) = view(&Sticky::default(), "x", 1);
        let (_, a) = shown(&first, "x", 11);
        let (settled, b) = shown(&first, "y", 12);
        assert_eq!((a.seq, b.seq), (2, 2));
        assert!(keeps(&settled, &a) && keeps(&settled, &b));
        // Each tab's reward of its own view counts too, once.
        let (_, ra) = rewarded(&shown(&first, "x", 11).0, 21, 0);
        let (settled, rb) = rewarded(&settled, 22, 0);
        assert!(ra.shown && keeps(&settled, &ra) && keeps(&settled, &rb));
        let (_, again) = rewarded(&shown(&first, "y", 12).0, 23, 0);
        assert!(!keeps(&settled, &again), "b's view was rewarded by 22");
        // A draw of `suggest` that lost its seq still goes.
        let (_, drawn) = view(&first, "x", 13);
        assert!(!keeps(&settled, &drawn));
    }

    #[test]
    fn of_tabs_rewarding_one_view_at_once_only_one_reward_counts() {
        let (shown, _) = view(&Sticky::default(), "x", 7);
        let claims: Vec<Claim> = (1..=10).map(|id| rewarded(&shown, id, 0).1).collect();
        // Tab 4 wrote last.
        let settled = rewarded(&shown, 4, 0).0;
        let kept: Vec<u64> = claims
            .iter()
            .filter(|c| keeps(&settled, c))
            .map(|c| c.reward)
            .collect();
        assert_eq!(kept, [4]);
        // A view written by a tab that had not seen the rewards yet keeps
        // them all undecided: each is kept (nothing says it lost)...
        assert!(keeps(&view(&shown, "y", 8).0, &claims[0]));
        // ...and a state from before claims gets an entry for its view.
        let legacy = Sticky {
            variant: Some("x".into()),
            rewarded: false,
            views: Vec::new(),
        };
        let (next, claim) = rewarded(&legacy, 9, 77);
        assert_eq!(
            claim,
            Entry {
                seq: 1,
                token: 77,
                reward: 9,
                shown: false
            }
        );
        assert!(keeps(&next, &claim));
    }
}
