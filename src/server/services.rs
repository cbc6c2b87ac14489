//! The RPC services: `querier.v1.QuerierService` and `push.v1.PusherService`, implemented once as
//! tonic services. gRPC and gRPC-Web reach them through tonic; Connect reaches the same methods
//! through `connect::unary`, with the HTTP headers as request metadata.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use flamedb_ingest::distributor::{Distributor, ErrorKind as IngestKind, IngestError};
use flamedb_planner::{ErrorKind, Querier, QueryError, RequestContext};
use flamedb_proto::google::v1::Profile;
use flamedb_proto::push::v1::{PushRequest, PushResponse, pusher_service_server::PusherService};
use flamedb_proto::querier::v1 as q;
use flamedb_proto::querier::v1::querier_service_server::QuerierService;
use flamedb_proto::types::v1 as t;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::tenant::{self, ORG_ID_HEADER};
use crate::metrics::Metrics;

/// State every request handler shares.
#[derive(Debug, Clone)]
pub struct Api {
    pub distributor: Distributor,
    pub querier: Querier,
    /// SQL over the same data (`POST /api/v1/sql`, Flight SQL, Flight export).
    pub sql: flamedb_planner::sql::SqlEngine,
    pub multitenancy: bool,
    pub metrics: Arc<Metrics>,
    /// Moves the head into the bucket (`None` for a head-only process).
    pub flusher: Option<flamedb_storage::flush::Flusher>,
    /// Per-tenant settings of `settings.v1.SettingsService`.
    pub settings: Arc<super::settings::SettingsStore>,
    /// The configuration the process runs with, for `/api/v1/status/config`.
    pub config: Arc<crate::config::Config>,
}

pub fn now_nanos() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn header<'a>(md: &'a MetadataMap, name: &str) -> Option<&'a str> {
    md.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the client declared `allow-utf8-labelnames=true` in an `Accept` media type (a
/// malformed header never gets here: the dispatcher refuses it first).
pub fn utf8_label_names(accept: Option<&str>) -> bool {
    super::accept::parse(accept).is_ok_and(|c| c.utf8_label_names)
}

impl Api {
    fn read_context(&self, md: &MetadataMap) -> Result<RequestContext, Status> {
        let tenants = tenant::read_tenants(header(md, ORG_ID_HEADER), self.multitenancy)?;
        Ok(RequestContext { tenants, utf8_label_names: utf8_label_names(header(md, "accept")) })
    }

    /// Stores what a Push carries; counts it in the metrics either way.
    pub fn store_push(&self, tenant: &str, req: &PushRequest) -> Result<(), Status> {
        let compressed: usize = req.series.iter().flat_map(|s| &s.samples).map(|s| s.raw_profile.len()).sum();
        self.metrics.received_compressed_bytes.inc_by(compressed as u64);
        match self.distributor.push(tenant, req, now_nanos()) {
            Ok(stats) => {
                self.record(&stats);
                Ok(())
            }
            Err(e) => {
                self.metrics.discard(reason(&e));
                Err(ingest_status(&e))
            }
        }
    }

    pub fn record(&self, stats: &flamedb_ingest::distributor::PushStats) {
        self.metrics.received_profiles.inc_by(stats.profiles as u64);
        self.metrics.received_decompressed_bytes.inc_by(stats.decoded_bytes as u64);
        self.metrics.received_samples.inc_by(stats.append.samples as u64);
    }
}

/// A short, bounded label for the discard metric.
pub fn reason(e: &IngestError) -> &'static str {
    match e {
        IngestError::Validation(_) => "validation",
        IngestError::Decode(_) => "decode",
        IngestError::Push { kind: IngestKind::ResourceExhausted, .. } => "rate_limited",
        IngestError::Push { .. } => "invalid",
        IngestError::Wal(_) => "wal",
    }
}

pub fn ingest_status(e: &IngestError) -> Status {
    match e.kind() {
        IngestKind::InvalidArgument => Status::invalid_argument(e.to_string()),
        IngestKind::ResourceExhausted => Status::resource_exhausted(e.to_string()),
        IngestKind::Unavailable => Status::unavailable(e.to_string()),
    }
}

fn query_status(e: QueryError) -> Status {
    match e.kind {
        ErrorKind::InvalidArgument => Status::invalid_argument(e.message),
        ErrorKind::Unimplemented => Status::unimplemented(e.message),
        ErrorKind::Internal => {
            tracing::error!(error = %e.message, "query failed");
            Status::internal(e.message)
        }
    }
}

#[tonic::async_trait]
impl PusherService for Api {
    async fn push(&self, request: Request<PushRequest>) -> Result<Response<PushResponse>, Status> {
        let tenant = tenant::write_tenant(header(request.metadata(), ORG_ID_HEADER), self.multitenancy)?;
        let api = self.clone();
        // Decoding and normalizing is CPU work: keep it off the I/O threads.
        tokio::task::spawn_blocking(move || api.store_push(&tenant, request.get_ref()))
            .await
            .map_err(|e| Status::internal(format!("push task failed: {e}")))??;
        Ok(Response::new(PushResponse {}))
    }
}

macro_rules! query {
    ($self:ident, $request:ident, $method:ident) => {{
        let ctx = $self.read_context($request.metadata())?;
        $self.querier.$method(&ctx, $request.into_inner()).await.map(Response::new).map_err(query_status)
    }};
}

#[tonic::async_trait]
impl QuerierService for Api {
    async fn profile_types(
        &self,
        request: Request<q::ProfileTypesRequest>,
    ) -> Result<Response<q::ProfileTypesResponse>, Status> {
        query!(self, request, profile_types)
    }

    async fn label_values(
        &self,
        request: Request<t::LabelValuesRequest>,
    ) -> Result<Response<t::LabelValuesResponse>, Status> {
        query!(self, request, label_values)
    }

    async fn label_names(
        &self,
        request: Request<t::LabelNamesRequest>,
    ) -> Result<Response<t::LabelNamesResponse>, Status> {
        query!(self, request, label_names)
    }

    async fn series(&self, request: Request<q::SeriesRequest>) -> Result<Response<q::SeriesResponse>, Status> {
        query!(self, request, series)
    }

    async fn select_merge_stacktraces(
        &self,
        request: Request<q::SelectMergeStacktracesRequest>,
    ) -> Result<Response<q::SelectMergeStacktracesResponse>, Status> {
        query!(self, request, select_merge_stacktraces)
    }

    async fn select_merge_span_profile(
        &self,
        request: Request<q::SelectMergeSpanProfileRequest>,
    ) -> Result<Response<q::SelectMergeSpanProfileResponse>, Status> {
        query!(self, request, select_merge_span_profile)
    }

    async fn select_merge_profile(
        &self,
        request: Request<q::SelectMergeProfileRequest>,
    ) -> Result<Response<Profile>, Status> {
        query!(self, request, select_merge_profile)
    }

    async fn select_series(
        &self,
        request: Request<q::SelectSeriesRequest>,
    ) -> Result<Response<q::SelectSeriesResponse>, Status> {
        query!(self, request, select_series)
    }

    async fn select_heatmap(
        &self,
        _request: Request<q::SelectHeatmapRequest>,
    ) -> Result<Response<q::SelectHeatmapResponse>, Status> {
        Err(Status::unimplemented("SelectHeatmap is not supported yet"))
    }

    async fn diff(&self, request: Request<q::DiffRequest>) -> Result<Response<q::DiffResponse>, Status> {
        query!(self, request, diff)
    }

    async fn get_profile_stats(
        &self,
        request: Request<t::GetProfileStatsRequest>,
    ) -> Result<Response<t::GetProfileStatsResponse>, Status> {
        query!(self, request, get_profile_stats)
    }

    async fn analyze_query(
        &self,
        request: Request<q::AnalyzeQueryRequest>,
    ) -> Result<Response<q::AnalyzeQueryResponse>, Status> {
        query!(self, request, analyze_query)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_capability() {
        assert!(utf8_label_names(Some("*/*;allow-utf8-labelnames=true")));
        assert!(utf8_label_names(Some("application/json, */*; allow-utf8-labelnames=true")));
        assert!(!utf8_label_names(Some("*/*")));
        assert!(!utf8_label_names(Some("*/*;allow-utf8-labelnames=false")));
        assert!(!utf8_label_names(None));
    }
}
