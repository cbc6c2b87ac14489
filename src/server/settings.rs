//! `settings.v1.SettingsService` (Get, Set, Delete): small per-tenant key/value settings Grafana
//! Profiles Drilldown keeps its preferences in, and `capabilities.v1.FeatureFlagsService`, the
//! features it asks about on load.
//!
//! Each tenant's settings are one JSON file, `<data-path>/settings/<tenant>.json`, replaced
//! atomically (written beside, synced, renamed) on every change, so a crash or restart keeps the
//! last acknowledged state. Writes are ordered by `modifiedAt` as Pyroscope orders them: a Set
//! older than the stored setting is refused with `already_exists`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use flamedb_proto::capabilities::v1 as caps;
use flamedb_proto::capabilities::v1::feature_flags_service_server::FeatureFlagsService;
use flamedb_proto::settings::v1 as s;
use flamedb_proto::settings::v1::settings_service_server::SettingsService;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};

use super::services::Api;
use super::tenant::{self, ORG_ID_HEADER};

/// Why the settings store failed.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("creating the settings directory {dir}: {source}")]
    CreateDir { dir: PathBuf, source: std::io::Error },
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid settings file: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("writing {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("failed to update {0}: newer update already written")]
    Conflict(String),
}

impl From<SettingsError> for Status {
    fn from(e: SettingsError) -> Self {
        match e {
            SettingsError::Conflict(_) => Status::already_exists(e.to_string()),
            other => {
                tracing::error!(error = %other, "settings store failed");
                Status::internal(other.to_string())
            }
        }
    }
}

/// One stored setting (the file format; field names as on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    value: String,
    #[serde(rename = "modifiedAt")]
    modified_at: i64,
}

/// The settings of every tenant, one file each.
#[derive(Debug)]
pub struct SettingsStore {
    dir: PathBuf,
    /// Serializes read-modify-write cycles (every tenant shares it: settings change rarely).
    lock: Mutex<()>,
}

impl SettingsStore {
    /// A store over `dir` (created when missing).
    pub fn open(dir: PathBuf) -> Result<Self, SettingsError> {
        std::fs::create_dir_all(&dir).map_err(|source| SettingsError::CreateDir { dir: dir.clone(), source })?;
        Ok(Self { dir, lock: Mutex::new(()) })
    }

    /// Tenant ids are validated (letters, digits, `!-_.*'()`, never `.` or `..`), so they are
    /// safe as file names.
    fn path(&self, tenant: &str) -> PathBuf {
        self.dir.join(format!("{tenant}.json"))
    }

    fn load(&self, tenant: &str) -> Result<BTreeMap<String, Stored>, SettingsError> {
        let path = self.path(tenant);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|source| SettingsError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(source) => Err(SettingsError::Read { path, source }),
        }
    }

    fn save(&self, tenant: &str, settings: &BTreeMap<String, Stored>) -> Result<(), SettingsError> {
        let path = self.path(tenant);
        let tmp = self.dir.join(format!(".{tenant}.json.tmp"));
        let write = || -> std::io::Result<()> {
            let body = serde_json::to_vec_pretty(settings).map_err(std::io::Error::other)?;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&body)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&self.dir)
        };
        write().map_err(|source| SettingsError::Write { path, source })
    }

    /// The tenant's settings, sorted by name.
    pub fn get(&self, tenant: &str) -> Result<Vec<s::Setting>, SettingsError> {
        let _guard = self.lock.lock();
        let all = self.load(tenant)?;
        Ok(all.into_iter().map(|(name, v)| s::Setting { name, value: v.value, modified_at: v.modified_at }).collect())
    }

    /// Stores `setting` unless the stored one is newer; a missing `modifiedAt` (0 or negative)
    /// means now.
    pub fn set(&self, tenant: &str, mut setting: s::Setting) -> Result<s::Setting, SettingsError> {
        if setting.modified_at <= 0 {
            setting.modified_at = now_millis();
        }
        let _guard = self.lock.lock();
        let mut all = self.load(tenant)?;
        if all.get(&setting.name).is_some_and(|old| old.modified_at > setting.modified_at) {
            return Err(SettingsError::Conflict(setting.name));
        }
        all.insert(setting.name.clone(), Stored { value: setting.value.clone(), modified_at: setting.modified_at });
        self.save(tenant, &all)?;
        Ok(setting)
    }

    /// Removes a setting; removing one that does not exist succeeds.
    pub fn delete(&self, tenant: &str, name: &str) -> Result<(), SettingsError> {
        let _guard = self.lock.lock();
        let mut all = self.load(tenant)?;
        if all.remove(name).is_some() {
            self.save(tenant, &all)?;
        }
        Ok(())
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Api {
    fn settings_tenant<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let header = request.metadata().get(ORG_ID_HEADER).and_then(|v| v.to_str().ok());
        Ok(tenant::write_tenant(header, self.multitenancy)?)
    }

    /// Runs a store operation off the I/O threads (it reads, writes and fsyncs files).
    async fn on_store<R, F>(&self, f: F) -> Result<R, Status>
    where
        R: Send + 'static,
        F: FnOnce(&SettingsStore) -> Result<R, SettingsError> + Send + 'static,
    {
        let store: Arc<SettingsStore> = self.settings.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Status::internal(format!("settings task failed: {e}")))?
            .map_err(Status::from)
    }
}

#[tonic::async_trait]
impl SettingsService for Api {
    async fn get(&self, request: Request<s::GetSettingsRequest>) -> Result<Response<s::GetSettingsResponse>, Status> {
        let tenant = self.settings_tenant(&request)?;
        let settings = self.on_store(move |st| st.get(&tenant)).await?;
        Ok(Response::new(s::GetSettingsResponse { settings }))
    }

    async fn set(&self, request: Request<s::SetSettingsRequest>) -> Result<Response<s::SetSettingsResponse>, Status> {
        let tenant = self.settings_tenant(&request)?;
        let Some(setting) = request.into_inner().setting else {
            return Err(Status::invalid_argument("no setting values provided"));
        };
        if setting.name.is_empty() {
            return Err(Status::invalid_argument("the setting has no name"));
        }
        let setting = self.on_store(move |st| st.set(&tenant, setting)).await?;
        Ok(Response::new(s::SetSettingsResponse { setting: Some(setting) }))
    }

    async fn delete(
        &self,
        request: Request<s::DeleteSettingsRequest>,
    ) -> Result<Response<s::DeleteSettingsResponse>, Status> {
        let tenant = self.settings_tenant(&request)?;
        let name = request.into_inner().name;
        if name.is_empty() {
            return Err(Status::invalid_argument("the setting has no name"));
        }
        self.on_store(move |st| st.delete(&tenant, &name)).await?;
        Ok(Response::new(s::DeleteSettingsResponse {}))
    }
}

/// The flags this server announces, with whether it has the feature.
const FEATURE_FLAGS: &[(&str, bool, &str)] = &[
    ("v2StorageLayer", false, "Pyroscope's v2 storage layer (segment writer and metastore)."),
    ("pyroscopeRuler", false, "Recording rules that turn profiles into metrics."),
    ("pyroscopeRulerFunctions", false, "Recording rules over individual functions."),
    ("utf8LabelNames", true, "Label names may hold any UTF-8 character."),
];

/// The feature flags of this build (the same for every tenant).
pub fn feature_flags() -> Vec<caps::FeatureFlag> {
    FEATURE_FLAGS
        .iter()
        .map(|&(name, enabled, description)| caps::FeatureFlag {
            name: name.to_string(),
            enabled,
            description: Some(description.to_string()),
            documentation_url: None,
        })
        .collect()
}

#[tonic::async_trait]
impl FeatureFlagsService for Api {
    async fn get_feature_flags(
        &self,
        request: Request<caps::GetFeatureFlagsRequest>,
    ) -> Result<Response<caps::GetFeatureFlagsResponse>, Status> {
        // Pyroscope answers per tenant, so an unauthenticated call fails the same way here.
        tenant::read_tenants(request.metadata().get(ORG_ID_HEADER).and_then(|v| v.to_str().ok()), self.multitenancy)?;
        Ok(Response::new(caps::GetFeatureFlagsResponse { feature_flags: feature_flags() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, value: &str, at: i64) -> s::Setting {
        s::Setting { name: name.into(), value: value.into(), modified_at: at }
    }

    #[test]
    fn set_get_delete_and_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let st = SettingsStore::open(dir.path().join("settings")).unwrap();
        assert!(st.get("a").unwrap().is_empty());
        st.set("a", setting("z", "1", 100)).unwrap();
        st.set("a", setting("b", "2", 100)).unwrap();
        st.set("other", setting("b", "x", 5)).unwrap();
        let got = st.get("a").unwrap();
        assert_eq!(got, vec![setting("b", "2", 100), setting("z", "1", 100)], "sorted by name");
        assert!(matches!(st.set("a", setting("b", "old", 99)), Err(SettingsError::Conflict(n)) if n == "b"));
        st.set("a", setting("b", "same-time", 100)).unwrap();
        let now = st.set("a", setting("b", "now", 0)).unwrap();
        assert!(now.modified_at > 1_600_000_000_000, "{now:?}");
        st.delete("a", "z").unwrap();
        st.delete("a", "missing").unwrap();
        let reopened = SettingsStore::open(dir.path().join("settings")).unwrap();
        assert_eq!(reopened.get("a").unwrap(), vec![now]);
        assert_eq!(reopened.get("other").unwrap(), vec![setting("b", "x", 5)]);
        assert!(!dir.path().join("settings/.a.json.tmp").exists());
    }

    #[test]
    fn corrupt_file_is_an_error_not_an_empty_set() {
        let dir = tempfile::tempdir().unwrap();
        let st = SettingsStore::open(dir.path().to_path_buf()).unwrap();
        std::fs::write(dir.path().join("t.json"), b"{not json").unwrap();
        assert!(matches!(st.get("t"), Err(SettingsError::Parse { .. })));
        assert!(st.set("t", setting("a", "b", 1)).is_err(), "a broken file is never overwritten blindly");
    }

    #[test]
    fn flags() {
        let f = feature_flags();
        let names: Vec<(&str, bool)> = f.iter().map(|f| (f.name.as_str(), f.enabled)).collect();
        assert_eq!(
            names,
            [
                ("v2StorageLayer", false),
                ("pyroscopeRuler", false),
                ("pyroscopeRulerFunctions", false),
                ("utf8LabelNames", true)
            ]
        );
    }
}
