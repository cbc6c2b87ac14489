//! Which tenants a Flight call reads. The rule (multitenancy on or off, header validation) belongs
//! to the server that mounts the service; this crate only reads the `x-scope-orgid` metadata of
//! each call and asks the rule. Every call resolves its own tenants: nothing a client sends in a
//! ticket or handle names a tenant.

use std::sync::Arc;

use tonic::{Request, Status};

/// The gRPC metadata key the tenant travels in (Grafana's `X-Scope-OrgID`).
pub const ORG_ID_METADATA: &str = "x-scope-orgid";

/// Turns the `x-scope-orgid` value of a call (if any) into the tenants it may read, or the
/// status to refuse it with (`Unauthenticated` when a tenant is required and missing).
pub type TenantResolver = Arc<dyn Fn(Option<&str>) -> Result<Vec<String>, Status> + Send + Sync>;

/// The tenants of `request` under `resolver`. A value that is not visible ASCII counts as absent
/// (as the HTTP side reads it): the rule then answers with its default tenant or refuses.
pub fn tenants_of<T>(resolver: &TenantResolver, request: &Request<T>) -> Result<Vec<String>, Status> {
    let header = request.metadata().get(ORG_ID_METADATA).and_then(|v| v.to_str().ok());
    let tenants = resolver(header)?;
    if tenants.is_empty() {
        return Err(Status::unauthenticated("no org id"));
    }
    Ok(tenants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn strict() -> TenantResolver {
        Arc::new(|h: Option<&str>| match h {
            Some(t) => Ok(vec![t.to_string()]),
            None => Err(Status::unauthenticated("no org id")),
        })
    }

    #[test]
    fn reads_metadata() {
        let mut req = Request::new(());
        assert_eq!(tenants_of(&strict(), &req).unwrap_err().code(), Code::Unauthenticated);
        req.metadata_mut().insert(ORG_ID_METADATA, "team-a".parse().unwrap());
        assert_eq!(tenants_of(&strict(), &req).unwrap(), vec!["team-a"]);
    }

    #[test]
    fn empty_resolution_is_refused() {
        let none: TenantResolver = Arc::new(|_| Ok(vec![]));
        assert_eq!(tenants_of(&none, &Request::new(())).unwrap_err().code(), Code::Unauthenticated);
    }
}
