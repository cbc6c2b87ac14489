//! What keeps SQL safe to offer every tenant: statements are checked to be reads before they
//! plan, and a running query ends with an error once its time is up.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use futures::Stream;

use super::error::{SqlError, SqlErrorKind};

/// Parses `sql` into its one statement, refusing anything but a read (queries, `EXPLAIN`,
/// `SHOW`/`DESCRIBE`) and naming the statement, before DataFusion plans it. The statement is
/// planned as parsed here; DataFusion's `SQLOptions` check the plan again.
pub fn read_only_statement(sql: &str) -> Result<DfStatement, SqlError> {
    let mut statements = DFParser::parse_sql_with_dialect(sql, &GenericDialect {})
        .map_err(|e| SqlError::invalid(format!("SQL does not parse: {e}")))?;
    if statements.len() != 1 {
        return Err(SqlError::invalid(format!("send exactly one SQL statement (got {})", statements.len())));
    }
    let statement = statements.pop_front().ok_or_else(|| SqlError::invalid("send one SQL statement"))?;
    check(&statement)?;
    Ok(statement)
}

fn check(statement: &DfStatement) -> Result<(), SqlError> {
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            Statement::Query(_)
            | Statement::Explain { .. }
            | Statement::ExplainTable { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowFunctions { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowSchemas { .. }
            | Statement::ShowCatalogs { .. } => Ok(()),
            other => Err(read_only(first_words(&other.to_string()))),
        },
        DfStatement::Explain(_) => Ok(()),
        DfStatement::CreateExternalTable(_) => Err(read_only("CREATE EXTERNAL TABLE".into())),
        DfStatement::CopyTo(_) => Err(read_only("COPY".into())),
        other => Err(read_only(first_words(&other.to_string()))),
    }
}

fn read_only(what: String) -> SqlError {
    SqlError::new(
        SqlErrorKind::ReadOnly,
        format!("flamedb SQL is read-only: {what} statements are not allowed (use SELECT, EXPLAIN or SHOW)"),
    )
}

/// The statement's leading keywords (`CREATE TABLE`, `INSERT INTO`), for the error message.
fn first_words(sql: &str) -> String {
    sql.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase()
}

/// A stream that ends with a timeout error once `timeout` has passed since it was created.
pub struct Deadline {
    inner: SendableRecordBatchStream,
    sleep: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
    done: bool,
}

impl Deadline {
    pub fn new(inner: SendableRecordBatchStream, timeout: Duration) -> Self {
        Self { inner, sleep: Box::pin(tokio::time::sleep(timeout)), timeout, done: false }
    }
}

pub fn timeout_error(timeout: Duration) -> SqlError {
    SqlError::new(
        SqlErrorKind::Timeout,
        format!("the query ran longer than its timeout of {} (-sql.timeout)", humantime::format_duration(timeout)),
    )
}

impl Stream for Deadline {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(timeout_error(self.timeout).into())));
        }
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(None) = next {
            self.done = true;
        }
        next
    }
}

impl RecordBatchStream for Deadline {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_writes_are_named() {
        for ok in [
            "SELECT 1",
            "select * from samples limit 1",
            "EXPLAIN SELECT 1",
            "SHOW TABLES",
            "WITH a AS (SELECT 1) SELECT * FROM a",
        ] {
            assert!(read_only_statement(ok).is_ok(), "{ok}");
        }
        for (bad, word) in [
            ("CREATE TABLE t AS SELECT 1", "CREATE TABLE"),
            ("INSERT INTO profiles VALUES (1)", "INSERT INTO"),
            ("DROP TABLE profiles", "DROP TABLE"),
            ("DELETE FROM samples", "DELETE FROM"),
            ("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'", "CREATE EXTERNAL TABLE"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW"),
        ] {
            let e = read_only_statement(bad).unwrap_err();
            assert_eq!(e.kind, SqlErrorKind::ReadOnly, "{bad}");
            assert!(e.message.contains(word), "{bad}: {}", e.message);
        }
        assert_eq!(read_only_statement("SELECT 1; SELECT 2").unwrap_err().kind, SqlErrorKind::Invalid);
        assert_eq!(read_only_statement("SELEC 1").unwrap_err().kind, SqlErrorKind::Invalid);
    }
}
