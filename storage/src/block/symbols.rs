//! The symbols of a block: per partition (service), its strings, functions, mappings, locations
//! and stack-trace tree, as one Parquet file per table with a `partition` column. Ids are row
//! positions within a partition, so the files are written in id order and read back in it.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    ArrayRef, AsArray, BooleanBuilder, Int64Builder, ListBuilder, RecordBatch, StringBuilder, StructBuilder,
    UInt32Builder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Fields, Int64Type, Schema, SchemaRef, UInt32Type, UInt64Type};
use bytes::Bytes;
use flamedb_ingest::head::symbols::{
    Function, Line, Location, Mapping, StackTree, StringTable, SymbolPartition, Symbols,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::BlockError;
use super::schema::files;
use super::write::parquet_bytes;

fn u32f(name: &str) -> Field {
    Field::new(name, DataType::UInt32, false)
}

fn schema(fields: Vec<Field>) -> SchemaRef {
    let mut all = vec![u32f("partition")];
    all.extend(fields);
    Arc::new(Schema::new(all))
}

fn line_fields() -> Fields {
    Fields::from(vec![u32f("function"), Field::new("line", DataType::Int64, false)])
}

fn partitions_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| schema(vec![Field::new("name", DataType::Utf8, false)]));
    S.clone()
}
fn strings_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| schema(vec![Field::new("value", DataType::Utf8, false)]));
    S.clone()
}
fn functions_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema(vec![
            u32f("name"),
            u32f("system_name"),
            u32f("filename"),
            Field::new("start_line", DataType::Int64, false),
        ])
    });
    S.clone()
}
fn mappings_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema(vec![
            Field::new("memory_start", DataType::UInt64, false),
            Field::new("memory_limit", DataType::UInt64, false),
            Field::new("file_offset", DataType::UInt64, false),
            u32f("filename"),
            u32f("build_id"),
            Field::new("has_functions", DataType::Boolean, false),
        ])
    });
    S.clone()
}
fn locations_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| {
        schema(vec![
            u32f("mapping"),
            Field::new("address", DataType::UInt64, false),
            Field::new(
                "lines",
                DataType::List(Arc::new(Field::new("item", DataType::Struct(line_fields()), false))),
                false,
            ),
        ])
    });
    S.clone()
}
fn stacktraces_schema() -> SchemaRef {
    static S: LazyLock<SchemaRef> = LazyLock::new(|| schema(vec![u32f("parent"), u32f("location")]));
    S.clone()
}

/// The symbol files of a block, for partitions in block-local order.
pub fn symbols_batches(partitions: &[Arc<SymbolPartition>]) -> Result<Vec<(String, Bytes)>, BlockError> {
    let mut part = (UInt32Builder::new(), StringBuilder::new());
    let mut strings = (UInt32Builder::new(), StringBuilder::new());
    let mut functions =
        (UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new(), Int64Builder::new());
    let mut mappings = (
        UInt32Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt64Builder::new(),
        UInt32Builder::new(),
        UInt32Builder::new(),
        BooleanBuilder::new(),
    );
    let line_struct = StructBuilder::new(
        line_fields(),
        vec![Box::new(UInt32Builder::new()) as Box<dyn arrow::array::ArrayBuilder>, Box::new(Int64Builder::new())],
    );
    let mut locations = (
        UInt32Builder::new(),
        UInt32Builder::new(),
        UInt64Builder::new(),
        ListBuilder::new(line_struct).with_field(Arc::new(Field::new("item", DataType::Struct(line_fields()), false))),
    );
    let mut tree = (UInt32Builder::new(), UInt32Builder::new(), UInt32Builder::new());
    for (i, p) in partitions.iter().enumerate() {
        let i = i as u32;
        part.0.append_value(i);
        part.1.append_value(&p.name);
        let s = p.symbols.read();
        for id in 0..s.strings.len() as u32 {
            strings.0.append_value(i);
            strings.1.append_value(s.strings.get(id));
        }
        for f in &s.functions {
            functions.0.append_value(i);
            functions.1.append_value(f.name);
            functions.2.append_value(f.system_name);
            functions.3.append_value(f.filename);
            functions.4.append_value(f.start_line);
        }
        for m in &s.mappings {
            mappings.0.append_value(i);
            mappings.1.append_value(m.memory_start);
            mappings.2.append_value(m.memory_limit);
            mappings.3.append_value(m.file_offset);
            mappings.4.append_value(m.filename);
            mappings.5.append_value(m.build_id);
            mappings.6.append_value(m.has_functions);
        }
        for l in &s.locations {
            locations.0.append_value(i);
            locations.1.append_value(l.mapping);
            locations.2.append_value(l.address);
            let lines = locations.3.values();
            for line in &l.lines {
                if let Some(b) = lines.field_builder::<UInt32Builder>(0) {
                    b.append_value(line.function);
                }
                if let Some(b) = lines.field_builder::<Int64Builder>(1) {
                    b.append_value(line.line);
                }
                lines.append(true);
            }
            locations.3.append(true);
        }
        for (&parent, &loc) in s.tree.parents().iter().zip(s.tree.locations()) {
            tree.0.append_value(i);
            tree.1.append_value(parent);
            tree.2.append_value(loc);
        }
    }
    let batch = |schema: SchemaRef, cols: Vec<ArrayRef>| RecordBatch::try_new(schema, cols);
    let out = vec![
        (
            files::PARTITIONS,
            partitions_schema(),
            batch(partitions_schema(), vec![Arc::new(part.0.finish()), Arc::new(part.1.finish())])?,
        ),
        (
            files::STRINGS,
            strings_schema(),
            batch(strings_schema(), vec![Arc::new(strings.0.finish()), Arc::new(strings.1.finish())])?,
        ),
        (
            files::FUNCTIONS,
            functions_schema(),
            batch(
                functions_schema(),
                vec![
                    Arc::new(functions.0.finish()),
                    Arc::new(functions.1.finish()),
                    Arc::new(functions.2.finish()),
                    Arc::new(functions.3.finish()),
                    Arc::new(functions.4.finish()),
                ],
            )?,
        ),
        (
            files::MAPPINGS,
            mappings_schema(),
            batch(
                mappings_schema(),
                vec![
                    Arc::new(mappings.0.finish()),
                    Arc::new(mappings.1.finish()),
                    Arc::new(mappings.2.finish()),
                    Arc::new(mappings.3.finish()),
                    Arc::new(mappings.4.finish()),
                    Arc::new(mappings.5.finish()),
                    Arc::new(mappings.6.finish()),
                ],
            )?,
        ),
        (
            files::LOCATIONS,
            locations_schema(),
            batch(
                locations_schema(),
                vec![
                    Arc::new(locations.0.finish()),
                    Arc::new(locations.1.finish()),
                    Arc::new(locations.2.finish()),
                    Arc::new(locations.3.finish()),
                ],
            )?,
        ),
        (
            files::STACKTRACES,
            stacktraces_schema(),
            batch(
                stacktraces_schema(),
                vec![Arc::new(tree.0.finish()), Arc::new(tree.1.finish()), Arc::new(tree.2.finish())],
            )?,
        ),
    ];
    out.into_iter().map(|(name, schema, b)| Ok((name.to_string(), parquet_bytes(&[b], schema)?))).collect()
}

fn read_all(bytes: Bytes, expect: &SchemaRef, block: &str, name: &str) -> Result<Vec<RecordBatch>, BlockError> {
    let corrupt =
        |reason: String| BlockError::Corrupt { block: block.to_string(), reason: format!("{name}: {reason}") };
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024).build()?;
    let mut out = Vec::new();
    for b in reader {
        let b = b?;
        if b.schema().fields().len() != expect.fields().len()
            || b.schema().fields().iter().zip(expect.fields()).any(|(a, e)| a.data_type() != e.data_type())
        {
            return Err(corrupt("unexpected schema".into()));
        }
        out.push(b);
    }
    Ok(out)
}

/// Reads a block's symbol files into one `Symbols` per partition: (name, symbols), in
/// block-local partition order.
pub fn read_symbols(
    block: &str,
    mut file: impl FnMut(&str) -> Option<Bytes>,
) -> Result<Vec<(String, Symbols)>, BlockError> {
    let mut get = |name: &str, schema: SchemaRef| -> Result<Vec<RecordBatch>, BlockError> {
        let bytes = file(name)
            .ok_or_else(|| BlockError::Corrupt { block: block.to_string(), reason: format!("{name} is missing") })?;
        read_all(bytes, &schema, block, name)
    };
    let corrupt = |reason: &str| BlockError::Corrupt { block: block.to_string(), reason: reason.to_string() };
    let mut names: Vec<String> = Vec::new();
    for b in get(files::PARTITIONS, partitions_schema())? {
        let (p, n) = (b.column(0).as_primitive::<UInt32Type>(), b.column(1).as_string::<i32>());
        for i in 0..b.num_rows() {
            if p.value(i) as usize != names.len() {
                return Err(corrupt("partitions are not dense"));
            }
            names.push(n.value(i).to_string());
        }
    }
    let n = names.len();
    let part_of = |b: &RecordBatch, i: usize| -> Result<usize, BlockError> {
        let p = b.column(0).as_primitive::<UInt32Type>().value(i) as usize;
        if p >= n { Err(corrupt("row names an unknown partition")) } else { Ok(p) }
    };
    let mut strings: Vec<Vec<Box<str>>> = vec![Vec::new(); n];
    for b in get(files::STRINGS, strings_schema())? {
        let v = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            strings[part_of(&b, i)?].push(v.value(i).into());
        }
    }
    let mut functions: Vec<Vec<Function>> = vec![Vec::new(); n];
    for b in get(files::FUNCTIONS, functions_schema())? {
        let c = |k: usize| b.column(k).as_primitive::<UInt32Type>();
        let (name, sys, file, start) = (c(1), c(2), c(3), b.column(4).as_primitive::<Int64Type>());
        for i in 0..b.num_rows() {
            functions[part_of(&b, i)?].push(Function {
                name: name.value(i),
                system_name: sys.value(i),
                filename: file.value(i),
                start_line: start.value(i),
            });
        }
    }
    let mut mappings: Vec<Vec<Mapping>> = vec![Vec::new(); n];
    for b in get(files::MAPPINGS, mappings_schema())? {
        let u64c = |k: usize| b.column(k).as_primitive::<UInt64Type>();
        let u32c = |k: usize| b.column(k).as_primitive::<UInt32Type>();
        let has = b.column(6).as_boolean();
        for i in 0..b.num_rows() {
            mappings[part_of(&b, i)?].push(Mapping {
                memory_start: u64c(1).value(i),
                memory_limit: u64c(2).value(i),
                file_offset: u64c(3).value(i),
                filename: u32c(4).value(i),
                build_id: u32c(5).value(i),
                has_functions: has.value(i),
            });
        }
    }
    let mut locations: Vec<Vec<Location>> = vec![Vec::new(); n];
    for b in get(files::LOCATIONS, locations_schema())? {
        let mapping = b.column(1).as_primitive::<UInt32Type>();
        let address = b.column(2).as_primitive::<UInt64Type>();
        let lines = b.column(3).as_list::<i32>();
        let items = lines.values().as_struct();
        let func = items.column(0).as_primitive::<UInt32Type>();
        let line = items.column(1).as_primitive::<Int64Type>();
        let offsets = lines.value_offsets();
        for i in 0..b.num_rows() {
            let (a, z) = (offsets[i] as usize, offsets[i + 1] as usize);
            let ls = (a..z).map(|k| Line { function: func.value(k), line: line.value(k) }).collect();
            locations[part_of(&b, i)?].push(Location {
                mapping: mapping.value(i),
                address: address.value(i),
                lines: ls,
            });
        }
    }
    let mut parents: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut tree_locs: Vec<Vec<u32>> = vec![Vec::new(); n];
    for b in get(files::STACKTRACES, stacktraces_schema())? {
        let parent = b.column(1).as_primitive::<UInt32Type>();
        let loc = b.column(2).as_primitive::<UInt32Type>();
        for i in 0..b.num_rows() {
            let p = part_of(&b, i)?;
            parents[p].push(parent.value(i));
            tree_locs[p].push(loc.value(i));
        }
    }
    let mut out = Vec::with_capacity(n);
    for (p, name) in names.into_iter().enumerate() {
        let tree_parents = std::mem::take(&mut parents[p]);
        // A parent id is always smaller than its child's; anything else would loop forever.
        if tree_parents.iter().enumerate().any(|(i, &parent)| i > 0 && parent as usize >= i)
            || tree_locs[p].iter().any(|&l| l as usize >= locations[p].len().max(1))
        {
            return Err(corrupt("stack-trace tree is malformed"));
        }
        let symbols = Symbols::from_parts(
            StringTable::from_strings(std::mem::take(&mut strings[p])),
            std::mem::take(&mut functions[p]),
            std::mem::take(&mut mappings[p]),
            std::mem::take(&mut locations[p]),
            StackTree::from_parts(tree_parents, std::mem::take(&mut tree_locs[p])),
        );
        out.push((name, symbols));
    }
    Ok(out)
}
