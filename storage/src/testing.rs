//! Test helpers (feature `testing`): an S3 server running inside the test process.
//!
//! Why in-process: MinIO is not installable here and an external process needs orchestration
//! and cleanup; s3s-fs serves the S3 API over a temporary directory from a tokio task, so S3
//! code paths (signing, multipart, listing) run in plain `cargo test`, in CI too.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::config::{Backend, S3Config, StorageConfig};

/// Credentials the test server accepts (and [`S3Server::storage_config`] sends).
pub const ACCESS_KEY: &str = "flamedb-test-access-key";
pub const SECRET_KEY: &str = "flamedb-test-secret-key";
/// Region the client signs for; s3s-fs accepts any.
pub const REGION: &str = "us-east-1";

/// An S3 server (s3s-fs) on `127.0.0.1:<random port>` with one bucket, serving from a temporary
/// directory. It stops, and the directory is removed, when the value is dropped; it runs on the
/// tokio runtime that started it, so start it inside the test's runtime.
pub struct S3Server {
    /// `127.0.0.1:PORT`, without scheme, as Pyroscope's `s3.endpoint` takes it.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl S3Server {
    /// Starts the server with an empty `bucket`. Panics if it cannot (a broken test environment,
    /// not something a test can recover from); [`S3Server::try_start`] returns the error instead.
    pub async fn start(bucket: &str) -> S3Server {
        match Self::try_start(bucket).await {
            Ok(server) => server,
            Err(e) => panic!("starting the in-process S3 server for bucket {bucket:?}: {e}"),
        }
    }

    /// Starts the server with an empty `bucket` (a sub-directory of its root, created up front,
    /// since s3s-fs has no bucket of its own).
    pub async fn try_start(bucket: &str) -> io::Result<S3Server> {
        let dir = tempfile::Builder::new().prefix("flamedb-s3-").tempdir()?;
        std::fs::create_dir_all(dir.path().join(bucket))?;

        let fs = s3s_fs::FileSystem::new(dir.path()).map_err(|e| io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();

        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let (tx, mut rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(error) => {
                            tracing::warn!(%error, "test S3 server: accept failed");
                            continue;
                        }
                    },
                    _ = &mut rx => break,
                };
                let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                tokio::spawn(async move {
                    // A client hanging up mid-request is normal in tests (dropped streams).
                    let _ = conn.await;
                });
            }
        });

        Ok(S3Server {
            endpoint: addr.to_string(),
            access_key: ACCESS_KEY.to_string(),
            secret_key: SECRET_KEY.to_string(),
            bucket: bucket.to_string(),
            dir,
            shutdown: Some(tx),
        })
    }

    /// The server's root directory (buckets are its sub-directories).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The bucket's directory: objects are files under it, for asserting what landed where.
    pub fn bucket_dir(&self) -> PathBuf {
        self.dir.path().join(&self.bucket)
    }

    /// A `storage` config pointing at this server: plain http, path-style addressing.
    pub fn storage_config(&self) -> StorageConfig {
        StorageConfig {
            backend: Backend::S3,
            s3: S3Config {
                bucket_name: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
                region: REGION.to_string(),
                access_key_id: self.access_key.clone(),
                secret_access_key: self.secret_key.clone(),
                insecure: true,
                force_path_style: true,
                ..S3Config::default()
            },
            ..StorageConfig::default()
        }
    }

    /// The same as YAML: a top-level `storage:` block to put in a `-config.file` for the flamedb
    /// binary.
    pub fn yaml(&self) -> String {
        format!(
            "storage:\n  backend: s3\n  s3:\n    bucket_name: {}\n    endpoint: {}\n    region: {REGION}\n    \
             access_key_id: {}\n    secret_access_key: {}\n    insecure: true\n    force_path_style: true\n",
            self.bucket, self.endpoint, self.access_key, self.secret_key
        )
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            // The accept loop may already be gone with its runtime; nothing to stop then.
            let _ = tx.send(());
        }
    }
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("root", &self.dir.path())
            .finish_non_exhaustive()
    }
}
