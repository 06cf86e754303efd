//! The requests the SDK makes of the v2 API, as data (pure): their URLs,
//! credentials and bodies, by fetch or JSONP. `transport` hands them to
//! `js/glue.js`; what their answers mean is [`crate::retry`]'s.

use alloc::string::String;
use alloc::vec::Vec;

use myna_core::wire::{Number, push_decimal, url_encode};

use crate::queue::{Batch, Queue, sent_after, unit_id};

/// Experiments asked for per search call.
pub(crate) const SEARCH_PAGE: usize = 100;

/// The server and how to reach it (from the options).
#[derive(Debug, Clone)]
pub(crate) struct Server {
    /// The server root, without a trailing `/`.
    root: String,
    /// The API key, URL-encoded (for the URLs that carry it).
    key: String,
    /// The `Authorization` header that carries it (fetch GETs).
    auth: String,
    /// Whether requests are JSONP script tags (else fetch).
    pub(crate) jsonp: bool,
    /// How long a request may take (ms).
    timeout_ms: f64,
}

/// A request as `js/glue.js` sends it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    /// The URL (with the API key in it, except for fetch GETs).
    pub(crate) url: String,
    /// The `Authorization` header (fetch GETs).
    pub(crate) auth: Option<String>,
    /// The POST body (a GET without one).
    pub(crate) body: Option<String>,
    /// How long it may take (ms).
    pub(crate) timeout_ms: f64,
    /// By a JSONP script tag (else fetch).
    pub(crate) jsonp: bool,
    /// The `skip` of a search page, which comes back with its answer.
    pub(crate) page: Option<usize>,
}

impl Server {
    /// The server at `root` (without a trailing `/`) for the API key `key`,
    /// by JSONP or fetch, each request taking at most `timeout_ms`.
    pub(crate) fn new(root: String, key: &str, jsonp: bool, timeout_ms: f64) -> Server {
        Server {
            root,
            key: url_encode(key),
            auth: ["ApiKey ", key].concat(),
            jsonp,
            timeout_ms,
        }
    }

    /// Who this client sends as, for the names of its stored queues: eight
    /// hex digits of a hash (FNV-1a) of the API key. A page adopts only the
    /// queues of its own key (and those of SDK versions before senders), so
    /// a page with another key on the same origin (another account) never
    /// sends, and loses, another's events. The root is left out: a site
    /// that moves its server keeps what was queued for it.
    pub(crate) fn sender(&self) -> String {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in self.key.bytes() {
            hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
        }
        let mut out = String::with_capacity(8);
        for shift in (0..8).rev() {
            out.push(char::from(
                b"0123456789abcdef"[(hash >> (shift * 4)) as usize & 0xf],
            ));
        }
        out
    }

    /// The id of a tab of this client: `<sender>.<uuid>`.
    pub(crate) fn tab_id(&self, uuid: &str) -> String {
        [&*self.sender(), ".", uuid].concat()
    }

    /// A GET answered with JSON: by fetch (API key header) or JSONP
    /// (`apikey` parameter).
    fn get(&self, url: String, page: Option<usize>) -> Request {
        let (url, auth) = if self.jsonp {
            let separator = if url.bytes().any(|b| b == b'?') {
                "&"
            } else {
                "?"
            };
            let url = [&url, separator, "apikey=", &self.key].concat();
            (url, None)
        } else {
            (url, Some(self.auth.clone()))
        };
        Request {
            url,
            auth,
            body: None,
            timeout_ms: self.timeout_ms,
            jsonp: self.jsonp,
            page,
        }
    }

    /// The search page starting at `skip` (published experiments).
    pub(crate) fn search(&self, skip: usize) -> Request {
        self.get(search_url(&self.root, SEARCH_PAGE, skip), Some(skip))
    }

    /// The read form of one experiment.
    pub(crate) fn read(&self, uuid: &str) -> Request {
        self.get(experiment_url(&self.root, uuid), None)
    }

    /// The request that sends a batch: a POST of the whole batch, or with
    /// JSONP its event `unit` (under its own id, [`unit_id`]); `None` when
    /// there is no such event. `sent_at`: the page's clock as it leaves.
    pub(crate) fn send(
        &self,
        batch: &Batch,
        unit: usize,
        number: impl Number,
        sent_at: u64,
    ) -> Option<Request> {
        let (url, body) = if self.jsonp {
            let event = batch.events().get(unit)?;
            let url = [
                &experiment_url(&self.root, &batch.experiment),
                "/record?",
                &event.record_query(
                    unit_id(batch.id, unit),
                    number,
                    sent_after(Some(sent_at), Some(event.timestamp)),
                ),
                "&apikey=",
                &self.key,
            ]
            .concat();
            (url, None)
        } else {
            let url = self.record_url(&batch.experiment);
            (url, Some(batch.body(Some(sent_at))))
        };
        Some(Request {
            url,
            auth: None,
            body,
            timeout_ms: self.timeout_ms,
            jsonp: self.jsonp,
            page: None,
        })
    }

    /// `{root}/v2/experiment/{uuid}/record?apikey=…` (the key in the URL:
    /// the POST stays a CORS "simple" request, and a beacon cannot set
    /// headers).
    fn record_url(&self, uuid: &str) -> String {
        [
            &experiment_url(&self.root, uuid),
            "/record?apikey=",
            &self.key,
        ]
        .concat()
    }

    /// The beacons that send everything queued as the page goes away
    /// (`navigator.sendBeacon`: a POST, the key in the URL): each batch
    /// whole, or with JSONP each event under its own id, as JSONP sends it.
    pub(crate) fn beacons(
        &self,
        queue: &Queue<impl Number>,
        sent_at: u64,
    ) -> Vec<(String, String)> {
        let mut sends = Vec::new();
        for b in queue.batches() {
            let url = self.record_url(&b.experiment);
            if self.jsonp {
                for i in 0..b.events().len() {
                    sends.push((url.clone(), queue.unit_body(b, i, Some(sent_at))));
                }
            } else {
                sends.push((url, b.body(Some(sent_at))));
            }
        }
        sends
    }
}

/// `{root}/v2/experiment/{uuid}`.
fn experiment_url(root: &str, uuid: &str) -> String {
    [root, "/v2/experiment/", &url_encode(uuid)].concat()
}

/// `{root}/v2/experiment?limit=…&skip=…` (published experiments by default).
fn search_url(root: &str, limit: usize, skip: usize) -> String {
    let mut out = [root, "/v2/experiment?limit="].concat();
    push_decimal(&mut out, limit as u64);
    out.push_str("&skip=");
    push_decimal(&mut out, skip as u64);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use myna_core::{Event, EventType, RecordBatch};
    use uuid::Uuid;

    const ROOT: &str = "https://ab.example.com";
    const UUID: &str = "6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11";

    fn num(x: f64) -> String {
        serde_json::to_string(&x).unwrap()
    }

    fn server(jsonp: bool) -> Server {
        Server::new(ROOT.into(), "k y", jsonp, 500.0)
    }

    fn queue() -> Queue<fn(f64) -> String> {
        let mut q = Queue::new(10, num as fn(f64) -> String);
        for (variant, ts) in [("a", 1), ("b", 2)] {
            let event = Event {
                typename: EventType::View,
                variant: variant.into(),
                amount: None,
                timestamp: ts,
            };
            q.push(UUID, event, Default::default(), || Uuid::from_u128(0xabc0));
        }
        q
    }

    #[test]
    fn urls_of_the_v2_api() {
        assert_eq!(
            server(false).record_url(UUID),
            "https://ab.example.com/v2/experiment/6f1c1a52-3b0e-4d8e-9f39-0c6f5c1d2a11/record?apikey=k%20y"
        );
        assert_eq!(
            search_url(ROOT, 100, 200),
            "https://ab.example.com/v2/experiment?limit=100&skip=200"
        );
    }

    #[test]
    fn reads_carry_the_key_as_a_header_by_fetch_and_in_the_url_by_jsonp() {
        let by_fetch = server(false).search(200);
        assert_eq!(
            by_fetch.url,
            [ROOT, "/v2/experiment?limit=100&skip=200"].concat()
        );
        assert_eq!(by_fetch.auth.as_deref(), Some("ApiKey k y"));
        assert_eq!(
            (by_fetch.page, by_fetch.jsonp, by_fetch.timeout_ms),
            (Some(200), false, 500.0)
        );
        let by_jsonp = server(true).search(0);
        assert_eq!(
            by_jsonp.url,
            [ROOT, "/v2/experiment?limit=100&skip=0&apikey=k%20y"].concat()
        );
        assert_eq!((by_jsonp.auth, by_jsonp.jsonp), (None, true));
        let read = server(true).read(UUID);
        assert_eq!(
            read.url,
            [ROOT, "/v2/experiment/", UUID, "?apikey=k%20y"].concat()
        );
        assert_eq!(read.page, None);
    }

    #[test]
    fn a_batch_goes_whole_by_post_and_event_by_event_by_jsonp() {
        let q = queue();
        let batch = &q.batches()[0];
        let post = server(false).send(batch, 0, num, 77).unwrap();
        assert_eq!(post.url, server(false).record_url(UUID));
        assert_eq!(post.body, Some(batch.body(Some(77))));
        assert_eq!(post.auth, None);
        let second = server(true).send(batch, 1, num, 77).unwrap();
        assert_eq!(
            second.url,
            [
                ROOT,
                "/v2/experiment/",
                UUID,
                "/record?",
                &batch.events()[1].record_query(unit_id(batch.id, 1), num, Some(77)),
                "&apikey=k%20y"
            ]
            .concat()
        );
        assert_eq!((second.body, second.jsonp), (None, true));
        assert_eq!(server(true).send(batch, 2, num, 77), None);
        // Beacons name each event as JSONP does.
        let beacons = server(true).beacons(&q, 9);
        assert_eq!(beacons.len(), 2);
        let one: RecordBatch = serde_json::from_str(&beacons[1].1).unwrap();
        assert_eq!(one.batch, Some(unit_id(batch.id, 1)));
        assert_eq!(one.events, &batch.events()[1..]);
        let beacons = server(false).beacons(&q, 9);
        assert_eq!(
            beacons,
            vec![(server(false).record_url(UUID), batch.body(Some(9)))]
        );
    }
}
