//! The webhook sender: due deliveries attempted by a pool of
//! [`SENDING_AT_ONCE`] slots, at most [`PER_WEBHOOK`] of them for one
//! webhook, each slot refilled as soon as its attempt ends. So a receiver
//! that is slow or down holds its own deliveries' slots only, never the
//! others' (no attempt waits for a slower one). Each attempt claims its
//! delivery in the database first, so of several instances one sends it;
//! a failed one is tried again [`retry_after_ms`] later, at most
//! [`MAX_ATTEMPTS`] times.

use std::collections::HashMap;
use std::time::Duration;

use tokio::task::{Id, JoinSet};
use uuid::Uuid;

use super::webhooks::{report, webhook_secret};
use crate::auth::secret::hmac_sha256_hex;
use crate::state::{AppState, WeakState};
use crate::storage::{Attempt, Delivery, StorageError};

/// How often the sender looks for due deliveries (besides whenever an
/// attempt ends).
pub const SEND_EVERY: Duration = Duration::from_secs(1);
/// Attempts of one delivery before it is given up.
pub const MAX_ATTEMPTS: u64 = 6;
/// Attempts in flight at once, per instance: more than one account's
/// webhooks may take ([`PER_WEBHOOK`] × `MAX_WEBHOOKS`), so every receiver
/// of one account hanging still leaves others' deliveries room.
pub const SENDING_AT_ONCE: usize = 32;
const _: () = assert!(SENDING_AT_ONCE > PER_WEBHOOK * myna_core::limits::MAX_WEBHOOKS);
/// Attempts in flight at once for one webhook, per instance: hanging
/// receivers cannot take every slot.
pub const PER_WEBHOOK: usize = 2;
/// How long a claim holds a delivery: past it (the instance that claimed
/// it died mid-attempt), the delivery is due again. Longer than any attempt.
pub const CLAIM_MS: i64 = 60_000;

/// The pause after the `attempts`-th failed attempt: 2 minutes doubled each
/// time (2, 4, 8, 16, 32).
pub fn retry_after_ms(attempts: u64) -> i64 {
    let doublings = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    120_000_i64.saturating_mul(1_i64 << doublings)
}

/// The attempts in flight, and whose.
#[derive(Default)]
struct Pool {
    attempts: JoinSet<Result<(), StorageError>>,
    webhook_of: HashMap<Id, Uuid>,
    busy: HashMap<Uuid, usize>,
}

impl Pool {
    /// Claims due deliveries for the free slots (the longest due first, a
    /// webhook's beyond [`PER_WEBHOOK`] left) and starts their attempts. On
    /// an error the attempts started still run.
    async fn fill(&mut self, state: &AppState) -> Result<(), StorageError> {
        let free = SENDING_AT_ONCE.saturating_sub(self.attempts.len());
        if free == 0 {
            return Ok(());
        }
        let now_ms = state.now_ms();
        // A busy webhook's rows (at most PER_WEBHOOK) may all be left.
        let limit = free + PER_WEBHOOK * self.busy.len();
        let due = state
            .storage
            .due_deliveries(now_ms, PER_WEBHOOK, limit)
            .await?;
        for delivery in due {
            if self.attempts.len() >= SENDING_AT_ONCE {
                break;
            }
            let webhook = delivery.webhook;
            let Some(due_ms) = delivery.next_ms else {
                continue;
            };
            if self.busy.get(&webhook).is_some_and(|n| *n >= PER_WEBHOOK) {
                continue;
            }
            let until_ms = now_ms + CLAIM_MS;
            let storage = &state.storage;
            if !storage
                .claim_delivery(delivery.id, due_ms, until_ms, now_ms)
                .await?
            {
                continue; // another instance took it
            }
            let state = state.clone();
            let task = self
                .attempts
                .spawn(async move { attempt(&state, delivery, now_ms).await });
            self.webhook_of.insert(task.id(), webhook);
            *self.busy.entry(webhook).or_default() += 1;
        }
        Ok(())
    }

    /// Waits for an attempt to end and frees its slot: false if none is in
    /// flight. Cancel safe.
    async fn next(&mut self) -> bool {
        let Some(done) = self.attempts.join_next_with_id().await else {
            return false;
        };
        let id = match &done {
            Ok((id, _)) => *id,
            Err(error) => error.id(),
        };
        if let Some(webhook) = self.webhook_of.remove(&id)
            && let Some(n) = self.busy.get_mut(&webhook)
        {
            *n -= 1;
            if *n == 0 {
                self.busy.remove(&webhook);
            }
        }
        match done {
            Ok((_, Ok(()))) => {}
            Ok((_, Err(error))) => tracing::warn!(%error, "recording a webhook attempt failed"),
            Err(error) => tracing::error!(%error, "a webhook attempt failed"),
        }
        true
    }
}

/// One round of the sender: claims the due deliveries an empty pool takes
/// (at most [`SENDING_AT_ONCE`], [`PER_WEBHOOK`] a webhook), attempts them
/// and waits for them all. Answers how many attempts it made.
pub async fn deliver_now(state: &AppState) -> Result<usize, StorageError> {
    let mut pool = Pool::default();
    let filled = pool.fill(state).await;
    let mut made = 0;
    while pool.next().await {
        made += 1;
    }
    filled.map(|()| made)
}

/// The sender task, while the state runs: the pool refilled whenever an
/// attempt ends and every [`SEND_EVERY`]; a failing fill is logged once
/// until one works again. Once `stopping` turns true (a graceful stop) it
/// starts no attempt and returns when those under way have ended (each
/// within its timeout) and their outcomes are stored: one cut short
/// would be claimed but not recorded, and sent again a minute later.
pub async fn send(state: WeakState, mut stopping: tokio::sync::watch::Receiver<bool>) {
    let mut pool = Pool::default();
    let mut ticks = tokio::time::interval(SEND_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            true = pool.next() => {}
            _ = stopping.wait_for(|stop| *stop) => break,
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let filled = pool.fill(&state).await;
        report(&mut failing, "sending webhook deliveries", filled);
    }
    while pool.next().await {}
}

/// One attempt of a claimed delivery (begun at `at_ms`), and its outcome
/// recorded.
async fn attempt(state: &AppState, delivery: Delivery, at_ms: i64) -> Result<(), StorageError> {
    let secret = webhook_secret(state, delivery.webhook);
    let signature = hmac_sha256_hex(secret.as_bytes(), delivery.body.as_bytes());
    let answer = state
        .outbound
        .post(&delivery.url, delivery.body, &signature)
        .await;
    let now_ms = state.now_ms();
    let attempts = delivery.attempts + 1;
    let retry = || (attempts < MAX_ATTEMPTS).then(|| now_ms + retry_after_ms(attempts));
    let outcome = match answer {
        Ok(status) if (200..300).contains(&status) => Attempt {
            id: delivery.id,
            at_ms,
            status: Some(status),
            error: None,
            delivered_ms: Some(now_ms),
            next_ms: None,
        },
        Ok(status) => Attempt {
            id: delivery.id,
            at_ms,
            status: Some(status),
            error: Some(format!("answered HTTP {status}")),
            delivered_ms: None,
            next_ms: retry(),
        },
        Err(error) => Attempt {
            id: delivery.id,
            at_ms,
            status: None,
            error: Some(error),
            delivered_ms: None,
            next_ms: retry(),
        },
    };
    if outcome.delivered_ms.is_none() {
        tracing::info!(
            webhook = %delivery.webhook,
            attempts,
            error = outcome.error.as_deref().unwrap_or_default(),
            "a webhook delivery failed{}",
            if outcome.next_ms.is_some() { "; it will be retried" } else { "; given up" }
        );
    }
    state.storage.finish_attempt(&outcome).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_and_take_about_an_hour() {
        let pauses: Vec<i64> = (1..MAX_ATTEMPTS).map(retry_after_ms).collect();
        assert_eq!(pauses, [120_000, 240_000, 480_000, 960_000, 1_920_000]);
        assert_eq!(pauses.iter().sum::<i64>(), 62 * 60_000);
    }
}
