//! The visitor's states (one per experiment) as this client holds them:
//! read from storage once, then kept with this client's changes until
//! another tab changes storage or another client of this page writes;
//! written at the end of the task (at once while another client of the
//! page is open: [`crate::host::PageShare::crowded`]), to localStorage or,
//! when it is full, to a cookie of the same name (read back from there);
//! and read afresh when a batch is sealed, to judge the claims of its
//! events ([`crate::sticky::keeps`]). Pure over [`Host`], tested natively.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::host::Host;
use crate::sticky::{self, Claim, Sticky};
use crate::{storage, stored};

/// The visitor's states this tab holds, under one storage namespace.
pub(crate) struct Claims {
    ns: String,
    kept: Vec<Kept>,
    /// The page's count of state writes ([`crate::host::PageShare`]) when
    /// the kept states were last known to be storage's (`None`: never):
    /// behind, they are read afresh, so two clients of one page (two
    /// components that each connect) never draw one visitor twice.
    seen: Option<u32>,
    /// A state was read from, or written to, a cookie (storage was full):
    /// a later write to storage removes the cookie.
    cookie: bool,
    /// The variant this tab last showed of each experiment (what `suggest`
    /// gave or `view` showed here), which a reward here is for.
    shown: Vec<(String, String)>,
}

/// The visitor's state of one experiment as this tab holds it.
struct Kept {
    uuid: String,
    state: Sticky,
    /// Changed here, not written yet.
    dirty: bool,
}

impl Claims {
    /// No state read yet, under namespace `ns`.
    pub(crate) fn new(ns: &str) -> Claims {
        Claims {
            ns: ns.to_owned(),
            kept: Vec::new(),
            seen: None,
            cookie: false,
            shown: Vec::new(),
        }
    }

    /// This tab shows `variant` of an experiment (`None`: it forgot it).
    pub(crate) fn show(&mut self, uuid: &str, variant: Option<&str>) {
        self.shown.retain(|(u, _)| u != uuid);
        if let Some(v) = variant {
            self.shown.push((uuid.to_owned(), v.to_owned()));
        }
    }

    /// Whether a reward of the visitor's `variant` is one for what this tab
    /// shows: the same variant, or none shown here (a page that only
    /// rewards). Two tabs that drew at once may show different variants,
    /// of which one is counted: a reward in the other would credit a
    /// variant its page did not show.
    pub(crate) fn shows(&self, uuid: &str, variant: &str) -> bool {
        self.shown.iter().all(|(u, v)| u != uuid || v == variant)
    }

    /// The visitor's state of an experiment as this tab knows it: read from
    /// storage once, then kept (with this tab's changes) until
    /// [`Claims::forget`].
    pub(crate) fn state(&mut self, host: &impl Host, uuid: &str) -> Sticky {
        let writes = host.page().writes.load(Ordering::Relaxed);
        if self.seen != Some(writes) {
            // Another client of this page wrote: read afresh.
            self.forget();
            self.seen = Some(writes);
        }
        if let Some(k) = self.kept.iter().find(|k| k.uuid == uuid) {
            return k.state.clone();
        }
        let state = self.read(host, uuid);
        self.keep(uuid, state.clone(), false);
        state
    }

    /// Changes the visitor's state of an experiment ([`Claims::write`]
    /// writes it).
    pub(crate) fn set(&mut self, uuid: &str, state: Sticky) {
        self.keep(uuid, state, true);
    }

    fn keep(&mut self, uuid: &str, state: Sticky, dirty: bool) {
        match self.kept.iter_mut().find(|k| k.uuid == uuid) {
            Some(k) => {
                k.state = state;
                k.dirty |= dirty;
            }
            None => self.kept.push(Kept {
                uuid: uuid.to_owned(),
                state,
                dirty,
            }),
        }
    }

    /// Another tab changed storage: the states are read afresh (those
    /// changed here and not written yet are kept).
    pub(crate) fn forget(&mut self) {
        self.kept.retain(|k| k.dirty);
    }

    /// The visitor's state stored for an experiment (localStorage, else the
    /// cookie a full storage left it in).
    fn read(&mut self, host: &impl Host, uuid: &str) -> Sticky {
        let key = storage::sticky(&self.ns, uuid);
        let text = host.get(&key).or_else(|| {
            let text = host.cookie(&key);
            self.cookie |= text.is_some();
            text
        });
        stored::read_sticky(text.and_then(|t| host.parse(&t)).as_ref())
    }

    /// Writes the states that changed: to storage, or to a cookie when
    /// storage is full.
    pub(crate) fn write(&mut self, host: &impl Host) {
        if self.kept.iter().any(|k| k.dirty) {
            // This client's own write leaves its states storage's, unless
            // another client wrote since it last looked.
            let before = host.page().writes.fetch_add(1, Ordering::Relaxed);
            if self.seen == Some(before) {
                self.seen = Some(before.wrapping_add(1));
            }
        }
        for k in self.kept.iter_mut().filter(|k| k.dirty) {
            k.dirty = false;
            let key = storage::sticky(&self.ns, &k.uuid);
            let text = stored::write_sticky(&k.state);
            if host.set(&key, &text) {
                if self.cookie {
                    host.set_cookie(&key, None);
                }
            } else {
                host.remove(&key);
                host.set_cookie(&key, Some(&text));
                self.cookie = true;
            }
        }
    }

    /// The rule by which sealing keeps an event: whether its claim is still
    /// the one counted by the visitor's state as stored now (read afresh,
    /// once per experiment; call [`Claims::write`] first).
    pub(crate) fn judge<'a>(
        &'a mut self,
        host: &'a impl Host,
    ) -> impl FnMut(&str, &Claim) -> bool + 'a {
        let mut states: Vec<(String, Sticky)> = Vec::new();
        move |experiment, claim| {
            if claim.seq == 0 {
                return true;
            }
            let at = match states.iter().position(|(u, _)| u == experiment) {
                Some(at) => at,
                None => {
                    let state = self.read(host, experiment);
                    states.push((experiment.to_owned(), state));
                    states.len() - 1
                }
            };
            states
                .get(at)
                .is_none_or(|(_, state)| sticky::keeps(state, claim))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::testing::TestHost;

    const KEY: &str = "myna:s:e";

    #[test]
    fn a_state_is_read_once_and_written_at_the_end_of_the_task() {
        let host = TestHost::new();
        let mut claims = Claims::new("myna");
        assert_eq!(claims.state(&host, "e"), Sticky::default());
        let (shown, _) = sticky::view(&Sticky::default(), "a", 7);
        claims.set("e", shown.clone());
        assert_eq!(
            host.get(KEY),
            None,
            "not written before the end of the task"
        );
        assert_eq!(claims.state(&host, "e"), shown);
        claims.write(&host);
        assert_eq!(host.get(KEY), Some(stored::write_sticky(&shown)));
        // Another tab's write is seen once storage says it changed.
        let (theirs, _) = sticky::view(&shown, "b", 8);
        host.set(KEY, &stored::write_sticky(&theirs));
        assert_eq!(claims.state(&host, "e"), shown, "kept until told");
        claims.forget();
        assert_eq!(claims.state(&host, "e"), theirs);
    }

    #[test]
    fn a_full_storage_keeps_the_state_in_a_cookie_until_storage_takes_it_again() {
        let host = TestHost::new();
        host.set_quota(Some(0));
        let mut claims = Claims::new("myna");
        let (shown, _) = sticky::view(&Sticky::default(), "a", 7);
        claims.set("e", shown.clone());
        claims.write(&host);
        assert_eq!(host.get(KEY), None);
        assert_eq!(host.cookie(KEY), Some(stored::write_sticky(&shown)));
        // The next page reads it back from the cookie.
        let mut next_page = Claims::new("myna");
        assert_eq!(next_page.state(&host, "e"), shown);
        host.set_quota(None);
        let (again, _) = sticky::view(&shown, "b", 8);
        next_page.set("e", again.clone());
        next_page.write(&host);
        assert_eq!(host.get(KEY), Some(stored::write_sticky(&again)));
        assert_eq!(
            host.cookie(KEY),
            None,
            "the cookie goes once storage takes it"
        );
    }

    #[test]
    fn sealing_judges_claims_by_the_state_as_stored_now() {
        let host = TestHost::new();
        let mut ours = Claims::new("myna");
        let mut theirs = Claims::new("myna");
        // Two tabs draw at once: each claims seq 1; the last write wins.
        let (mine, my_claim) = sticky::view(&ours.state(&host, "e"), "a", 1);
        let (other, their_claim) = sticky::view(&theirs.state(&host, "e"), "b", 2);
        ours.set("e", mine);
        ours.write(&host);
        theirs.set("e", other);
        theirs.write(&host);
        let mut keep = ours.judge(&host);
        assert!(!keep("e", &my_claim));
        assert!(keep("e", &their_claim));
        assert!(keep("e", &Claim::default()), "no claim: kept");
        assert!(keep("f", &my_claim), "nothing stored says it lost");
    }
}
