//! Object storage for flamedb blocks. Today: the bucket configuration in Pyroscope's YAML shape
//! (`storage: backend: filesystem ...`) and opening it through `object_store`; the block format,
//! bucket index and compactor build on this.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use serde::Deserialize;

/// Which object store holds the blocks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A directory on the local disk (the default, for single-node installs).
    #[default]
    Filesystem,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FilesystemConfig {
    /// Bucket directory; unset means `bucket/` under the data path.
    pub dir: Option<PathBuf>,
}

/// The `storage` block of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub backend: Backend,
    pub filesystem: FilesystemConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("creating bucket directory {dir}: {source}")]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("opening object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl StorageConfig {
    /// Where a filesystem bucket lives, given the data path.
    pub fn filesystem_dir(&self, data_path: &std::path::Path) -> PathBuf {
        self.filesystem.dir.clone().unwrap_or_else(|| data_path.join("bucket"))
    }
}

/// Opens the configured bucket, creating a filesystem bucket's directory when missing.
pub fn open(cfg: &StorageConfig, data_path: &std::path::Path) -> Result<Arc<dyn ObjectStore>, StorageError> {
    match cfg.backend {
        Backend::Filesystem => {
            let dir = cfg.filesystem_dir(data_path);
            std::fs::create_dir_all(&dir).map_err(|source| StorageError::CreateDir { dir: dir.clone(), source })?;
            Ok(Arc::new(LocalFileSystem::new_with_prefix(&dir)?))
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::path::Path;

    use super::*;

    #[tokio::test]
    async fn filesystem_bucket_stores_objects_under_its_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = StorageConfig::default();
        let store = open(&cfg, tmp.path()).unwrap();
        store.put(&Path::from("tenant/block/meta.json"), b"{}".to_vec().into()).await.unwrap();
        let got = store.get(&Path::from("tenant/block/meta.json")).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"{}");
        assert!(tmp.path().join("bucket/tenant/block/meta.json").exists(), "default: bucket/ under the data path");
    }

    #[test]
    fn yaml_shape() {
        let c: StorageConfig = serde_yaml_ng::from_str("backend: filesystem\nfilesystem:\n  dir: /x\n").unwrap();
        assert_eq!(c.filesystem_dir(std::path::Path::new("/data")), PathBuf::from("/x"));
        assert_eq!(
            StorageConfig::default().filesystem_dir(std::path::Path::new("/data")),
            PathBuf::from("/data/bucket")
        );
        assert!(serde_yaml_ng::from_str::<StorageConfig>("backend: floppy\n").is_err());
    }
}
