//! The one `PhysicalExtensionCodec` of flamedb: it writes our custom execs (head scans) and marks
//! the flame-graph aggregate, so a physical plan fragment can be serialized with datafusion-proto,
//! sent to another process, and rebuilt there against that process's own head and symbols.

use std::sync::Arc;

use datafusion::common::{Result, exec_err, internal_err};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::AggregateUDF;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use flamedb_ingest::head::Head;
use flamedb_ingest::model::{MatchOp, Matcher};
use flamedb_proto::flamedb::v1 as pb;
use prost::Message;

use crate::filter::ScanFilter;
use crate::flamegraph::{FlameGraphUdaf, udaf};
use crate::scan::HeadScanExec;
use crate::schema::HeadTable;

/// Marker written for the flame-graph aggregate so decoding goes through this codec (and binds
/// the aggregate to the decoding process's symbols) rather than a registry lookup.
const FLAMEGRAPH_MARKER: &[u8] = b"flamedb.flamegraph.v1";

#[derive(Debug, Clone)]
pub struct FlamedbCodec {
    head: Arc<Head>,
}

impl FlamedbCodec {
    /// A codec that rebuilds scans and aggregates against `head`.
    pub fn new(head: Arc<Head>) -> Self {
        Self { head }
    }
}

impl PhysicalExtensionCodec for FlamedbCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if !inputs.is_empty() {
            return internal_err!("HeadScanExec has no inputs, got {}", inputs.len());
        }
        let node = pb::HeadScanNode::decode(buf)
            .map_err(|e| datafusion::common::DataFusionError::Internal(format!("decoding HeadScanNode: {e}")))?;
        let table = match pb::HeadTable::try_from(node.table) {
            Ok(pb::HeadTable::Samples) => HeadTable::Samples,
            Ok(pb::HeadTable::Profiles) => HeadTable::Profiles,
            Err(_) => return exec_err!("unknown head table {}", node.table),
        };
        let f = node.filter.unwrap_or_default();
        let mut matchers = Vec::with_capacity(f.matchers.len());
        for m in f.matchers {
            let op = match pb::MatchType::try_from(m.r#type) {
                Ok(pb::MatchType::Equal) => MatchOp::Equal,
                Ok(pb::MatchType::NotEqual) => MatchOp::NotEqual,
                Ok(pb::MatchType::Regex) => MatchOp::Regex,
                Ok(pb::MatchType::NotRegex) => MatchOp::NotRegex,
                Err(_) => return exec_err!("unknown match type {}", m.r#type),
            };
            matchers.push(
                Matcher::new(op, m.name, m.value)
                    .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?,
            );
        }
        let filter = ScanFilter {
            matchers,
            min_time_nanos: f.min_time_nanos,
            max_time_nanos: f.max_time_nanos,
            span_ids: f.span_filter.map(|s| {
                let mut ids = s.span_ids;
                ids.sort_unstable();
                ids.dedup();
                ids
            }),
            profile_ids: None,
        };
        let mut filter = filter;
        if let Some(p) = f.profile_id_filter {
            filter.keep_profiles(&p.profile_ids);
        }
        let projection = node.projection.map(|p| p.columns.into_iter().map(|c| c as usize).collect());
        let partitions = usize::try_from(node.partitions).unwrap_or(1);
        Ok(Arc::new(HeadScanExec::try_new(
            self.head.clone(),
            node.tenants,
            table,
            projection,
            filter,
            node.limit.map(|l| l as usize),
            partitions,
        )?))
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some(scan) = node.downcast_ref::<HeadScanExec>() else {
            return exec_err!("flamedb codec cannot encode {}", node.name());
        };
        let f = scan.filter();
        let msg = pb::HeadScanNode {
            tenants: scan.tenants().to_vec(),
            table: match scan.table() {
                HeadTable::Samples => pb::HeadTable::Samples as i32,
                HeadTable::Profiles => pb::HeadTable::Profiles as i32,
            },
            projection: scan.projection().map(|p| pb::Projection { columns: p.iter().map(|&c| c as u32).collect() }),
            filter: Some(pb::ScanFilter {
                matchers: f
                    .matchers
                    .iter()
                    .map(|m| pb::LabelMatcher {
                        name: m.name.clone(),
                        r#type: match m.op {
                            MatchOp::Equal => pb::MatchType::Equal,
                            MatchOp::NotEqual => pb::MatchType::NotEqual,
                            MatchOp::Regex => pb::MatchType::Regex,
                            MatchOp::NotRegex => pb::MatchType::NotRegex,
                        } as i32,
                        value: m.value.clone(),
                    })
                    .collect(),
                min_time_nanos: f.min_time_nanos,
                max_time_nanos: f.max_time_nanos,
                span_filter: f.span_ids.as_ref().map(|ids| pb::SpanFilter { span_ids: ids.clone() }),
                profile_id_filter: f.profile_ids.as_ref().map(|ids| pb::ProfileIdFilter { profile_ids: ids.clone() }),
            }),
            limit: scan.limit().map(|l| l as u64),
            partitions: scan.partitions() as u64,
        };
        msg.encode(buf).map_err(|e| datafusion::common::DataFusionError::Internal(e.to_string()))
    }

    fn try_decode_udf(&self, name: &str, _buf: &[u8]) -> Result<Arc<datafusion::logical_expr::ScalarUDF>> {
        if name == crate::udf::label_udf().name() {
            return Ok(crate::udf::label_udf());
        }
        exec_err!("flamedb codec does not know the function {name}")
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        if name == udaf::NAME && (buf == FLAMEGRAPH_MARKER || buf.is_empty()) {
            return Ok(FlameGraphUdaf::udaf(self.head.clone()));
        }
        exec_err!("flamedb codec does not know the aggregate {name}")
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        if node.name() == udaf::NAME {
            buf.extend_from_slice(FLAMEGRAPH_MARKER);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;
    use datafusion_proto::physical_plan::DefaultPhysicalProtoConverter;

    use super::*;

    /// A span filter survives the trip to another process; a scan without one stays without.
    #[test]
    fn span_filter_round_trips() {
        let head = Arc::new(Head::new());
        let codec = FlamedbCodec::new(head.clone());
        let ctx = SessionContext::new().task_ctx();
        for (spans, profiles) in [(Some(vec![3u64, 0xfeed_beef_0000_0001]), Some(vec!["p1".to_string()])), (None, None)]
        {
            let filter = ScanFilter {
                matchers: vec![Matcher::equal("service_name", "a")],
                min_time_nanos: 10,
                max_time_nanos: 20,
                span_ids: spans.clone(),
                profile_ids: profiles.clone(),
            };
            let scan = HeadScanExec::try_new(head.clone(), vec!["t".into()], HeadTable::Samples, None, filter, None, 2)
                .unwrap();
            let mut buf = Vec::new();
            codec.try_encode(Arc::new(scan), &mut buf, &DefaultPhysicalProtoConverter {}).unwrap();
            let back = codec.try_decode(&buf, &[], &ctx, &DefaultPhysicalProtoConverter {}).unwrap();
            let back = back.downcast_ref::<HeadScanExec>().unwrap();
            assert_eq!(back.filter().span_ids, spans);
            assert_eq!(back.filter().profile_ids, profiles);
            assert_eq!(back.filter().matchers, vec![Matcher::equal("service_name", "a")]);
        }
    }
}
