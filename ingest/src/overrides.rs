//! Per-tenant limit overrides (Pyroscope's runtime configuration `overrides:` block). Each
//! tenant's entry names only the limits it changes; every other limit falls back to the defaults
//! from flags and the `limits:` block. The set is swapped as a whole when the runtime file is
//! reloaded, so a request sees either the old or the new limits of a tenant, never a mix.

use std::collections::BTreeMap;
use std::sync::Arc;

use hashbrown::HashMap;
use parking_lot::RwLock;
use serde_json::Value;

use crate::validate::Limits;

/// Why an overrides document could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum OverridesError {
    #[error("the overrides of tenant {tenant:?} must be a mapping of limit names to values")]
    NotAMapping { tenant: String },
    #[error("invalid overrides for tenant {tenant:?}: {source}")]
    Invalid {
        tenant: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("serializing the default limits: {0}")]
    Defaults(#[source] serde_json::Error),
}

/// Tenant overrides resolved against the defaults.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Each overridden tenant's complete limits.
    pub tenants: BTreeMap<String, Limits>,
    /// `(tenant, key)` pairs naming no ingest limit: not applied (for the caller to log).
    pub ignored: Vec<(String, String)>,
}

/// Lays each tenant's partial limits (`{"ingestion_rate_mb": 1, ...}`) over `defaults`.
pub fn resolve(defaults: &Limits, tenants: &BTreeMap<String, Value>) -> Result<Resolved, OverridesError> {
    let base = match serde_json::to_value(defaults).map_err(OverridesError::Defaults)? {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let mut out = Resolved::default();
    for (tenant, entry) in tenants {
        let fields = match entry {
            Value::Object(m) => m.clone(),
            // `tenant:` with nothing under it overrides nothing.
            Value::Null => serde_json::Map::new(),
            _ => return Err(OverridesError::NotAMapping { tenant: tenant.clone() }),
        };
        let mut merged = base.clone();
        for (k, v) in fields {
            if merged.contains_key(&k) {
                merged.insert(k, v);
            } else {
                out.ignored.push((tenant.clone(), k));
            }
        }
        let limits: Limits = serde_json::from_value(Value::Object(merged))
            .map_err(|source| OverridesError::Invalid { tenant: tenant.clone(), source })?;
        out.tenants.insert(tenant.clone(), limits);
    }
    Ok(out)
}

/// The limits every tenant gets: the defaults, or its override.
#[derive(Debug)]
pub struct Overrides {
    defaults: Arc<Limits>,
    tenants: RwLock<Arc<HashMap<String, Arc<Limits>>>>,
}

impl Overrides {
    /// No tenant overridden yet.
    pub fn new(defaults: Arc<Limits>) -> Self {
        Self { defaults, tenants: RwLock::default() }
    }

    /// The limits of tenants without an override.
    pub fn defaults(&self) -> &Arc<Limits> {
        &self.defaults
    }

    /// The effective limits of `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> Arc<Limits> {
        self.tenants.read().get(tenant).cloned().unwrap_or_else(|| self.defaults.clone())
    }

    /// Replaces every override at once (a reload).
    pub fn replace(&self, resolved: BTreeMap<String, Limits>) {
        let map: HashMap<String, Arc<Limits>> = resolved.into_iter().map(|(t, l)| (t, Arc::new(l))).collect();
        *self.tenants.write() = Arc::new(map);
    }

    /// Tenants that have an override, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut t: Vec<String> = self.tenants.read().keys().cloned().collect();
        t.sort_unstable();
        t
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    fn tenants(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn missing_fields_fall_back_to_the_defaults() {
        let defaults = Limits { max_label_names_per_series: 12, ..Limits::default() };
        let r = resolve(
            &defaults,
            &tenants(json!({
                "a": {"ingestion_rate_mb": 1, "reject_older_than": "30m"},
                "b": {"max_label_names_per_series": 3},
                "c": null,
            })),
        )
        .unwrap();
        let a = &r.tenants["a"];
        assert_eq!(a.ingestion_rate_mb, 1.0);
        assert_eq!(a.reject_older_than, Duration::from_secs(1800));
        assert_eq!(a.max_label_names_per_series, 12, "from the defaults given, not Pyroscope's");
        assert_eq!(a.ingestion_burst_size_mb, 2.0);
        assert_eq!(r.tenants["b"].max_label_names_per_series, 3);
        assert_eq!(r.tenants["b"].ingestion_rate_mb, 4.0);
        assert_eq!(r.tenants["c"], defaults);
        assert!(r.ignored.is_empty());
    }

    #[test]
    fn unknown_keys_are_reported_and_bad_values_fail() {
        let r = resolve(&Limits::default(), &tenants(json!({"a": {"max_query_length": "1h", "ingestion_rate_mb": 8}})))
            .unwrap();
        assert_eq!(r.ignored, vec![("a".to_string(), "max_query_length".to_string())]);
        assert_eq!(r.tenants["a"].ingestion_rate_mb, 8.0);
        let e = resolve(&Limits::default(), &tenants(json!({"a": {"ingestion_rate_mb": "fast"}}))).unwrap_err();
        assert!(matches!(&e, OverridesError::Invalid { tenant, .. } if tenant == "a"), "{e}");
        let e = resolve(&Limits::default(), &tenants(json!({"a": [1, 2]}))).unwrap_err();
        assert!(matches!(e, OverridesError::NotAMapping { .. }));
        let e = resolve(&Limits::default(), &tenants(json!({"a": {"reject_older_than": "soon"}}))).unwrap_err();
        assert!(e.to_string().contains("\"a\""), "{e}");
    }

    #[test]
    fn lookups_and_replacement() {
        let o = Overrides::new(Arc::new(Limits::default()));
        assert_eq!(o.for_tenant("a").ingestion_rate_mb, 4.0);
        let r = resolve(o.defaults(), &tenants(json!({"a": {"ingestion_rate_mb": 1}}))).unwrap();
        o.replace(r.tenants);
        assert_eq!(o.for_tenant("a").ingestion_rate_mb, 1.0);
        assert_eq!(o.for_tenant("b").ingestion_rate_mb, 4.0, "others keep the defaults");
        assert_eq!(o.tenants(), vec!["a"]);
        o.replace(BTreeMap::new());
        assert_eq!(o.for_tenant("a").ingestion_rate_mb, 4.0, "a removed override falls back");
    }
}
