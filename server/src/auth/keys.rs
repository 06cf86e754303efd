//! The API key cache: a page load with an API key costs no database read.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use myna_core::Problem;
use uuid::Uuid;

use crate::storage::Storage;

/// API keys seen so far (key → account): a page load with an API key costs
/// no database read. Deleting a key through the API evicts it.
#[derive(Debug, Default)]
pub struct Keys {
    known: RwLock<HashMap<Uuid, Uuid>>,
}

impl Keys {
    /// The account of an API key, asking storage on a miss.
    pub async fn account(&self, storage: &dyn Storage, key: Uuid) -> Result<Option<Uuid>, Problem> {
        let cached = {
            let known = self.known.read().unwrap_or_else(PoisonError::into_inner);
            known.get(&key).copied()
        };
        if cached.is_some() {
            return Ok(cached);
        }
        let found = storage.api_key(key).await?.map(|k| k.account_id);
        if let Some(account) = found {
            let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
            known.insert(key, account);
        }
        Ok(found)
    }

    /// Forgets a deleted key.
    pub fn forget(&self, key: Uuid) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.remove(&key);
    }

    /// Forgets every key (another instance may have deleted some): each is
    /// read from storage again at its next use.
    pub fn clear(&self) {
        let mut known = self.known.write().unwrap_or_else(PoisonError::into_inner);
        known.clear();
    }
}
