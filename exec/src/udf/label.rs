//! `label(labels, 'name')`: the value of one label of a row's series, `''` when absent (the
//! Prometheus rule that a missing label equals the empty string). Label matchers are written with
//! it, and the head scan recognises and evaluates them against its series index instead.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, MapArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

use crate::schema::labels_type;

pub const NAME: &str = "label";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LabelUdf {
    signature: Signature,
}

impl Default for LabelUdf {
    fn default() -> Self {
        Self {
            signature: Signature::new(TypeSignature::Exact(vec![labels_type(), DataType::Utf8]), Volatility::Immutable),
        }
    }
}

/// The UDF, ready to register.
pub fn label_udf() -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(LabelUdf::default()))
}

impl ScalarUDFImpl for LabelUdf {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [labels, name] = args.args.as_slice() else {
            return exec_err!("label() takes (labels, name)");
        };
        let name = match name {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(n))) => n.clone(),
            _ => return exec_err!("label(): the name must be a string literal"),
        };
        match labels {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(lookup(a, &name)?)),
            ColumnarValue::Scalar(s) => {
                let a = s.to_array()?;
                let out = lookup(&a, &name)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
            }
        }
    }
}

fn lookup(labels: &ArrayRef, name: &str) -> Result<ArrayRef> {
    let Some(map) = labels.as_any().downcast_ref::<MapArray>() else {
        return exec_err!("label(): expected a map of labels, got {}", labels.data_type());
    };
    let keys = map.keys().as_string::<i32>();
    let values = map.values().as_string::<i32>();
    let offsets = map.value_offsets();
    let mut out = StringBuilder::with_capacity(map.len(), map.len() * 8);
    for row in 0..map.len() {
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        let found = (start..end).find(|&i| keys.value(i) == name);
        out.append_value(found.map_or("", |i| values.value(i)));
    }
    Ok(Arc::new(out.finish()))
}
