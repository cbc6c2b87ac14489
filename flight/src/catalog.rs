//! The catalog listings of Flight SQL (`GetCatalogs`, `GetDbSchemas`, `GetTables`,
//! `GetTableTypes`), read from the tenant's own SQL session so a listing shows exactly what a
//! statement can name. `information_schema` stays queryable but is not listed: clients browse the
//! data, not DataFusion's metadata views.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow_flight::sql::metadata::{GetCatalogsBuilder, GetDbSchemasBuilder, GetTablesBuilder};
use arrow_flight::sql::{CommandGetDbSchemas, CommandGetTables};
use datafusion::catalog::information_schema::INFORMATION_SCHEMA;
use datafusion::datasource::TableType;
use datafusion::prelude::SessionContext;
use tonic::Status;

use crate::status::arrow_status;

/// One table of a session, as a listing shows it.
#[derive(Debug, Clone)]
pub struct TableEntry {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    pub table_type: &'static str,
    pub arrow_schema: SchemaRef,
}

/// The Flight SQL name of a table type.
pub fn table_type_name(t: TableType) -> &'static str {
    match t {
        TableType::Base => "TABLE",
        TableType::View => "VIEW",
        TableType::Temporary => "LOCAL TEMPORARY",
    }
}

/// The (catalog, schema) pairs of a session, `information_schema` left out.
fn schemas(ctx: &SessionContext) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
        for schema_name in catalog.schema_names() {
            if schema_name != INFORMATION_SCHEMA {
                out.push((catalog_name.clone(), schema_name));
            }
        }
    }
    out.sort();
    out
}

/// Every table of a session outside `information_schema`, sorted by catalog, schema and name.
pub async fn tables(ctx: &SessionContext) -> Result<Vec<TableEntry>, Status> {
    let mut out = Vec::new();
    for (catalog_name, schema_name) in schemas(ctx) {
        let Some(schema) = ctx.catalog(&catalog_name).and_then(|c| c.schema(&schema_name)) else { continue };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            let table = schema.table(&name).await.map_err(|e| Status::internal(format!("table {name}: {e}")))?;
            let Some(table) = table else { continue };
            out.push(TableEntry {
                catalog: catalog_name.clone(),
                schema: schema_name.clone(),
                name,
                table_type: table_type_name(table.table_type()),
                arrow_schema: table.schema(),
            });
        }
    }
    Ok(out)
}

/// The `GetCatalogs` batch.
pub fn catalogs_batch(ctx: &SessionContext) -> Result<RecordBatch, Status> {
    let mut names = ctx.catalog_names();
    names.sort();
    let mut b = GetCatalogsBuilder::new();
    for name in names {
        b.append(name);
    }
    b.build().map_err(arrow_status)
}

/// The `GetDbSchemas` batch, with the command's catalog and pattern filters applied.
pub fn db_schemas_batch(ctx: &SessionContext, query: CommandGetDbSchemas) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    for (catalog, schema) in schemas(ctx) {
        b.append(catalog, schema);
    }
    b.build().map_err(arrow_status)
}

/// The `GetTables` batch, with the command's filters applied and the table schemas when asked.
pub async fn tables_batch(ctx: &SessionContext, query: CommandGetTables) -> Result<RecordBatch, Status> {
    let mut b = query.into_builder();
    for t in tables(ctx).await? {
        b.append(&t.catalog, &t.schema, &t.name, t.table_type, &t.arrow_schema).map_err(arrow_status)?;
    }
    b.build().map_err(arrow_status)
}

/// The schema of a `GetTables` answer (it has a `table_schema` column only when asked for).
pub fn tables_schema(query: &CommandGetTables) -> SchemaRef {
    GetTablesBuilder::from(query.clone()).schema()
}

/// The schema of a `GetDbSchemas` answer.
pub fn db_schemas_schema() -> SchemaRef {
    GetDbSchemasBuilder::new(None::<String>, None::<String>).schema()
}

/// The schema of a `GetCatalogs` answer.
pub fn catalogs_schema() -> SchemaRef {
    GetCatalogsBuilder::new().schema()
}

/// The distinct table types of a session's tables, sorted.
pub async fn table_types(ctx: &SessionContext) -> Result<Vec<&'static str>, Status> {
    let mut types: Vec<&'static str> = tables(ctx).await?.into_iter().map(|t| t.table_type).collect();
    types.sort_unstable();
    types.dedup();
    Ok(types)
}
