//! The delivery half of a [`Tab`]: each step of a flush ([`crate::delivery`]'s
//! run, with sealing and storing between steps), the flush lease, and
//! adopting the queues other tabs left.

use super::*;

impl<H: Host> Tab<H> {
    // ---- Delivery --------------------------------------------------------

    /// The page's own flush is asked for (the shell starts it).
    pub(crate) fn flush(&mut self) {
        self.runs += 1;
    }

    /// A flush nobody awaits (timer, batch size, `online`, adopting other
    /// tabs' queues), unless one is pending.
    pub(super) fn background_flush(&mut self) {
        if self.runs == 0 {
            self.runs += 1;
            self.effects.push(Effect::Flush);
        }
    }

    /// The first step of a flush (holding the flush lock): adopts the
    /// queues other tabs left, then gives the first request, or `None`.
    /// A flush that is not `eager` (the page's own) sends nothing while the
    /// backoff lasts.
    pub(crate) fn start_flush(&mut self, eager: bool) -> Option<Request> {
        self.run = Run::default();
        self.adopt_orphans();
        if !eager && !self.backoff.due(self.host.now()) {
            self.run = Run::held();
            return None;
        }
        self.next_send()
    }

    /// A step of a flush: takes the verdict on the answer to the last
    /// request and gives the next request, or none when every batch was
    /// tried or an attempt failed.
    pub(crate) fn answered(&mut self, verdict: Verdict) -> Answered {
        let jsonp = self.settings.server.jsonp;
        let (request, sent) = match self.run.answered(&mut self.queue, verdict, jsonp) {
            Step::Unit => (self.send_current(), false),
            Step::Over => (None, false),
            Step::Settled { sent } => {
                self.persist();
                (self.next_send(), sent)
            }
        };
        Answered { request, sent }
    }

    /// The next batch not tried in this run, sealed (after dropping the
    /// events whose claims lost: a batch left with none goes) and stored so
    /// before it leaves: its request.
    fn next_send(&mut self) -> Option<Request> {
        let (claims, host) = (&mut self.claims, &self.host);
        let found = self.run.next(&mut self.queue, |queue, id| {
            claims.write(host);
            queue.seal_settled(Some(id), claims.judge(host));
        });
        if !found {
            return None;
        }
        self.persist(); // sealed before it leaves
        self.send_current()
    }

    /// The request of the batch (or JSONP event) being sent.
    fn send_current(&self) -> Option<Request> {
        let (batch, unit) = self.run.current()?;
        let sent_at = self.sent_at();
        self.settings
            .server
            .send(batch, unit, self.queue.number(), sent_at)
    }

    /// The page's clock as a request leaves (`sentAt`): the server reads the
    /// events' timestamps on it, so a wrong page clock loses nothing.
    pub(super) fn sent_at(&self) -> u64 {
        self.host.now().max(0.0) as u64
    }

    /// The end of a flush (the lock released): the backoff after a failed
    /// attempt and the refused batches' errors ([`Effect::Refused`]); its
    /// counts and the attempt that failed.
    pub(crate) fn done(&mut self) -> Done {
        self.runs = self.runs.saturating_sub(1);
        let run = core::mem::take(&mut self.run);
        let u = self.host.random();
        let now = self.host.now();
        let finished = run.finish(&mut self.backoff, self.queue.len(), now, u);
        self.effects
            .extend(finished.refusals.into_iter().map(Effect::Refused));
        Done {
            counts: finished.counts,
            failure: finished.failure,
        }
    }

    /// A step of the flush lease (where Web Locks are missing).
    pub(crate) fn lease(&self, step: Lease) -> bool {
        lock::lease(
            &self.host,
            &self.settings.ns,
            &self.id,
            step,
            self.host.now(),
        )
    }

    /// A flush looks at the queues earlier pages or other tabs left, if
    /// there are any. Not for this page's own (its base and records, a
    /// prefix no other tab's key has: tab ids are of one length): what the
    /// page queued before the listeners started waits for the timer or the
    /// batch size, as it would have after connecting.
    pub(super) fn look_for_queues(&mut self) {
        let prefix = storage::queues(&self.settings.ns);
        let mine = storage::base(&self.settings.ns, &self.id);
        let keys = self.host.keys(&prefix);
        let queue = |k: &String| {
            self.adoptable(k.as_bytes().get(prefix.len()..).unwrap_or_default())
                && !k.starts_with(&mine)
        };
        if keys.iter().any(queue) {
            self.background_flush();
        }
    }

    /// Adopts the queues other tabs released, or left for dead (and those
    /// of SDK versions before records, by the same rules): found by their
    /// bases (a tab writes its base before any record).
    fn adopt_orphans(&mut self) {
        let prefix = storage::queues(&self.settings.ns);
        let mine = storage::base(&self.settings.ns, &self.id);
        let keys = self.host.keys(&prefix);
        for key in &keys {
            let name = key.as_bytes().get(prefix.len()..).unwrap_or_default();
            let base =
                matches!(name, [b't' | b'q', b':', rest @ ..] if rest.iter().all(|&b| b != b':'));
            if base
                && self.adoptable(name)
                && *key != mine
                && let Some(stored) = persist::read_tab(&self.host, key)
            {
                self.take_over(stored, key);
            }
        }
    }

    /// Whether a stored queue's key (after `<ns>:`) is one this tab may
    /// adopt: a tab's (`t:<tab>`, with its records) that sends as this one
    /// does (its id starts with this tab's sender), or one written before
    /// tab ids named their sender (no `.`), or one of SDK versions before
    /// records (`q:<tab>`).
    fn adoptable(&self, name: &[u8]) -> bool {
        match name {
            [b'q', b':', ..] => true,
            [b't', b':', tab @ ..] => {
                // `<sender>.` (9 bytes) starts this tab's id and theirs.
                let sender = self.id.as_bytes().get(..9).unwrap_or_default();
                tab.starts_with(sender)
                    || !tab.iter().take_while(|&&b| b != b':').any(|&b| b == b'.')
            }
            _ => false,
        }
    }

    /// Tells the page's `error` listeners (and `sync`'s, of what went)
    /// that the queue or storage was full.
    pub(super) fn queue_full(&mut self, dropped: usize, message: &'static str) {
        self.effects.push(Effect::QueueFull { dropped, message });
        if dropped > 0 {
            self.effects.push(Effect::Sync(Counts {
                sent: 0,
                dropped,
                requeued: 0,
            }));
        }
    }

    /// Takes another tab's stored queue over if it is an orphan, then
    /// removes its keys: `base` and its records ([`persist::read_tab`]).
    fn take_over(&mut self, stored: stored::Stored, base: &str) {
        if !stored.is_orphan(self.host.now(), STALE_MS) {
            return;
        }
        let host = &self.host;
        let batches = stored.into_batches(self.queue.number(), || host.uuid());
        self.queue.adopt(batches);
        let dropped = self.queue.enforce(self.settings.bounds);
        // What the other tab never sealed had not left it: its events are
        // judged by their claims before they leave.
        self.seal(None);
        self.persist(); // ours first: a crash here leaves a harmless duplicate
        for key in self.host.keys(&storage::records(base)) {
            self.host.remove(&key);
        }
        self.host.remove(base);
        if dropped > 0 {
            self.queue_full(
                dropped,
                "The queue was full: the oldest events were dropped.",
            );
        }
    }
}
