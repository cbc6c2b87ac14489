//! Physical plan fragments to bytes and back. A fragment holding head scans and the flame-graph
//! aggregate is encoded with datafusion-proto and the one flamedb codec, and decoded in another
//! process against that process's head and symbols (the codec it is given decides which).

use std::sync::Arc;

use bytes::Bytes;
use datafusion::common::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;

/// Encodes a physical plan fragment.
pub fn encode(plan: Arc<dyn ExecutionPlan>, codec: &dyn PhysicalExtensionCodec) -> Result<Bytes> {
    physical_plan_to_bytes_with_extension_codec(plan, codec)
}

/// Decodes a fragment; functions not in `ctx` come from `codec`.
pub fn decode(bytes: &[u8], ctx: &TaskContext, codec: &dyn PhysicalExtensionCodec) -> Result<Arc<dyn ExecutionPlan>> {
    physical_plan_from_bytes_with_extension_codec(bytes, ctx, codec)
}
