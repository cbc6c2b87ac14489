//! flamedb's Flight service: Flight SQL ([`SqlService`]) plus bulk export by JSON ticket. The
//! Flight SQL dispatcher decodes every ticket and command as a protobuf `Any`, so this wrapper
//! looks at the bytes first: JSON (`{...}`) is an export, anything else goes to Flight SQL.

use std::sync::Arc;

use arrow::ipc::writer::IpcWriteOptions;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::{Any, Command};
use arrow_flight::{
    Action, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo, HandshakeRequest, PollInfo, SchemaAsIpc,
    SchemaResult, Ticket,
};
use flamedb_planner::sql::{SqlEngine, SqlQuery};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};

use crate::encode::query_stream;
use crate::export;
use crate::sql_service::{SqlService, flight_info};
use crate::status::{arrow_status, sql_status};
use crate::tenancy::TenantResolver;

/// The `arrow.flight.protocol.FlightService` of a flamedb process.
#[derive(Clone)]
pub struct FlamedbFlight {
    sql: Arc<SqlService>,
}

impl FlamedbFlight {
    /// A service over `engine`; `tenants` turns each call's `x-scope-orgid` into the tenants it
    /// reads (the server's multitenancy rule).
    pub fn new(engine: SqlEngine, tenants: TenantResolver) -> Self {
        Self { sql: Arc::new(SqlService::new(engine, tenants)) }
    }

    /// The tonic service, with message caps of `max_message` bytes both ways.
    pub fn into_server(self, max_message: usize) -> FlightServiceServer<Self> {
        FlightServiceServer::new(self).max_decoding_message_size(max_message).max_encoding_message_size(max_message)
    }

    /// The planned export of a JSON ticket, for the tenants of the call `request`.
    async fn export<T>(&self, request: &Request<T>, bytes: &[u8]) -> Result<SqlQuery, Status> {
        let req = export::parse(bytes)?;
        let tenants = self.sql.tenants(request)?;
        self.sql.engine().export(&tenants, &req).await.map_err(|e| sql_status(&e))
    }
}

/// Checks that a non-JSON ticket is a Flight SQL one, so garbage gets `InvalidArgument` rather
/// than an internal decoding error.
fn check_sql_ticket(bytes: &[u8]) -> Result<(), Status> {
    let any = Any::decode(bytes).map_err(|e| {
        Status::invalid_argument(format!(
            "bad ticket: neither a Flight SQL ticket ({e}) nor a JSON export ticket {}",
            export::EXPECTED_SHAPE
        ))
    })?;
    Command::try_from(any).map_err(|e| Status::invalid_argument(format!("bad Flight SQL ticket: {e}")))?;
    Ok(())
}

type SqlFlight = SqlService;

#[tonic::async_trait]
impl FlightService for FlamedbFlight {
    type HandshakeStream = <SqlFlight as FlightService>::HandshakeStream;
    type ListFlightsStream = <SqlFlight as FlightService>::ListFlightsStream;
    type DoGetStream = <SqlFlight as FlightService>::DoGetStream;
    type DoPutStream = <SqlFlight as FlightService>::DoPutStream;
    type DoActionStream = <SqlFlight as FlightService>::DoActionStream;
    type ListActionsStream = <SqlFlight as FlightService>::ListActionsStream;
    type DoExchangeStream = <SqlFlight as FlightService>::DoExchangeStream;

    async fn handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        self.sql.handshake(request).await
    }

    async fn list_flights(&self, _request: Request<Criteria>) -> Result<Response<Self::ListFlightsStream>, Status> {
        Err(Status::unimplemented(
            "ListFlights is not supported by flamedb: run SQL through Flight SQL or DoGet a JSON export ticket",
        ))
    }

    async fn get_flight_info(&self, request: Request<FlightDescriptor>) -> Result<Response<FlightInfo>, Status> {
        let cmd = request.get_ref().cmd.clone();
        if !export::is_export(&cmd) {
            return self.sql.get_flight_info(request).await;
        }
        let planned = self.export(&request, &cmd).await?;
        Ok(Response::new(flight_info(&planned.schema(), cmd, request.into_inner())?))
    }

    async fn poll_flight_info(&self, _request: Request<FlightDescriptor>) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented("PollFlightInfo is not supported by flamedb: use GetFlightInfo"))
    }

    /// The schema of an export command; Flight SQL commands are answered by `GetFlightInfo`.
    async fn get_schema(&self, request: Request<FlightDescriptor>) -> Result<Response<SchemaResult>, Status> {
        let cmd = request.get_ref().cmd.clone();
        if !export::is_export(&cmd) {
            return Err(Status::unimplemented(
                "GetSchema is only supported for JSON export commands: use GetFlightInfo",
            ));
        }
        let planned = self.export(&request, &cmd).await?;
        let schema = planned.schema();
        let result = SchemaAsIpc::new(&schema, &IpcWriteOptions::default()).try_into().map_err(arrow_status)?;
        Ok(Response::new(result))
    }

    async fn do_get(&self, request: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let ticket = request.get_ref().ticket.clone();
        if !export::is_export(&ticket) {
            check_sql_ticket(&ticket)?;
            return self.sql.do_get(request).await;
        }
        let planned = self.export(&request, &ticket).await?;
        Ok(Response::new(query_stream(planned).await?))
    }

    async fn do_put(&self, request: Request<Streaming<FlightData>>) -> Result<Response<Self::DoPutStream>, Status> {
        self.sql.do_put(request).await
    }

    async fn do_action(&self, request: Request<Action>) -> Result<Response<Self::DoActionStream>, Status> {
        self.sql.do_action(request).await
    }

    async fn list_actions(&self, request: Request<Empty>) -> Result<Response<Self::ListActionsStream>, Status> {
        self.sql.list_actions(request).await
    }

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        self.sql.do_exchange(request).await
    }
}
