//! Object storage for flamedb blocks: the bucket configuration in Pyroscope's YAML shape
//! (`storage: backend: s3 ...`) opened through `object_store`, the block format, the per-tenant
//! bucket index that spares readers a bucket listing, and retention.

pub mod block;
pub mod blocks;
pub mod bucket_index;
pub mod config;
pub mod flush;
pub mod load;
pub mod retention;
#[cfg(feature = "testing")]
pub mod testing;

pub use blocks::BlockSet;
pub use bucket_index::{BucketIndex, DeletionMark, IndexError, RebuildReport};
pub use config::{AzureConfig, Backend, FilesystemConfig, GcsConfig, S3Config, StorageConfig, StorageError, open};
pub use retention::{RetentionReport, apply_retention};
