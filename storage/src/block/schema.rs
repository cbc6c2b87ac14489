//! Arrow schemas of the block's Parquet files (see `docs/block-format.md`).

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use flamedb_ingest::head::columns::time_type;

/// File names inside a block directory.
pub mod files {
    pub const INDEX: &str = "index.parquet";
    pub const PROFILES: &str = "profiles.parquet";
    pub const SYMBOLS_DIR: &str = "symbols/";
    pub const PARTITIONS: &str = "symbols/partitions.parquet";
    pub const STRINGS: &str = "symbols/strings.parquet";
    pub const FUNCTIONS: &str = "symbols/functions.parquet";
    pub const MAPPINGS: &str = "symbols/mappings.parquet";
    pub const LOCATIONS: &str = "symbols/locations.parquet";
    pub const STACKTRACES: &str = "symbols/stacktraces.parquet";
}

/// Column indexes of `profiles.parquet`.
pub mod profiles_col {
    pub const SERIES_ID: usize = 0;
    pub const TIME: usize = 1;
    pub const DURATION: usize = 2;
    pub const TOTAL: usize = 3;
    pub const PARTITION: usize = 4;
    pub const PROFILE_ID: usize = 5;
    pub const STACKTRACE_IDS: usize = 6;
    pub const VALUES: usize = 7;
    pub const SPAN_IDS: usize = 8;
}

pub fn stacktrace_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::UInt32, false))
}

pub fn value_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::Int64, false))
}

pub fn span_item() -> FieldRef {
    Arc::new(Field::new("item", DataType::UInt64, false))
}

pub fn label_item(name: &str) -> FieldRef {
    Arc::new(Field::new(name, DataType::Utf8, false))
}

/// `profiles.parquet`: one row per profile of a series, sorted by (series_id, time). The samples
/// are parallel lists; `span_ids` is null when no sample of the profile has a span.
pub fn profiles_file_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt32, false),
            Field::new("time", time_type(), false),
            Field::new("duration_nanos", DataType::Int64, false),
            Field::new("total", DataType::Int64, false),
            Field::new("partition", DataType::UInt32, false),
            Field::new("profile_id", DataType::Utf8, true),
            Field::new("stacktrace_ids", DataType::List(stacktrace_item()), false),
            Field::new("values", DataType::List(value_item()), false),
            Field::new("span_ids", DataType::List(span_item()), true),
        ]))
    });
    S.clone()
}

/// `index.parquet`: one row per series, ids dense and in label order.
pub fn index_file_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt32, false),
            Field::new("fingerprint", DataType::UInt64, false),
            Field::new("min_time_nanos", DataType::Int64, false),
            Field::new("max_time_nanos", DataType::Int64, false),
            Field::new("label_names", DataType::List(label_item("name")), false),
            Field::new("label_values", DataType::List(label_item("value")), false),
        ]))
    });
    S.clone()
}
