//! The `storage:` block in Pyroscope's YAML shape, and opening the bucket it names.
//!
//! Pyroscope (through thanos/objstore) configures the block bucket as
//!
//! ```yaml
//! storage:
//!   backend: s3            # filesystem | s3 | gcs | azure
//!   prefix: flamedb        # optional key prefix inside the bucket
//!   s3:
//!     bucket_name: profiles
//!     endpoint: localhost:9000   # host[:port], no scheme
//!     insecure: true             # plain http
//! ```
//!
//! so an existing Pyroscope configuration file points flamedb at the same bucket. Keys Pyroscope has
//! and flamedb does not use (`sse`, `http`, ...) are ignored rather than rejected, for the same reason.

use std::fmt;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use serde::Deserialize;

/// Which object store holds the blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A directory on the local disk (the default, for single-node installs). Pyroscope's empty
    /// `backend: ""` means the same, so it is accepted as an alias.
    #[default]
    #[serde(alias = "")]
    Filesystem,
    /// Amazon S3 or anything speaking its API (MinIO, Ceph, R2, ...).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

impl Backend {
    /// The name used in the YAML, for error messages and logs.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Filesystem => "filesystem",
            Backend::S3 => "s3",
            Backend::Gcs => "gcs",
            Backend::Azure => "azure",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `storage.filesystem`: a bucket that is a local directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct FilesystemConfig {
    /// Bucket directory; unset means `bucket/` under the data path.
    pub dir: Option<PathBuf>,
}

/// `storage.s3`, with thanos/Pyroscope's key names so their configuration files carry over.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct S3Config {
    pub bucket_name: String,
    /// `host[:port]` without a scheme, as Pyroscope takes it (`insecure` picks http); a full URL
    /// is accepted too. Empty means AWS itself, derived from `region`.
    pub endpoint: String,
    /// Empty means `AWS_REGION`/`AWS_DEFAULT_REGION`, else `us-east-1`.
    pub region: String,
    /// With `secret_access_key`: static credentials. Empty: the `AWS_*` environment, web
    /// identity or instance metadata, as the AWS SDKs do.
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' session token (optional).
    pub session_token: String,
    /// Talk plain http to `endpoint` (local MinIO and test servers).
    pub insecure: bool,
    /// Always address the bucket as `endpoint/bucket` rather than `bucket.endpoint`. Off means
    /// minio-go's "auto": virtual-hosted style for AWS, path style for every other endpoint.
    pub force_path_style: bool,
}

impl fmt::Debug for S3Config {
    // Hand-written so the secret never reaches a log line through `{:?}` of the whole config.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket_name", &self.bucket_name)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &redacted(&self.secret_access_key))
            .field("session_token", &redacted(&self.session_token))
            .field("insecure", &self.insecure)
            .field("force_path_style", &self.force_path_style)
            .finish()
    }
}

/// `storage.gcs`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GcsConfig {
    pub bucket_name: String,
    /// The service account key itself (JSON text, not a path). Empty: application default
    /// credentials (`GOOGLE_APPLICATION_CREDENTIALS`, `GOOGLE_SERVICE_ACCOUNT`, metadata server).
    pub service_account: String,
}

impl fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket_name", &self.bucket_name)
            .field("service_account", &redacted(&self.service_account))
            .finish()
    }
}

/// `storage.azure`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct AzureConfig {
    pub account_name: String,
    /// Shared key (base64). Empty: the `AZURE_*` environment or managed identity.
    pub account_key: String,
    pub container_name: String,
    /// Host suffix after the account name; empty means `blob.core.windows.net` (public cloud).
    pub endpoint_suffix: String,
}

impl fmt::Debug for AzureConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureConfig")
            .field("account_name", &self.account_name)
            .field("account_key", &redacted(&self.account_key))
            .field("container_name", &self.container_name)
            .field("endpoint_suffix", &self.endpoint_suffix)
            .finish()
    }
}

fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { "<redacted>" }
}

/// The `storage` block of the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub backend: Backend,
    /// Key prefix inside the bucket, so one bucket can hold several installs. Empty: none.
    pub prefix: String,
    pub filesystem: FilesystemConfig,
    pub s3: S3Config,
    pub gcs: GcsConfig,
    pub azure: AzureConfig,
}

/// Why the bucket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("creating bucket directory {dir}: {source}")]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("opening object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The backend's client rejected its settings (missing bucket, bad key, bad URL, ...).
    #[error("configuring the {backend} bucket: {source}")]
    Build { backend: Backend, source: object_store::Error },
    #[error("storage.{backend}.{field} is required")]
    MissingField { backend: Backend, field: &'static str },
    #[error("storage.prefix {prefix:?} is not a valid object key prefix: {source}")]
    InvalidPrefix { prefix: String, source: object_store::path::Error },
}

impl StorageConfig {
    /// Where a filesystem bucket lives, given the data path.
    pub fn filesystem_dir(&self, data_path: &FsPath) -> PathBuf {
        self.filesystem.dir.clone().unwrap_or_else(|| data_path.join("bucket"))
    }

    /// A one-line, secret-free description of the bucket for startup logs
    /// (`s3://profiles/flamedb at http://localhost:9000`).
    pub fn location(&self, data_path: &FsPath) -> String {
        let prefix = self.prefix.trim_matches('/');
        let with_prefix = |base: String| if prefix.is_empty() { base } else { format!("{base}/{prefix}") };
        match self.backend {
            Backend::Filesystem => with_prefix(self.filesystem_dir(data_path).display().to_string()),
            Backend::S3 => {
                let base = with_prefix(format!("s3://{}", self.s3.bucket_name));
                match s3_endpoint_url(&self.s3) {
                    Some(url) => format!("{base} at {url}"),
                    None => base,
                }
            }
            Backend::Gcs => with_prefix(format!("gs://{}", self.gcs.bucket_name)),
            Backend::Azure => with_prefix(format!("azure://{}/{}", self.azure.account_name, self.azure.container_name)),
        }
    }

    /// The prefix as an object path, `None` when unset.
    fn prefix_path(&self) -> Result<Option<Path>, StorageError> {
        let prefix = self.prefix.trim_matches('/');
        if prefix.is_empty() {
            return Ok(None);
        }
        Path::parse(prefix)
            .map(Some)
            .map_err(|source| StorageError::InvalidPrefix { prefix: self.prefix.clone(), source })
    }
}

/// Opens the configured bucket, creating a filesystem bucket's directory when missing.
///
/// Building a cloud client makes no request, so a wrong endpoint or key shows up on first use,
/// not here; only settings the client can check offline (missing bucket, malformed key) fail now.
pub fn open(cfg: &StorageConfig, data_path: &FsPath) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let store: Arc<dyn ObjectStore> = match cfg.backend {
        Backend::Filesystem => {
            let dir = cfg.filesystem_dir(data_path);
            std::fs::create_dir_all(&dir).map_err(|source| StorageError::CreateDir { dir: dir.clone(), source })?;
            Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
        }
        Backend::S3 => Arc::new(s3_builder(&cfg.s3)?.with_retry(retry()).build().map_err(build_err(Backend::S3))?),
        Backend::Gcs => Arc::new(gcs_builder(&cfg.gcs)?.with_retry(retry()).build().map_err(build_err(Backend::Gcs))?),
        Backend::Azure => {
            Arc::new(azure_builder(&cfg.azure)?.with_retry(retry()).build().map_err(build_err(Backend::Azure))?)
        }
    };
    Ok(match cfg.prefix_path()? {
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix)),
        None => store,
    })
}

fn build_err(backend: Backend) -> impl FnOnce(object_store::Error) -> StorageError {
    move |source| StorageError::Build { backend, source }
}

/// The endpoint as a URL: Pyroscope's scheme-less `host:port` gets http or https from `insecure`.
fn s3_endpoint_url(cfg: &S3Config) -> Option<String> {
    let endpoint = cfg.endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        None
    } else if endpoint.contains("://") {
        Some(endpoint.to_string())
    } else {
        let scheme = if cfg.insecure { "http" } else { "https" };
        Some(format!("{scheme}://{endpoint}"))
    }
}

fn is_aws_endpoint(endpoint: &str) -> bool {
    let host = endpoint.rsplit("://").next().unwrap_or(endpoint);
    let host = host.split(['/', ':']).next().unwrap_or(host);
    host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")
}

/// Retries of one request inside the client: few and short, because the flush retries whole
/// uploads with its own backoff and keeps the data in the head and the WAL meanwhile.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(30),
    }
}

fn s3_builder(cfg: &S3Config) -> Result<AmazonS3Builder, StorageError> {
    if cfg.bucket_name.is_empty() {
        return Err(StorageError::MissingField { backend: Backend::S3, field: "bucket_name" });
    }
    // Explicit keys make the config self-contained: `AWS_*` variables in the environment must not
    // leak a session token or another endpoint into it. Without keys, the environment is the source.
    let static_keys = !cfg.access_key_id.is_empty() && !cfg.secret_access_key.is_empty();
    let mut b = if static_keys {
        AmazonS3Builder::new().with_access_key_id(&cfg.access_key_id).with_secret_access_key(&cfg.secret_access_key)
    } else {
        AmazonS3Builder::from_env()
    };
    b = b.with_bucket_name(&cfg.bucket_name);
    if !cfg.session_token.is_empty() {
        b = b.with_token(&cfg.session_token);
    }
    if !cfg.region.is_empty() {
        b = b.with_region(&cfg.region);
    }
    match s3_endpoint_url(cfg) {
        Some(url) => {
            let allow_http = url.starts_with("http://");
            // object_store expects a virtual-hosted endpoint to already name the bucket.
            if !cfg.force_path_style && is_aws_endpoint(&url) {
                let (scheme, host) = url.split_once("://").unwrap_or(("https", url.as_str()));
                b = b
                    .with_endpoint(format!("{scheme}://{}.{host}", cfg.bucket_name))
                    .with_virtual_hosted_style_request(true);
            } else {
                b = b.with_endpoint(url).with_virtual_hosted_style_request(false);
            }
            b = b.with_allow_http(allow_http);
        }
        None => b = b.with_virtual_hosted_style_request(!cfg.force_path_style),
    }
    Ok(b)
}

fn gcs_builder(cfg: &GcsConfig) -> Result<GoogleCloudStorageBuilder, StorageError> {
    if cfg.bucket_name.is_empty() {
        return Err(StorageError::MissingField { backend: Backend::Gcs, field: "bucket_name" });
    }
    let b = if cfg.service_account.trim().is_empty() {
        GoogleCloudStorageBuilder::from_env()
    } else {
        // Not from_env(): a GOOGLE_SERVICE_ACCOUNT path there plus this key is an error in the builder.
        GoogleCloudStorageBuilder::new().with_service_account_key(&cfg.service_account)
    };
    Ok(b.with_bucket_name(&cfg.bucket_name))
}

fn azure_builder(cfg: &AzureConfig) -> Result<MicrosoftAzureBuilder, StorageError> {
    if cfg.account_name.is_empty() {
        return Err(StorageError::MissingField { backend: Backend::Azure, field: "account_name" });
    }
    if cfg.container_name.is_empty() {
        return Err(StorageError::MissingField { backend: Backend::Azure, field: "container_name" });
    }
    let mut b = if cfg.account_key.is_empty() {
        MicrosoftAzureBuilder::from_env()
    } else {
        MicrosoftAzureBuilder::new().with_access_key(&cfg.account_key)
    };
    b = b.with_account(&cfg.account_name).with_container_name(&cfg.container_name);
    let suffix = cfg.endpoint_suffix.trim().trim_matches('.');
    if !suffix.is_empty() {
        b = b.with_endpoint(format!("https://{}.{suffix}", cfg.account_name));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    fn parse(yaml: &str) -> StorageConfig {
        serde_yaml_ng::from_str(yaml).expect("valid storage yaml")
    }

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

    #[tokio::test]
    async fn prefix_puts_every_key_under_it() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg =
            parse(&format!("backend: filesystem\nprefix: /install-a/\nfilesystem:\n  dir: {}\n", tmp.path().display()));
        let store = open(&cfg, tmp.path()).unwrap();
        store.put(&Path::from("t/x"), b"1".to_vec().into()).await.unwrap();
        assert!(tmp.path().join("install-a/t/x").exists());
        let bad = StorageConfig { prefix: "a/../b".into(), ..StorageConfig::default() };
        assert!(matches!(open(&bad, tmp.path()), Err(StorageError::InvalidPrefix { .. })));
    }

    #[test]
    fn yaml_shape() {
        let c = parse("backend: filesystem\nfilesystem:\n  dir: /x\n");
        assert_eq!(c.filesystem_dir(std::path::Path::new("/data")), PathBuf::from("/x"));
        assert_eq!(
            StorageConfig::default().filesystem_dir(std::path::Path::new("/data")),
            PathBuf::from("/data/bucket")
        );
        assert_eq!(parse("backend: ''\n").backend, Backend::Filesystem);
        assert!(serde_yaml_ng::from_str::<StorageConfig>("backend: floppy\n").is_err());
    }

    #[test]
    fn unknown_backend_names_the_choices() {
        let err = serde_yaml_ng::from_str::<StorageConfig>("backend: swift\n").unwrap_err().to_string();
        assert!(err.contains("swift") && err.contains("s3") && err.contains("azure"), "{err}");
    }

    #[test]
    fn s3_yaml() {
        let c = parse(
            "backend: s3\nprefix: flamedb\ns3:\n  bucket_name: profiles\n  endpoint: localhost:9000\n  region: eu-west-1\n  \
             access_key_id: AK\n  secret_access_key: SK\n  insecure: true\n  force_path_style: true\n  sse:\n    type: SSE-S3\n",
        );
        assert_eq!(c.backend, Backend::S3);
        assert_eq!(c.prefix, "flamedb");
        let s3 = &c.s3;
        assert_eq!(
            (s3.bucket_name.as_str(), s3.endpoint.as_str(), s3.region.as_str()),
            ("profiles", "localhost:9000", "eu-west-1")
        );
        assert_eq!((s3.access_key_id.as_str(), s3.secret_access_key.as_str()), ("AK", "SK"));
        assert!(s3.insecure && s3.force_path_style);
        assert_eq!(s3_endpoint_url(s3).as_deref(), Some("http://localhost:9000"));
        assert_eq!(c.location(FsPath::new("/d")), "s3://profiles/flamedb at http://localhost:9000");
        assert!(!format!("{c:?}").contains("SK"), "secret must not be in Debug output");
        open(&c, FsPath::new("/nonexistent")).expect("an s3 client builds without network access");
    }

    #[test]
    fn s3_endpoints_and_lookup_style() {
        let s3 = S3Config { bucket_name: "b".into(), endpoint: "https://minio:9000/".into(), ..S3Config::default() };
        assert_eq!(s3_endpoint_url(&s3).as_deref(), Some("https://minio:9000"));
        assert_eq!(
            s3_endpoint_url(&S3Config { endpoint: "minio:9000".into(), ..s3.clone() }).as_deref(),
            Some("https://minio:9000")
        );
        assert!(is_aws_endpoint("https://s3.eu-west-1.amazonaws.com"));
        assert!(!is_aws_endpoint("http://localhost:9000"));
        let aws = S3Config { endpoint: "s3.eu-west-1.amazonaws.com".into(), ..s3.clone() };
        let cfg = StorageConfig { backend: Backend::S3, s3: aws, ..StorageConfig::default() };
        open(&cfg, FsPath::new("/nonexistent")).expect("virtual-hosted AWS endpoint");
        let missing = StorageConfig { backend: Backend::S3, ..StorageConfig::default() };
        assert!(matches!(
            open(&missing, FsPath::new("/x")),
            Err(StorageError::MissingField { backend: Backend::S3, field: "bucket_name" })
        ));
    }

    #[test]
    fn gcs_yaml() {
        let c = parse(
            "backend: gcs\ngcs:\n  bucket_name: profiles\n  service_account: '{\"type\": \"service_account\"}'\n",
        );
        assert_eq!(c.backend, Backend::Gcs);
        assert_eq!(c.gcs.bucket_name, "profiles");
        assert_eq!(c.gcs.service_account, "{\"type\": \"service_account\"}");
        assert_eq!(c.location(FsPath::new("/d")), "gs://profiles");
        assert!(!format!("{c:?}").contains("service_account\\\""), "key must not be in Debug output");
        // An incomplete key is caught when the client is built, named after the backend.
        let err = open(&c, FsPath::new("/x")).expect_err("incomplete service account key");
        assert!(matches!(err, StorageError::Build { backend: Backend::Gcs, .. }), "{err}");
    }

    #[test]
    fn azure_yaml() {
        let c = parse(
            "backend: azure\nazure:\n  account_name: acct\n  account_key: a2V5\n  container_name: profiles\n  \
             endpoint_suffix: blob.core.chinacloudapi.cn\n",
        );
        assert_eq!(c.backend, Backend::Azure);
        assert_eq!(
            (c.azure.account_name.as_str(), c.azure.account_key.as_str(), c.azure.container_name.as_str()),
            ("acct", "a2V5", "profiles")
        );
        assert_eq!(c.azure.endpoint_suffix, "blob.core.chinacloudapi.cn");
        assert!(!format!("{c:?}").contains("a2V5"));
        open(&c, FsPath::new("/nonexistent")).expect("an azure client builds without network access");
        let no_container = StorageConfig {
            backend: Backend::Azure,
            azure: AzureConfig { account_name: "acct".into(), ..AzureConfig::default() },
            ..StorageConfig::default()
        };
        assert!(matches!(
            open(&no_container, FsPath::new("/x")),
            Err(StorageError::MissingField { backend: Backend::Azure, field: "container_name" })
        ));
    }
}
