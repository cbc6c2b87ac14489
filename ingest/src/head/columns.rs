//! Arrow-native row storage of the head: rows are appended to plain vectors and sealed into
//! immutable Arrow record batches every `CHUNK_ROWS` rows. A scan shares the sealed batches
//! (zero-copy) and copies only the small open chunk, so readers never block writers for long.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampNanosecondArray, UInt32Array, UInt64Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use roaring::RoaringBitmap;

/// Rows per sealed chunk: large enough for vectorized scans, small enough that copying the open
/// chunk for a snapshot is cheap.
pub const CHUNK_ROWS: usize = 64 * 1024;

/// The time zone of every timestamp column: instants, not wall-clock times.
pub const TIME_ZONE: &str = "UTC";

/// Timestamp type of the `time` columns.
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(TIME_ZONE.into()))
}

/// Columns of a sample row, in order.
pub mod sample_col {
    pub const SERIES_ID: usize = 0;
    pub const TIME: usize = 1;
    pub const PARTITION: usize = 2;
    pub const STACKTRACE_ID: usize = 3;
    pub const VALUE: usize = 4;
    pub const SPAN_ID: usize = 5;
}

/// Columns of a profile row, in order.
pub mod profile_col {
    pub const SERIES_ID: usize = 0;
    pub const TIME: usize = 1;
    pub const DURATION: usize = 2;
    pub const TOTAL: usize = 3;
    pub const PARTITION: usize = 4;
    pub const SAMPLE_COUNT: usize = 5;
    pub const PROFILE_ID: usize = 6;
}

/// Schema of sealed sample chunks: one row per (profile, stack trace, span) with its value.
pub fn sample_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt32, false),
            Field::new("time", time_type(), false),
            Field::new("partition", DataType::UInt64, false),
            Field::new("stacktrace_id", DataType::UInt32, false),
            Field::new("value", DataType::Int64, false),
            Field::new("span_id", DataType::UInt64, true),
        ]))
    });
    S.clone()
}

/// Schema of sealed profile chunks: one row per profile of a series, with its total so that
/// time-series queries never read samples.
pub fn profile_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("series_id", DataType::UInt32, false),
            Field::new("time", time_type(), false),
            Field::new("duration_nanos", DataType::Int64, false),
            Field::new("total", DataType::Int64, false),
            Field::new("partition", DataType::UInt64, false),
            Field::new("sample_count", DataType::UInt32, false),
            Field::new("profile_id", DataType::Utf8, true),
        ]))
    });
    S.clone()
}

/// A sealed (or snapshotted) chunk with what pruning needs: its time range and series.
#[derive(Debug)]
pub struct Chunk {
    pub batch: RecordBatch,
    pub min_time_nanos: i64,
    pub max_time_nanos: i64,
    pub series: RoaringBitmap,
}

impl Chunk {
    pub fn overlaps(&self, min: i64, max: i64) -> bool {
        self.num_rows() > 0 && self.max_time_nanos >= min && self.min_time_nanos <= max
    }

    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// One sample row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleRow {
    pub series_id: u32,
    pub time_nanos: i64,
    pub partition: u64,
    pub stacktrace_id: u32,
    pub value: i64,
    pub span_id: Option<u64>,
}

/// One profile row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    pub series_id: u32,
    pub time_nanos: i64,
    pub duration_nanos: i64,
    pub total: i64,
    pub partition: u64,
    pub sample_count: u32,
    pub profile_id: Option<String>,
}

/// Rows of one kind, column-wise, and how to turn them into a record batch.
pub trait RowBuffer: Default {
    type Row;
    fn push(&mut self, row: Self::Row) -> (u32, i64);
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn to_batch(&self) -> RecordBatch;
    fn into_batch(self) -> RecordBatch;
}

#[derive(Debug, Default)]
pub struct SampleBuffer {
    series_id: Vec<u32>,
    time: Vec<i64>,
    partition: Vec<u64>,
    stacktrace_id: Vec<u32>,
    value: Vec<i64>,
    span_id: Vec<u64>,
    span_valid: Vec<bool>,
}

impl RowBuffer for SampleBuffer {
    type Row = SampleRow;

    fn push(&mut self, r: SampleRow) -> (u32, i64) {
        self.series_id.push(r.series_id);
        self.time.push(r.time_nanos);
        self.partition.push(r.partition);
        self.stacktrace_id.push(r.stacktrace_id);
        self.value.push(r.value);
        self.span_id.push(r.span_id.unwrap_or(0));
        self.span_valid.push(r.span_id.is_some());
        (r.series_id, r.time_nanos)
    }

    fn len(&self) -> usize {
        self.series_id.len()
    }

    fn to_batch(&self) -> RecordBatch {
        let b = SampleBuffer {
            series_id: self.series_id.clone(),
            time: self.time.clone(),
            partition: self.partition.clone(),
            stacktrace_id: self.stacktrace_id.clone(),
            value: self.value.clone(),
            span_id: self.span_id.clone(),
            span_valid: self.span_valid.clone(),
        };
        b.into_batch()
    }

    fn into_batch(self) -> RecordBatch {
        let nulls = NullBuffer::new(BooleanBuffer::from(self.span_valid));
        let nulls = (nulls.null_count() > 0).then_some(nulls);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(self.series_id)),
            Arc::new(TimestampNanosecondArray::from(self.time).with_timezone(TIME_ZONE)),
            Arc::new(UInt64Array::from(self.partition)),
            Arc::new(UInt32Array::from(self.stacktrace_id)),
            Arc::new(Int64Array::from(self.value)),
            Arc::new(UInt64Array::new(self.span_id.into(), nulls)),
        ];
        batch(sample_schema(), columns)
    }
}

#[derive(Debug, Default)]
pub struct ProfileBuffer {
    series_id: Vec<u32>,
    time: Vec<i64>,
    duration: Vec<i64>,
    total: Vec<i64>,
    partition: Vec<u64>,
    sample_count: Vec<u32>,
    profile_id: Vec<Option<String>>,
}

impl RowBuffer for ProfileBuffer {
    type Row = ProfileRow;

    fn push(&mut self, r: ProfileRow) -> (u32, i64) {
        self.series_id.push(r.series_id);
        self.time.push(r.time_nanos);
        self.duration.push(r.duration_nanos);
        self.total.push(r.total);
        self.partition.push(r.partition);
        self.sample_count.push(r.sample_count);
        self.profile_id.push(r.profile_id);
        (r.series_id, r.time_nanos)
    }

    fn len(&self) -> usize {
        self.series_id.len()
    }

    fn to_batch(&self) -> RecordBatch {
        let b = ProfileBuffer {
            series_id: self.series_id.clone(),
            time: self.time.clone(),
            duration: self.duration.clone(),
            total: self.total.clone(),
            partition: self.partition.clone(),
            sample_count: self.sample_count.clone(),
            profile_id: self.profile_id.clone(),
        };
        b.into_batch()
    }

    fn into_batch(self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(UInt32Array::from(self.series_id)),
            Arc::new(TimestampNanosecondArray::from(self.time).with_timezone(TIME_ZONE)),
            Arc::new(Int64Array::from(self.duration)),
            Arc::new(Int64Array::from(self.total)),
            Arc::new(UInt64Array::from(self.partition)),
            Arc::new(UInt32Array::from(self.sample_count)),
            Arc::new(StringArray::from(self.profile_id)),
        ];
        batch(profile_schema(), columns)
    }
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> RecordBatch {
    // The columns are built right above from vectors of equal length with the schema's types, so
    // this cannot fail; an empty batch is the safe answer if it ever did.
    RecordBatch::try_new(schema.clone(), columns).unwrap_or_else(|_| RecordBatch::new_empty(schema))
}

/// Sealed chunks plus the open buffer of one table.
#[derive(Debug, Default)]
pub struct ChunkedTable<B: RowBuffer> {
    sealed: Vec<Arc<Chunk>>,
    open: B,
    open_min: i64,
    open_max: i64,
    open_series: RoaringBitmap,
    rows: usize,
}

impl<B: RowBuffer> ChunkedTable<B> {
    pub fn push(&mut self, row: B::Row) {
        if self.open.len() == 0 {
            self.open_min = i64::MAX;
            self.open_max = i64::MIN;
        }
        let (series, t) = self.open.push(row);
        self.open_min = self.open_min.min(t);
        self.open_max = self.open_max.max(t);
        self.open_series.insert(series);
        self.rows += 1;
        if self.open.len() >= CHUNK_ROWS {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let open = std::mem::take(&mut self.open);
        let chunk = Chunk {
            batch: open.into_batch(),
            min_time_nanos: self.open_min,
            max_time_nanos: self.open_max,
            series: std::mem::take(&mut self.open_series),
        };
        self.sealed.push(Arc::new(chunk));
    }

    /// Every chunk as of now: the sealed ones shared, the open one copied.
    pub fn snapshot(&self) -> Vec<Arc<Chunk>> {
        let mut out = self.sealed.clone();
        if self.open.len() > 0 {
            out.push(Arc::new(Chunk {
                batch: self.open.to_batch(),
                min_time_nanos: self.open_min,
                max_time_nanos: self.open_max,
                series: self.open_series.clone(),
            }));
        }
        out
    }

    pub fn rows(&self) -> usize {
        self.rows
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::UInt64Type;

    use super::*;

    fn row(i: u32) -> SampleRow {
        SampleRow {
            series_id: i % 3,
            time_nanos: i as i64,
            partition: 1,
            stacktrace_id: i,
            value: 1,
            span_id: i.is_multiple_of(2).then_some(i as u64),
        }
    }

    #[test]
    fn seals_and_snapshots() {
        let mut t = ChunkedTable::<SampleBuffer>::default();
        for i in 0..(CHUNK_ROWS as u32 + 10) {
            t.push(row(i));
        }
        let snap = t.snapshot();
        assert_eq!(snap.len(), 2);
        assert_eq!(snap[0].num_rows(), CHUNK_ROWS);
        assert_eq!(snap[1].num_rows(), 10);
        assert_eq!(snap[1].min_time_nanos, CHUNK_ROWS as i64);
        assert_eq!(snap[0].series.len(), 3);
        assert!(!snap[0].overlaps(CHUNK_ROWS as i64, i64::MAX));
        let span = snap[1].batch.column(sample_col::SPAN_ID).as_primitive::<UInt64Type>();
        assert_eq!(span.null_count(), 5);
        assert_eq!(t.rows(), CHUNK_ROWS + 10);
    }

    #[test]
    fn rows_without_span_are_null() {
        let mut t = ChunkedTable::<SampleBuffer>::default();
        t.push(SampleRow { span_id: None, ..row(1) });
        let snap = t.snapshot();
        assert_eq!(snap[0].batch.column(sample_col::SPAN_ID).null_count(), 1);
    }
}
