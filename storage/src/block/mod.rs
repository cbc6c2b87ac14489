//! The block format: an immutable, per-tenant set of files under `<tenant>/<ULID>/` in the
//! bucket (see `docs/block-format.md`).

pub mod meta;
pub mod read;
pub mod schema;
pub mod symbols;
pub mod write;

pub use meta::{BlockMeta, BlockStats, Compaction, FileMeta};
pub use read::{OpenBlock, open_block};
pub use write::{BuiltBlock, build_block, upload_block};

/// Errors of writing or reading a block.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("meta.json: {0}")]
    Meta(#[from] serde_json::Error),
    #[error("profile rows name symbol partition {0}, which the head does not hold")]
    MissingPartition(u64),
    #[error("inconsistent head: {0}")]
    Inconsistent(String),
    #[error("corrupt block {block}: {reason}")]
    Corrupt { block: String, reason: String },
}

/// The bucket directory of a block.
pub fn block_dir(tenant: &str, ulid: &str) -> String {
    format!("{tenant}/{ulid}")
}
