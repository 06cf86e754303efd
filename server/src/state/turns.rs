//! Turns at the answers whose CPU grows with an account (searches,
//! deployments), which anyone holding a public key may ask for as often as
//! they like: half the cores build them at once (at least one), the rest of
//! the machine keeps records, reads and health checks going; and one
//! account holds at most half of those turns (at least one), waiting
//! behind itself for more, so a flood through one account's key delays
//! another account's search by one of its answers, not by its queue.
//! Waiting costs no CPU. Both queues are first come, first served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};
use uuid::Uuid;

/// Accounts' queues kept while idle before the idle ones are forgotten.
const IDLE_KEPT: usize = 256;

/// The turns (see the module).
#[derive(Debug)]
pub struct Turns {
    turns: usize,
    all: Semaphore,
    per_account: usize,
    accounts: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

/// A turn: held while the answer is built.
#[derive(Debug)]
pub struct Turn<'a> {
    _all: Option<SemaphorePermit<'a>>,
    _mine: Option<OwnedSemaphorePermit>,
}

impl Turns {
    /// `turns` at once in all (at least one), half of them (at least one)
    /// for one account.
    pub fn new(turns: usize) -> Turns {
        let turns = turns.max(1);
        Turns {
            turns,
            all: Semaphore::new(turns),
            per_account: (turns / 2).max(1),
            accounts: Mutex::default(),
        }
    }

    /// How many turns there are in all.
    pub fn turns(&self) -> usize {
        self.turns
    }

    /// Waits for a turn of `account`'s, then for one of all.
    pub async fn take(&self, account: Uuid) -> Turn<'_> {
        let queue = {
            let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            if accounts.len() > IDLE_KEPT {
                // Nobody holds or waits for an idle one's.
                accounts.retain(|_, queue| Arc::strong_count(queue) > 1);
            }
            accounts
                .entry(account)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account)))
                .clone()
        };
        // Never closed: a permit always comes.
        let mine = queue.acquire_owned().await.ok();
        let all = self.all.acquire().await.ok();
        Turn {
            _all: all,
            _mine: mine,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    type Order = Arc<Mutex<Vec<String>>>;

    /// A task that takes a turn for `account`, notes `label` in `order`
    /// when it has it, then holds it 5 ms.
    fn waiter(
        turns: &Arc<Turns>,
        order: &Order,
        account: Uuid,
        label: String,
    ) -> tokio::task::JoinHandle<()> {
        let (turns, order) = (turns.clone(), order.clone());
        tokio::spawn(async move {
            let _turn = turns.take(account).await;
            order
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(label);
            tokio::time::sleep(Duration::from_millis(5)).await;
        })
    }

    #[tokio::test]
    async fn an_account_flooding_waits_behind_itself_not_in_front_of_others() {
        let turns = Arc::new(Turns::new(1));
        let (flood, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let order: Order = Arc::default();
        let first = turns.take(flood).await;
        let mut waiting = Vec::new();
        for i in 0..5 {
            waiting.push(waiter(&turns, &order, flood, format!("flood {i}")));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        waiting.push(waiter(&turns, &order, other, "other".to_owned()));
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(first);
        for task in waiting {
            let _ = task.await;
        }
        let order = order.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(order.len(), 6);
        assert_eq!(
            order[0], "other",
            "the other account's turn came first: {order:?}"
        );
        assert_eq!(
            order[1..],
            ["flood 0", "flood 1", "flood 2", "flood 3", "flood 4"]
        );
    }

    #[tokio::test]
    async fn one_account_holds_at_most_half_the_turns() {
        let turns = Turns::new(4);
        let account = Uuid::from_u128(1);
        let _a = turns.take(account).await;
        let _b = turns.take(account).await;
        let third = tokio::time::timeout(Duration::from_millis(50), turns.take(account)).await;
        assert!(third.is_err(), "a third waits");
        let other = tokio::time::timeout(Duration::from_millis(50), turns.take(Uuid::nil())).await;
        assert!(other.is_ok(), "another account's comes at once");
    }

    #[tokio::test]
    async fn idle_accounts_queues_are_forgotten() {
        let turns = Turns::new(2);
        for i in 0..1_000u128 {
            let _turn = turns.take(Uuid::from_u128(i)).await;
        }
        let kept = turns
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        assert!(kept <= IDLE_KEPT + 1, "{kept}");
    }
}
