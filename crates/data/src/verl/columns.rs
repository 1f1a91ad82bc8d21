//! Typed, null-aware views over Arrow columns, so the verl reader can ask "string at row i?"
//! without caring whether a writer used 32- or 64-bit offsets or 32- or 64-bit integers.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use arrow_schema::DataType;

/// A string column (Utf8 or LargeUtf8).
pub(crate) struct StrCol<'a>(&'a dyn Array);

impl<'a> StrCol<'a> {
    pub(crate) fn new(array: &'a ArrayRef) -> Option<Self> {
        matches!(array.data_type(), DataType::Utf8 | DataType::LargeUtf8)
            .then(|| StrCol(array.as_ref()))
    }
    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        if self.0.is_null(row) {
            return None;
        }
        match self.0.data_type() {
            DataType::Utf8 => Some(self.0.as_string::<i32>().value(row)),
            _ => Some(self.0.as_string::<i64>().value(row)),
        }
    }
}

/// An integer column (Int32 or Int64), read as i64.
pub(crate) struct IntCol<'a>(&'a dyn Array);

impl<'a> IntCol<'a> {
    pub(crate) fn new(array: &'a ArrayRef) -> Option<Self> {
        matches!(array.data_type(), DataType::Int32 | DataType::Int64)
            .then(|| IntCol(array.as_ref()))
    }
    pub(crate) fn get(&self, row: usize) -> Option<i64> {
        if self.0.is_null(row) {
            return None;
        }
        match self.0.data_type() {
            DataType::Int32 => Some(i64::from(self.0.as_primitive::<Int32Type>().value(row))),
            _ => Some(self.0.as_primitive::<Int64Type>().value(row)),
        }
    }
}

/// A float column (Float32 or Float64), read as f64.
pub(crate) struct FloatCol<'a>(&'a dyn Array);

impl<'a> FloatCol<'a> {
    pub(crate) fn new(array: &'a ArrayRef) -> Option<Self> {
        matches!(array.data_type(), DataType::Float32 | DataType::Float64)
            .then(|| FloatCol(array.as_ref()))
    }
    pub(crate) fn get(&self, row: usize) -> Option<f64> {
        if self.0.is_null(row) {
            return None;
        }
        match self.0.data_type() {
            DataType::Float32 => Some(f64::from(self.0.as_primitive::<Float32Type>().value(row))),
            _ => Some(self.0.as_primitive::<Float64Type>().value(row)),
        }
    }
}

/// A string, integer or float column as JSON values (nulls as `null`); `None` for other types.
pub(crate) fn scalar_column_json(array: &ArrayRef) -> Option<Vec<serde_json::Value>> {
    use serde_json::Value;
    let rows = 0..array.len();
    if let Some(c) = StrCol::new(array) {
        return Some(
            rows.map(|i| {
                c.get(i)
                    .map_or(Value::Null, |s| Value::String(s.to_owned()))
            })
            .collect(),
        );
    }
    if let Some(c) = IntCol::new(array) {
        return Some(
            rows.map(|i| c.get(i).map_or(Value::Null, Value::from))
                .collect(),
        );
    }
    if let Some(c) = FloatCol::new(array) {
        return Some(
            rows.map(|i| c.get(i).map_or(Value::Null, Value::from))
                .collect(),
        );
    }
    None
}
