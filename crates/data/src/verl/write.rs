//! Writing [`VerlRow`]s as a verl-format parquet file with the same Arrow schema as the paper's
//! files (field names and order included), Snappy-compressed.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, Field, Fields, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{ExtraValue, VerlRow};
use crate::error::{DataError, Result};

fn string_array<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

/// The Arrow type of one non-index `extra_info` field, from its first non-null value.
fn extra_type(rows: &[VerlRow], slot: usize) -> DataType {
    rows.iter()
        .find_map(|r| match &r.extra[slot].1 {
            ExtraValue::Null => None,
            ExtraValue::Int(_) => Some(DataType::Int64),
            ExtraValue::Float(_) => Some(DataType::Float64),
            ExtraValue::Str(_) => Some(DataType::Utf8),
        })
        .unwrap_or(DataType::Utf8)
}

fn extra_array(rows: &[VerlRow], slot: usize, name: &str, ty: &DataType) -> Result<ArrayRef> {
    let mismatch = |row: usize| {
        DataError::Invalid(format!(
            "row {}: `extra_info.{name}` changes type (first seen as {ty})",
            row + 1
        ))
    };
    let array: ArrayRef = match ty {
        DataType::Int64 => {
            let mut values = Vec::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                values.push(match &r.extra[slot].1 {
                    ExtraValue::Null => None,
                    ExtraValue::Int(v) => Some(*v),
                    _ => return Err(mismatch(i)),
                });
            }
            Arc::new(Int64Array::from(values))
        }
        DataType::Float64 => {
            let mut values = Vec::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                values.push(match &r.extra[slot].1 {
                    ExtraValue::Null => None,
                    ExtraValue::Float(v) => Some(*v),
                    ExtraValue::Int(v) => Some(*v as f64),
                    _ => return Err(mismatch(i)),
                });
            }
            Arc::new(Float64Array::from(values))
        }
        _ => {
            let mut values = Vec::with_capacity(rows.len());
            for (i, r) in rows.iter().enumerate() {
                values.push(match &r.extra[slot].1 {
                    ExtraValue::Null => None,
                    ExtraValue::Str(v) => Some(v.as_str()),
                    _ => return Err(mismatch(i)),
                });
            }
            Arc::new(StringArray::from(values))
        }
    };
    Ok(array)
}

fn extra_info_array(rows: &[VerlRow]) -> Result<StructArray> {
    let names: Vec<&str> = rows
        .first()
        .map(|r| r.extra.iter().map(|(n, _)| n.as_str()).collect())
        .unwrap_or_default();
    for (i, row) in rows.iter().enumerate() {
        let row_names: Vec<&str> = row.extra.iter().map(|(n, _)| n.as_str()).collect();
        if row_names != names {
            return Err(DataError::Invalid(format!(
                "row {}: extra_info fields {row_names:?} differ from the first row's {names:?}",
                i + 1
            )));
        }
    }
    let mut fields = vec![Field::new("index", DataType::Int64, true)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(Int64Array::from_iter_values(
        rows.iter().map(|r| r.index),
    ))];
    for (slot, name) in names.iter().enumerate() {
        let ty = extra_type(rows, slot);
        arrays.push(extra_array(rows, slot, name, &ty)?);
        fields.push(Field::new(*name, ty, true));
    }
    StructArray::try_new(Fields::from(fields), arrays, None)
        .map_err(|e| DataError::Invalid(format!("building extra_info: {e}")))
}

fn prompt_array(rows: &[VerlRow]) -> Result<ListArray> {
    let turns = rows.iter().flat_map(|r| r.prompt.iter());
    let message_fields = Fields::from(vec![
        Field::new("content", DataType::Utf8, true),
        Field::new("role", DataType::Utf8, true),
    ]);
    let messages = StructArray::try_new(
        message_fields.clone(),
        vec![
            string_array(turns.clone().map(|t| t.content.as_str())),
            string_array(turns.map(|t| t.role.as_str())),
        ],
        None,
    )
    .map_err(|e| DataError::Invalid(format!("building prompt messages: {e}")))?;
    let item = Arc::new(Field::new(
        "element",
        DataType::Struct(message_fields),
        true,
    ));
    let offsets = OffsetBuffer::from_lengths(rows.iter().map(|r| r.prompt.len()));
    ListArray::try_new(item, offsets, Arc::new(messages), None)
        .map_err(|e| DataError::Invalid(format!("building prompt lists: {e}")))
}

/// Writes `rows` to `path` (created or truncated) in the verl schema.
pub fn write_verl_parquet(path: &Path, rows: &[VerlRow]) -> Result<()> {
    let prompt = prompt_array(rows)?;
    let reward_fields = Fields::from(vec![
        Field::new("ground_truth", DataType::Utf8, true),
        Field::new("style", DataType::Utf8, true),
    ]);
    let reward = StructArray::try_new(
        reward_fields,
        vec![
            string_array(rows.iter().map(|r| r.ground_truth.as_str())),
            string_array(rows.iter().map(|r| r.reward_style.as_str())),
        ],
        None,
    )
    .map_err(|e| DataError::Invalid(format!("building reward_model: {e}")))?;
    let extra_info = extra_info_array(rows)?;

    let schema = Arc::new(Schema::new(vec![
        Field::new("data_source", DataType::Utf8, true),
        Field::new("prompt", prompt.data_type().clone(), true),
        Field::new("ability", DataType::Utf8, true),
        Field::new("reward_model", reward.data_type().clone(), true),
        Field::new("extra_info", extra_info.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            string_array(rows.iter().map(|r| r.data_source.as_str())),
            Arc::new(prompt),
            string_array(rows.iter().map(|r| r.ability.as_str())),
            Arc::new(reward),
            Arc::new(extra_info),
        ],
    )
    .map_err(|e| DataError::Invalid(format!("building the record batch: {e}")))?;

    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let parquet_err =
        |e: parquet::errors::ParquetError| DataError::format(path, format!("writing parquet: {e}"));
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_err)?;
    writer.write(&batch).map_err(parquet_err)?;
    writer.close().map_err(parquet_err)?;
    Ok(())
}
