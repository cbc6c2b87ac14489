//! Bounds-checked access to the `ProfilesDictionary` tables: every index a request carries is
//! untrusted, so a bad one is an error naming the table, never a panic.

use flamedb_proto::opentelemetry::proto::common::v1::any_value::Value;
use flamedb_proto::opentelemetry::proto::profiles::v1development as otel;

/// An index pointing outside its dictionary table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table} index {index} out of range (table has {len} entries)")]
pub struct IndexError {
    pub table: &'static str,
    pub index: i64,
    pub len: usize,
}

/// The dictionary of one request.
pub(crate) struct Dictionary<'a> {
    pub d: &'a otel::ProfilesDictionary,
}

fn at<'t, T>(table: &'static str, items: &'t [T], index: i32) -> Result<&'t T, IndexError> {
    usize::try_from(index).ok().and_then(|i| items.get(i)).ok_or(IndexError {
        table,
        index: i64::from(index),
        len: items.len(),
    })
}

impl<'a> Dictionary<'a> {
    pub fn new(d: &'a otel::ProfilesDictionary) -> Self {
        Self { d }
    }

    pub fn string(&self, index: i32) -> Result<&'a str, IndexError> {
        at("string", &self.d.string_table, index).map(String::as_str)
    }

    pub fn mapping(&self, index: i32) -> Result<&'a otel::Mapping, IndexError> {
        at("mapping", &self.d.mapping_table, index)
    }

    pub fn location(&self, index: i32) -> Result<&'a otel::Location, IndexError> {
        at("location", &self.d.location_table, index)
    }

    pub fn function(&self, index: i32) -> Result<&'a otel::Function, IndexError> {
        at("function", &self.d.function_table, index)
    }

    pub fn link(&self, index: i32) -> Result<&'a otel::Link, IndexError> {
        at("link", &self.d.link_table, index)
    }

    pub fn stack(&self, index: i32) -> Result<&'a otel::Stack, IndexError> {
        at("stack", &self.d.stack_table, index)
    }

    /// The key and value of attribute `index`.
    pub fn attribute(&self, index: i32) -> Result<(&'a str, Option<&'a Value>), IndexError> {
        let a = at("attribute", &self.d.attribute_table, index)?;
        Ok((self.string(a.key_strindex)?, a.value.as_ref().and_then(|v| v.value.as_ref())))
    }

    /// The string value of the first attribute named `key` among `indices`; "" when absent.
    pub fn string_attribute(&self, indices: &[i32], key: &str) -> Result<&'a str, IndexError> {
        for &i in indices {
            let (k, v) = self.attribute(i)?;
            if k == key {
                return Ok(match v {
                    Some(Value::StringValue(s)) => s.as_str(),
                    _ => "",
                });
            }
        }
        Ok("")
    }
}

/// An attribute value as a label value: strings as they are, integers in decimal; other kinds
/// (and empty strings) make no label.
pub(crate) fn label_value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}
