//! Tenancy by `X-Scope-OrgID`: `anonymous` when multitenancy is off (the header is ignored), 401
//! when it is on and the header is missing or invalid, `a|b` for reads over several tenants.

use tonic::Status;

/// The header every Grafana-family client sends the tenant in.
pub const ORG_ID_HEADER: &str = "x-scope-orgid";
/// The tenant of every request when multitenancy is off.
pub const ANONYMOUS: &str = "anonymous";

const MAX_TENANT_LEN: usize = 150;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    #[error("no org id")]
    Missing,
    #[error("tenant ID is too long: max {MAX_TENANT_LEN} characters")]
    TooLong,
    #[error("tenant ID '{0}' is invalid: only letters, digits and !-_.*'() are allowed")]
    InvalidChars(String),
    #[error("tenant ID is '.' or '..'")]
    Dots,
    #[error("multiple org IDs present")]
    Multiple,
}

impl From<TenantError> for Status {
    fn from(e: TenantError) -> Self {
        Status::unauthenticated(e.to_string())
    }
}

fn validate(id: &str) -> Result<(), TenantError> {
    if id.len() > MAX_TENANT_LEN {
        return Err(TenantError::TooLong);
    }
    if id == "." || id == ".." {
        return Err(TenantError::Dots);
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || "!-_.*'()".contains(c)) {
        return Err(TenantError::InvalidChars(id.to_string()));
    }
    Ok(())
}

/// The tenants a request reads: sorted, de-duplicated.
pub fn read_tenants(header: Option<&str>, multitenancy: bool) -> Result<Vec<String>, TenantError> {
    if !multitenancy {
        return Ok(vec![ANONYMOUS.to_string()]);
    }
    let header = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(TenantError::Missing)?;
    let mut ids: Vec<String> = header.split('|').map(|s| s.trim().to_string()).collect();
    for id in &ids {
        if id.is_empty() {
            return Err(TenantError::Missing);
        }
        validate(id)?;
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// The one tenant a write goes to.
pub fn write_tenant(header: Option<&str>, multitenancy: bool) -> Result<String, TenantError> {
    let mut ids = read_tenants(header, multitenancy)?;
    if ids.len() != 1 {
        return Err(TenantError::Multiple);
    }
    Ok(ids.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(read_tenants(None, false).unwrap(), vec!["anonymous"]);
        assert_eq!(read_tenants(Some("x"), false).unwrap(), vec!["anonymous"], "ignored when off");
        assert_eq!(read_tenants(None, true), Err(TenantError::Missing));
        assert_eq!(read_tenants(Some("b|a|b"), true).unwrap(), vec!["a", "b"]);
        assert!(matches!(read_tenants(Some("a/b"), true), Err(TenantError::InvalidChars(_))));
        assert_eq!(read_tenants(Some(".."), true), Err(TenantError::Dots));
        assert_eq!(read_tenants(Some(&"a".repeat(151)), true), Err(TenantError::TooLong));
        assert_eq!(write_tenant(Some("a|b"), true), Err(TenantError::Multiple));
        assert_eq!(write_tenant(Some("team-1"), true).unwrap(), "team-1");
    }
}
