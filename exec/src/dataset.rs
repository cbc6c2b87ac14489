//! Everything a query can read in this process: the ingester head (live and flushing
//! generations) and the opened blocks, with the object store the blocks live in.

use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use flamedb_ingest::head::symbols::SymbolPartition;
use flamedb_ingest::head::{Head, TenantHead};
use flamedb_storage::BlockSet;
use flamedb_storage::block::OpenBlock;
use object_store::ObjectStore;

/// The URL under which the bucket is registered in the session's runtime.
pub const BUCKET_URL: &str = "flamedb://bucket";

pub fn bucket_url() -> ObjectStoreUrl {
    // A constant, well-formed URL: parsing cannot fail.
    ObjectStoreUrl::parse(BUCKET_URL).unwrap_or_else(|_| ObjectStoreUrl::local_filesystem())
}

#[derive(Debug, Clone)]
pub struct Dataset {
    pub head: Arc<Head>,
    pub blocks: Arc<BlockSet>,
    pub store: Option<Arc<dyn ObjectStore>>,
}

/// What one tenant had at one instant: every profile is in exactly one of these.
#[derive(Debug, Clone, Default)]
pub struct TenantSnapshot {
    pub heads: Vec<Arc<TenantHead>>,
    pub blocks: Vec<Arc<OpenBlock>>,
}

impl Dataset {
    /// A head-only dataset (no bucket).
    pub fn in_memory(head: Arc<Head>) -> Self {
        Self { head, blocks: Arc::new(BlockSet::new()), store: None }
    }

    pub fn new(head: Arc<Head>, blocks: Arc<BlockSet>, store: Arc<dyn ObjectStore>) -> Self {
        Self { head, blocks, store: Some(store) }
    }

    /// The tenant's heads and blocks, consistent with concurrent flushes.
    pub fn snapshot(&self, tenant: &str) -> TenantSnapshot {
        self.head.snapshot(tenant, |heads| TenantSnapshot { heads, blocks: self.blocks.blocks(tenant) })
    }
}

/// The symbols of some tenants only. Partition keys are process-wide and SQL lets a user pass any
/// number where a key is expected (`stack(42, 7)`), so functions bound into a tenant's SQL session
/// resolve through this, and a key of another tenant's partition resolves to nothing.
#[derive(Debug, Clone)]
pub struct TenantSymbols {
    head: Arc<Head>,
    tenants: Vec<String>,
}

impl TenantSymbols {
    pub fn new(head: Arc<Head>, tenants: Vec<String>) -> Self {
        Self { head, tenants }
    }
}

impl crate::SymbolSource for TenantSymbols {
    fn partition(&self, key: u64) -> Option<Arc<SymbolPartition>> {
        self.head.tenant_partition(&self.tenants, key)
    }
}
