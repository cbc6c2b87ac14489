//! The blocks a process serves, per tenant: opened once (index and symbols in memory) and shared
//! by every query until retention or compaction removes them.

use std::sync::Arc;

use hashbrown::HashMap;
use parking_lot::RwLock;

use crate::block::OpenBlock;

#[derive(Debug, Default)]
pub struct BlockSet {
    tenants: RwLock<HashMap<String, Vec<Arc<OpenBlock>>>>,
}

impl BlockSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a block; a block already present (same ULID) is kept as is.
    pub fn add(&self, block: Arc<OpenBlock>) -> bool {
        let mut t = self.tenants.write();
        let list = t.entry_ref(block.tenant.as_str()).or_default();
        if list.iter().any(|b| b.meta.ulid == block.meta.ulid) {
            return false;
        }
        list.push(block);
        list.sort_by_key(|b| (b.meta.min_time, b.meta.ulid.clone()));
        true
    }

    pub fn remove(&self, tenant: &str, ulid: &str) -> Option<Arc<OpenBlock>> {
        let mut t = self.tenants.write();
        let list = t.get_mut(tenant)?;
        let i = list.iter().position(|b| b.meta.ulid == ulid)?;
        Some(list.remove(i))
    }

    pub fn contains(&self, tenant: &str, ulid: &str) -> bool {
        self.tenants.read().get(tenant).is_some_and(|l| l.iter().any(|b| b.meta.ulid == ulid))
    }

    /// The tenant's blocks, oldest first.
    pub fn blocks(&self, tenant: &str) -> Vec<Arc<OpenBlock>> {
        self.tenants.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Blocks of every tenant.
    pub fn len(&self) -> usize {
        self.tenants.read().values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
