//! Flight SQL over [`SqlEngine`]: statements, prepared statements and the catalog listings of the
//! caller's tenant session. Handles are stateless: a statement ticket and a prepared-statement
//! handle carry the SQL text and nothing else, and every `GetFlightInfo`/`DoGet` re-plans it
//! for the tenants of its own call metadata, so a handle from one tenant runs as whoever presents
//! it, over their own data only, and any node can serve any handle.

use std::pin::Pin;

use arrow::datatypes::Schema;
use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::error::FlightError;
use arrow_flight::sql::server::{DoPutError, FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCancelQueryRequest, ActionCancelQueryResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    ActionCreatePreparedSubstraitPlanRequest, ActionEndSavepointRequest, ActionEndTransactionRequest, Any, Command,
    CommandGetCatalogs, CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementIngest, CommandStatementQuery,
    CommandStatementSubstraitPlan, CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightData, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    PutResult, SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use flamedb_planner::sql::{SqlEngine, SqlQuery};
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::catalog;
use crate::encode::{FlightDataStream, batch_stream, query_stream};
use crate::sql_info::sql_info;
use crate::status::{arrow_status, read_only, sql_status};
use crate::tenancy::{TenantResolver, tenants_of};

/// The Flight SQL side of flamedb's Flight service (see [`crate::service::FlamedbFlight`], which
/// adds the JSON export tickets in front of it).
pub struct SqlService {
    engine: SqlEngine,
    tenants: TenantResolver,
}

impl SqlService {
    /// A service answering over `engine`, with `tenants` deciding who each call reads as.
    pub fn new(engine: SqlEngine, tenants: TenantResolver) -> Self {
        Self { engine, tenants }
    }

    /// The engine statements are planned with.
    pub fn engine(&self) -> &SqlEngine {
        &self.engine
    }

    /// The tenants the call `request` reads as.
    pub fn tenants<T>(&self, request: &Request<T>) -> Result<Vec<String>, Status> {
        tenants_of(&self.tenants, request)
    }

    async fn plan<T>(&self, request: &Request<T>, sql: &str) -> Result<SqlQuery, Status> {
        let tenants = self.tenants(request)?;
        self.engine.plan(&tenants, sql).await.map_err(|e| sql_status(&e))
    }

    fn context<T>(&self, request: &Request<T>) -> Result<datafusion::prelude::SessionContext, Status> {
        let tenants = self.tenants(request)?;
        self.engine.context(&tenants).map_err(|e| sql_status(&e))
    }
}

/// The SQL text a statement ticket or prepared-statement handle carries.
fn handle_sql(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("statement handle is not UTF-8 SQL text"))
}

/// A `FlightInfo` with `schema` and one endpoint serving `ticket` on this same connection (no
/// location, so clients reuse the channel they asked on).
pub(crate) fn flight_info(schema: &Schema, ticket: Bytes, descriptor: FlightDescriptor) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(arrow_status)?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_descriptor(descriptor))
}

/// The ticket of a metadata command: the command itself.
fn command_ticket(cmd: &impl ProstMessageExt) -> Bytes {
    cmd.as_any().encode_to_vec().into()
}

fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by flamedb"))
}

fn no_transactions() -> Status {
    Status::unimplemented("flamedb SQL is read-only and has no transactions or savepoints")
}

type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;
type PutStream = Pin<Box<dyn Stream<Item = Result<PutResult, Status>> + Send + 'static>>;
type ActionStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::Result, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl FlightSqlService for SqlService {
    type FlightService = SqlService;

    /// No credentials are needed (tenancy comes from `x-scope-orgid` on every call), so a
    /// handshake succeeds with an empty token for clients that always send one.
    async fn do_handshake(
        &self,
        _request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let reply = HandshakeResponse { protocol_version: 0, payload: Bytes::new() };
        Ok(Response::new(stream::iter([Ok(reply)]).boxed()))
    }

    async fn do_get_fallback(
        &self,
        _request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<FlightDataStream>, Status> {
        Err(Status::invalid_argument(format!(
            "unknown ticket type {:?}: flamedb serves Flight SQL tickets and JSON export tickets",
            message.type_url
        )))
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let planned = self.plan(&request, &query.query).await?;
        let ticket = TicketStatementQuery { statement_handle: query.query.into_bytes().into() };
        let info = flight_info(&planned.schema(), command_ticket(&ticket), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("Substrait (send SQL text)"))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let planned = self.plan(&request, handle_sql(&query.prepared_statement_handle)?).await?;
        let info = flight_info(&planned.schema(), command_ticket(&query), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.tenants(&request)?;
        let info = flight_info(&catalog::catalogs_schema(), command_ticket(&query), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.tenants(&request)?;
        let info = flight_info(&catalog::db_schemas_schema(), command_ticket(&query), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.tenants(&request)?;
        let info = flight_info(&catalog::tables_schema(&query), command_ticket(&query), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.tenants(&request)?;
        let schema = query.into_builder().schema();
        let info = flight_info(&schema, command_ticket(&query), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let infos = sql_info(self.engine.limits().timeout).map_err(arrow_status)?;
        let schema = query.clone().into_builder(&infos).schema();
        let info = flight_info(&schema, command_ticket(&query), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn get_flight_info_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetPrimaryKeys (the views have no keys)"))
    }

    async fn get_flight_info_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetExportedKeys (the views have no keys)"))
    }

    async fn get_flight_info_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetImportedKeys (the views have no keys)"))
    }

    async fn get_flight_info_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetCrossReference (the views have no keys)"))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        _query: CommandGetXdbcTypeInfo,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("GetXdbcTypeInfo"))
    }

    async fn get_flight_info_fallback(
        &self,
        cmd: Command,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        match cmd {
            Command::CommandStatementUpdate(_)
            | Command::CommandPreparedStatementUpdate(_)
            | Command::CommandStatementIngest(_) => Err(read_only()),
            other => Err(unsupported(&format!("GetFlightInfo for {}", other.type_url()))),
        }
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let planned = self.plan(&request, handle_sql(&ticket.statement_handle)?).await?;
        Ok(Response::new(query_stream(planned).await?))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let planned = self.plan(&request, handle_sql(&query.prepared_statement_handle)?).await?;
        Ok(Response::new(query_stream(planned).await?))
    }

    async fn do_get_catalogs(
        &self,
        _query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.context(&request)?;
        Ok(Response::new(batch_stream(catalog::catalogs_batch(&ctx)?)))
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.context(&request)?;
        Ok(Response::new(batch_stream(catalog::db_schemas_batch(&ctx, query)?)))
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.context(&request)?;
        Ok(Response::new(batch_stream(catalog::tables_batch(&ctx, query).await?)))
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let ctx = self.context(&request)?;
        let mut b = query.into_builder();
        for t in catalog::table_types(&ctx).await? {
            b.append(t);
        }
        Ok(Response::new(batch_stream(b.build().map_err(arrow_status)?)))
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<FlightDataStream>, Status> {
        let infos = sql_info(self.engine.limits().timeout).map_err(arrow_status)?;
        let batch = query.into_builder(&infos).build().map_err(arrow_status)?;
        Ok(Response::new(batch_stream(batch)))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(read_only())
    }

    async fn do_put_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(unsupported("Substrait (send SQL text)"))
    }

    /// Parameter binding. Statements take no parameters; drivers that bind an empty parameter
    /// set anyway (no columns or no rows) get the handle back unchanged.
    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let data = request.into_inner().into_inner().map_err(FlightError::from);
        let mut batches = FlightRecordBatchStream::new_from_flight_data(data);
        while let Some(batch) = batches.next().await {
            let batch = batch.map_err(|e| Status::invalid_argument(format!("reading parameters: {e}")))?;
            if batch.num_columns() > 0 && batch.num_rows() > 0 {
                return Err(Status::invalid_argument("flamedb prepared statements take no parameters"));
            }
        }
        Ok(DoPutPreparedStatementResult { prepared_statement_handle: Some(query.prepared_statement_handle) })
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        if query.transaction_id.is_some() {
            return Err(no_transactions());
        }
        let planned = self.plan(&request, &query.query).await?;
        let IpcMessage(dataset_schema) =
            SchemaAsIpc::new(&planned.schema(), &IpcWriteOptions::default()).try_into().map_err(arrow_status)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Bytes::new(),
        })
    }

    /// Handles hold no server state, so closing one has nothing to free.
    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Ok(())
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        _query: ActionCreatePreparedSubstraitPlanRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        Err(unsupported("Substrait (send SQL text)"))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(no_transactions())
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(no_transactions())
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        Err(no_transactions())
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(no_transactions())
    }

    async fn do_action_cancel_query(
        &self,
        _query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        Err(unsupported("CancelQuery (cancel the DoGet call instead)"))
    }

    async fn do_put_fallback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        message: Any,
    ) -> Result<Response<PutStream>, Status> {
        Err(unsupported(&format!("DoPut of {}", message.type_url)))
    }

    async fn do_put_error_callback(
        &self,
        _request: Request<PeekableFlightDataStream>,
        error: DoPutError,
    ) -> Result<Response<PutStream>, Status> {
        Err(Status::invalid_argument(format!("DoPut: {error}")))
    }

    async fn do_action_fallback(&self, request: Request<Action>) -> Result<Response<ActionStream>, Status> {
        Err(unsupported(&format!("action {:?}", request.get_ref().r#type)))
    }

    async fn do_exchange_fallback(
        &self,
        _request: Request<Streaming<FlightData>>,
    ) -> Result<Response<FlightDataStream>, Status> {
        Err(unsupported("DoExchange"))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
