//! The tables the read path exposes to DataFusion. Both carry the tenant and the series labels as
//! columns, so SQL and the query API filter and group the same way; both are materialized only
//! when a query projects them.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use flamedb_ingest::head::columns::time_type;

/// Column names shared by both tables.
pub mod col {
    pub const TENANT: &str = "tenant";
    pub const SERIES_ID: &str = "series_id";
    pub const LABELS: &str = "labels";
    pub const TIME: &str = "time";
    pub const PARTITION: &str = "partition";
    pub const STACKTRACE_ID: &str = "stacktrace_id";
    pub const VALUE: &str = "value";
    pub const SPAN_ID: &str = "span_id";
    pub const DURATION: &str = "duration_nanos";
    pub const TOTAL: &str = "total";
    pub const SAMPLE_COUNT: &str = "sample_count";
    pub const PROFILE_ID: &str = "profile_id";
}

/// Which table of the head a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeadTable {
    /// One row per (profile, stack trace): what flame graphs aggregate.
    Samples,
    /// One row per profile with its total: what time series aggregate.
    Profiles,
}

impl HeadTable {
    pub fn schema(self) -> SchemaRef {
        match self {
            HeadTable::Samples => samples_schema(),
            HeadTable::Profiles => profiles_schema(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HeadTable::Samples => "samples",
            HeadTable::Profiles => "profiles",
        }
    }
}

/// `Map<Utf8, Utf8>` with the field names arrow's `MapBuilder` uses.
pub fn labels_type() -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("keys", DataType::Utf8, false),
            Field::new("values", DataType::Utf8, true),
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// The columns both tables start with. After `tenant` and `labels` (computed by the scan), every
/// column is the head chunk's column of the same position minus two.
fn table(rest: Vec<Field>) -> SchemaRef {
    let mut fields = vec![
        Field::new(col::TENANT, DataType::Utf8, false),
        Field::new(col::SERIES_ID, DataType::UInt32, false),
        Field::new(col::LABELS, labels_type(), false),
        Field::new(col::TIME, time_type(), false),
    ];
    fields.extend(rest);
    Arc::new(Schema::new(fields))
}

/// Schema of the `samples` table.
pub fn samples_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        table(vec![
            Field::new(col::PARTITION, DataType::UInt64, false),
            Field::new(col::STACKTRACE_ID, DataType::UInt32, false),
            Field::new(col::VALUE, DataType::Int64, false),
            Field::new(col::SPAN_ID, DataType::UInt64, true),
        ])
    });
    S.clone()
}

/// Schema of the `profiles` table.
pub fn profiles_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        table(vec![
            Field::new(col::DURATION, DataType::Int64, false),
            Field::new(col::TOTAL, DataType::Int64, false),
            Field::new(col::PARTITION, DataType::UInt64, false),
            Field::new(col::SAMPLE_COUNT, DataType::UInt32, false),
            Field::new(col::PROFILE_ID, DataType::Utf8, true),
        ])
    });
    S.clone()
}

#[cfg(test)]
mod tests {
    use flamedb_ingest::head::columns::{profile_schema, sample_schema};

    use super::*;

    /// The scan maps table column `i >= 3` to head column `i - 2` and `series_id` to head column 0.
    #[test]
    fn table_columns_follow_head_columns() {
        for (table, head) in [(samples_schema(), sample_schema()), (profiles_schema(), profile_schema())] {
            assert_eq!(table.fields().len(), head.fields().len() + 2);
            assert_eq!(table.field(1), head.field(0));
            for i in 3..table.fields().len() {
                assert_eq!(table.field(i), head.field(i - 2), "column {i}");
            }
        }
    }
}
