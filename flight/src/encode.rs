//! Query results as a Flight `DoGet` stream: the schema first (so an empty result still tells the
//! client its columns), then the batches as IPC, with errors raised mid-stream reaching the client
//! as the final status.

use std::pin::Pin;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::FlightData;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use flamedb_planner::sql::SqlQuery;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use tonic::Status;

use crate::status::{sql_status, stream_error};

/// The stream type every `DoGet` of this crate answers with.
pub type FlightDataStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send + 'static>>;

/// Runs `query` and streams its rows.
pub async fn query_stream(query: SqlQuery) -> Result<FlightDataStream, Status> {
    let schema = query.schema();
    let batches = query.execute().await.map_err(|e| sql_status(&e))?;
    Ok(encode(schema, batches.map_err(stream_error)))
}

/// One ready batch (a catalog listing) as a stream.
pub fn batch_stream(batch: RecordBatch) -> FlightDataStream {
    let schema = batch.schema();
    encode(schema, stream::iter([Ok(batch)]))
}

fn encode<S>(schema: SchemaRef, batches: S) -> FlightDataStream
where
    S: Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
{
    FlightDataEncoderBuilder::new().with_schema(schema).build(batches).map_err(Status::from).boxed()
}
