//! The one entry point besides `connect`: [`Driver::step`], which
//! `js/glue.js` calls at each step of the asynchronous half (an answer
//! came, a tick, a page event, the microtask write) and for each call of
//! the page's classes: one synchronous decision each, made by the
//! [`Client`]. No Rust future runs in the package: an async executor and
//! its promise plumbing would weigh more than the client itself.
//!
//! The steps are numbered ([`Op`]); `js/glue.js` names the same numbers
//! alike, and a test holds the two tables equal. Each step's arguments
//! are read once, into a [`Request`] with named fields.

use alloc::rc::{Rc, Weak};
use alloc::string::String;

use wasm_bindgen::prelude::*;

use crate::client::Client;
use crate::experiment::canonical_uuid;
use crate::lock::Lease;
use crate::tab::PageEvent;

/// The client as `js/glue.js` sees it. The one the client keeps (for its
/// timers, answers and listeners) holds it weakly: a page that drops its
/// `Myna` (which holds the one strong driver) drops the client, and a late
/// timer or answer then finds nothing to do.
#[wasm_bindgen(skip_typescript)]
pub struct Driver {
    client: Weak<Client>,
    _strong: Option<Rc<Client>>,
}

/// A client for `options`, with its weak driver (what `Myna.connect` makes).
pub(crate) fn client(options: &JsValue) -> Result<Rc<Client>, JsValue> {
    Client::new(options, |client| {
        Driver {
            client,
            _strong: None,
        }
        .into()
    })
}

impl Driver {
    /// The driver the page's `Myna` holds: it keeps the client alive.
    pub(crate) fn strong(client: Rc<Client>) -> Driver {
        Driver {
            client: Rc::downgrade(&client),
            _strong: Some(client),
        }
    }
}

/// The steps of [`Driver::step`], by number (`js/glue.js` declares each
/// as a constant of the same name in SCREAMING_SNAKE_CASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// The answer to a load request (`a`), and that request (`b`): the next
    /// request (a next search page), or `undefined`; throws the
    /// `MynaError` of a failed load.
    Loaded,
    /// A flush starts, holding the flush lock; `a`: whether it is the
    /// page's own (`eager`). Its first request, or `undefined`.
    Start,
    /// The answer (`a`) to the flush's last request: the next request, or
    /// `undefined` when the run is over.
    Deliver,
    /// The end of a flush: its counts; throws the error of the attempt
    /// that failed.
    Done,
    /// The flush lease where Web Locks are missing: take it if free
    /// (whether it did)…
    LeaseTake,
    /// …whether it is still ours (renewing it if so)…
    LeaseHeld,
    /// …give it back.
    LeaseGive,
    /// Write the queue (the microtask after events were queued).
    Persist,
    /// `a`: a tick (`"tick"`) or a page event: `pagehide`, `freeze`,
    /// `hidden` and `visible` (visibility changes), `pageshow`, `storage`,
    /// `online`.
    Event,
    /// The page's calls (the classes of `js/glue.js`), `a` an experiment
    /// uuid: `myna.experiment` (`a` a uuid or an id), its canonical uuid
    /// (throws `unknown-experiment`)…
    Experiment,
    /// …the read form of a loaded experiment (throws `unknown-experiment`)…
    Form,
    /// …`suggest`: the variant id…
    Suggest,
    /// …`view` of variant `b`…
    View,
    /// …`reward` of amount `b` (a number or `undefined`): whether one was queued…
    Reward,
    /// …`unstick`…
    Unstick,
    /// …`myna.load`: a Promise of the canonical uuid…
    Load,
    /// …`myna.flush`…
    Flush,
    /// …`myna.queued`…
    Queued,
    /// …`myna.close`…
    Close,
    /// …a new strong driver (each of the page's objects holds its own)…
    Share,
    /// …the uuids of the loaded experiments (`myna.experiments`, `myna.bind`).
    List,
}

impl Op {
    /// Every step, in the order of their numbers (from 0).
    pub(crate) const ALL: [Op; 21] = [
        Op::Loaded,
        Op::Start,
        Op::Deliver,
        Op::Done,
        Op::LeaseTake,
        Op::LeaseHeld,
        Op::LeaseGive,
        Op::Persist,
        Op::Event,
        Op::Experiment,
        Op::Form,
        Op::Suggest,
        Op::View,
        Op::Reward,
        Op::Unstick,
        Op::Load,
        Op::Flush,
        Op::Queued,
        Op::Close,
        Op::Share,
        Op::List,
    ];
}

/// One step, its arguments named (borrowed from the call: read as they
/// are used).
enum Request<'a> {
    Loaded {
        answer: &'a JsValue,
        request: &'a JsValue,
    },
    Start {
        eager: bool,
    },
    Deliver {
        answer: &'a JsValue,
    },
    Done,
    Lease(Lease),
    Persist,
    Event {
        name: &'a JsValue,
    },
    Experiment {
        key: &'a JsValue,
    },
    Form {
        uuid: &'a JsValue,
    },
    Suggest {
        uuid: &'a JsValue,
    },
    View {
        uuid: &'a JsValue,
        variant: &'a JsValue,
    },
    Reward {
        uuid: &'a JsValue,
        amount: Option<f64>,
    },
    Unstick {
        uuid: &'a JsValue,
    },
    Load {
        uuid: &'a JsValue,
    },
    Flush,
    Queued,
    Close,
    Share,
    List,
}

impl<'a> Request<'a> {
    /// Step `op` with its arguments `a` and `b` (see [`Op`]); `None` for
    /// an unknown step.
    fn read(op: u32, a: &'a JsValue, b: &'a JsValue) -> Option<Request<'a>> {
        Some(match *Op::ALL.get(op as usize)? {
            Op::Loaded => Request::Loaded {
                answer: a,
                request: b,
            },
            Op::Start => Request::Start {
                eager: a.is_truthy(),
            },
            Op::Deliver => Request::Deliver { answer: a },
            Op::Done => Request::Done,
            Op::LeaseTake => Request::Lease(Lease::Take),
            Op::LeaseHeld => Request::Lease(Lease::Held),
            Op::LeaseGive => Request::Lease(Lease::Give),
            Op::Persist => Request::Persist,
            Op::Event => Request::Event { name: a },
            Op::Experiment => Request::Experiment { key: a },
            Op::Form => Request::Form { uuid: a },
            Op::Suggest => Request::Suggest { uuid: a },
            Op::View => Request::View {
                uuid: a,
                variant: b,
            },
            Op::Reward => Request::Reward {
                uuid: a,
                amount: b.as_f64(),
            },
            Op::Unstick => Request::Unstick { uuid: a },
            Op::Load => Request::Load { uuid: a },
            Op::Flush => Request::Flush,
            Op::Queued => Request::Queued,
            Op::Close => Request::Close,
            Op::Share => Request::Share,
            Op::List => Request::List,
        })
    }
}

/// A string argument (an empty one when it is not a string).
fn text(value: &JsValue) -> String {
    value.as_string().unwrap_or_default()
}

#[wasm_bindgen]
impl Driver {
    /// One step: the step numbered `op` ([`Op`]) with its arguments; what
    /// it gives (`undefined` for steps that give nothing, booleans for the
    /// lease), or the `MynaError` it throws.
    #[wasm_bindgen(skip_typescript)]
    pub fn step(&self, op: u32, a: JsValue, b: JsValue) -> Result<JsValue, JsValue> {
        let Some(request) = Request::read(op, &a, &b) else {
            return Ok(JsValue::UNDEFINED);
        };
        let Some(c) = self.client.upgrade() else {
            // A client the page dropped: its lease counts as taken, so a
            // waiting flush ends instead of polling forever.
            return Ok(if matches!(request, Request::Lease(_)) {
                JsValue::TRUE
            } else {
                JsValue::UNDEFINED
            });
        };
        Ok(match request {
            Request::Loaded { answer, request } => return c.loaded(answer, request),
            Request::Experiment { key } => c.resolve(&text(key))?.into(),
            Request::Form { uuid } => c.with(&text(uuid), |e| e.form.clone())?,
            Request::Suggest { uuid } => c.suggest(&text(uuid))?.into(),
            Request::View { uuid, variant } => {
                c.view(&text(uuid), &text(variant))?;
                JsValue::UNDEFINED
            }
            Request::Reward { uuid, amount } => c.reward(&text(uuid), amount)?.into(),
            Request::Unstick { uuid } => {
                c.unstick(&text(uuid));
                JsValue::UNDEFINED
            }
            Request::Load { uuid } => c.load(canonical_uuid(&text(uuid))).into(),
            Request::Flush => c.flush().into(),
            Request::Queued => (c.queued() as f64).into(),
            Request::Close => {
                c.close();
                JsValue::UNDEFINED
            }
            Request::Share => Driver::strong(c).into(),
            Request::List => c.uuids().into(),
            Request::Start { eager } => c.start_flush(eager),
            Request::Deliver { answer } => c.deliver(answer),
            Request::Done => return c.done(),
            Request::Lease(step) => c.lease(step).into(),
            Request::Persist => {
                c.persist();
                JsValue::UNDEFINED
            }
            Request::Event { name } => {
                if let Some(event) = PageEvent::from_name(&text(name)) {
                    c.page_event(event);
                }
                JsValue::UNDEFINED
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use alloc::vec::Vec;

    /// `Op::LeaseTake` as `LEASE_TAKE`.
    fn constant(op: Op) -> String {
        let mut out = String::new();
        for (i, c) in alloc::format!("{op:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn glue_js_numbers_the_steps_as_the_rust_side_does() {
        let glue = include_str!("../js/glue.js");
        // Every file that calls `d.step`: glue.js and transport.js (which
        // takes its steps from glue.js's table).
        let callers = [glue, include_str!("../js/transport.js")];
        // The table: the `export const NAME = n, …;` lines glue.js starts with.
        let mut declared: Vec<(String, u32)> = Vec::new();
        let table = glue
            .lines()
            .skip_while(|l| !l.starts_with("export const "))
            .take_while(|l| l.starts_with("export const "));
        for line in table {
            for part in line["export const ".len()..]
                .trim_end_matches(';')
                .split(',')
            {
                let (name, n) = part.split_once('=').unwrap();
                declared.push((name.trim().into(), n.trim().parse().unwrap()));
            }
        }
        let ours: Vec<(String, u32)> = Op::ALL
            .iter()
            .enumerate()
            .map(|(i, op)| (constant(*op), i as u32))
            .collect();
        assert_eq!(declared, ours, "js/glue.js's step table");
        // Every step the JS takes is one of them, and each is taken.
        let steps: Vec<&str> = callers
            .iter()
            .flat_map(|js| js.lines())
            .filter(|l| !l.trim_start().starts_with("//"))
            .flat_map(|l| l.split(".step(").skip(1))
            .map(|rest| rest.split([',', ')']).next().unwrap().trim())
            .collect();
        for step in &steps {
            assert!(
                ours.iter().any(|(name, _)| name == step),
                "the JS takes an unknown step {step}"
            );
        }
        for (name, _) in &ours {
            assert!(steps.contains(&name.as_str()), "the JS never takes {name}");
        }
    }
}
