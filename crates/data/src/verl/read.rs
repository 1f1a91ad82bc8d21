//! Reading verl parquet files into [`VerlRow`]s; every bad row is reported with its row number.

use std::fs::File;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::columns::{FloatCol, IntCol, StrCol};
use super::{ChatTurn, ExtraValue, VerlRow};
use crate::error::{DataError, IssueLog, Result};

/// Reads every row of a verl-format parquet file.
///
/// Missing columns are a format error; rows with a null/missing prompt, label or index are
/// collected and returned together as [`DataError::BadRecords`] (row numbers are 1-based).
pub fn read_verl_parquet(path: &Path) -> Result<Vec<VerlRow>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| DataError::format(path, format!("not a readable parquet file: {e}")))?;
    let mut rows = Vec::new();
    let mut log = IssueLog::new(path);
    let mut rows_seen = 0;
    for batch in reader {
        let batch =
            batch.map_err(|e| DataError::format(path, format!("reading a row batch: {e}")))?;
        read_batch(path, &batch, rows_seen + 1, &mut rows, &mut log)?;
        rows_seen += batch.num_rows();
    }
    log.finish(rows)
}

fn column<'a>(path: &Path, batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| {
        DataError::format(
            path,
            format!("missing column `{name}` (not a verl-format file?)"),
        )
    })
}

fn struct_column<'a>(path: &Path, batch: &'a RecordBatch, name: &str) -> Result<&'a StructArray> {
    column(path, batch, name)?
        .as_struct_opt()
        .ok_or_else(|| DataError::format(path, format!("column `{name}` is not a struct")))
}

fn struct_field<'a>(
    path: &Path,
    parent: &'a StructArray,
    parent_name: &str,
    name: &str,
) -> Result<&'a ArrayRef> {
    parent.column_by_name(name).ok_or_else(|| {
        DataError::format(
            path,
            format!("column `{parent_name}` has no field `{name}`"),
        )
    })
}

fn str_col<'a>(path: &Path, array: &'a ArrayRef, name: &str) -> Result<StrCol<'a>> {
    StrCol::new(array).ok_or_else(|| {
        DataError::format(
            path,
            format!(
                "column `{name}` has type {}, expected string",
                array.data_type()
            ),
        )
    })
}

/// Per-field readers for the non-`index` scalar fields of `extra_info`.
enum ExtraCol<'a> {
    Str(StrCol<'a>),
    Int(IntCol<'a>),
    Float(FloatCol<'a>),
}

impl ExtraCol<'_> {
    fn get(&self, row: usize) -> ExtraValue {
        let value = match self {
            ExtraCol::Str(c) => c.get(row).map(|s| ExtraValue::Str(s.to_owned())),
            ExtraCol::Int(c) => c.get(row).map(ExtraValue::Int),
            ExtraCol::Float(c) => c.get(row).map(ExtraValue::Float),
        };
        value.unwrap_or(ExtraValue::Null)
    }
}

fn read_batch(
    path: &Path,
    batch: &RecordBatch,
    first_row: usize,
    rows: &mut Vec<VerlRow>,
    log: &mut IssueLog,
) -> Result<()> {
    let data_source = str_col(path, column(path, batch, "data_source")?, "data_source")?;
    let ability = str_col(path, column(path, batch, "ability")?, "ability")?;

    let prompt = column(path, batch, "prompt")?;
    let prompt = prompt.as_list_opt::<i32>().ok_or_else(|| {
        DataError::format(
            path,
            format!(
                "column `prompt` has type {}, expected list<struct>",
                prompt.data_type()
            ),
        )
    })?;
    let turns = prompt.values().as_struct_opt().ok_or_else(|| {
        DataError::format(
            path,
            "column `prompt` items are not {role, content} structs",
        )
    })?;
    let turn_role = str_col(
        path,
        struct_field(path, turns, "prompt", "role")?,
        "prompt.role",
    )?;
    let turn_content = str_col(
        path,
        struct_field(path, turns, "prompt", "content")?,
        "prompt.content",
    )?;

    let reward = struct_column(path, batch, "reward_model")?;
    let ground_truth = str_col(
        path,
        struct_field(path, reward, "reward_model", "ground_truth")?,
        "reward_model.ground_truth",
    )?;
    let style = str_col(
        path,
        struct_field(path, reward, "reward_model", "style")?,
        "reward_model.style",
    )?;

    let extra_info = struct_column(path, batch, "extra_info")?;
    let index_array = struct_field(path, extra_info, "extra_info", "index")?;
    let index = IntCol::new(index_array).ok_or_else(|| {
        DataError::format(
            path,
            format!(
                "`extra_info.index` has type {}, expected integer",
                index_array.data_type()
            ),
        )
    })?;
    let mut extra_cols = Vec::new();
    for (field, array) in extra_info.fields().iter().zip(extra_info.columns()) {
        if field.name() == "index" {
            continue;
        }
        let col = if let Some(c) = StrCol::new(array) {
            ExtraCol::Str(c)
        } else if let Some(c) = IntCol::new(array) {
            ExtraCol::Int(c)
        } else if let Some(c) = FloatCol::new(array) {
            ExtraCol::Float(c)
        } else {
            return Err(DataError::format(
                path,
                format!(
                    "`extra_info.{}` has unsupported type {}",
                    field.name(),
                    array.data_type()
                ),
            ));
        };
        extra_cols.push((field.name().clone(), col));
    }

    for row in 0..batch.num_rows() {
        let line = first_row + row;
        let mut ok = true;
        let mut required = |value: Option<&str>, field: &str| -> String {
            value.map(str::to_owned).unwrap_or_else(|| {
                log.push(line, Some(field), "is null");
                ok = false;
                String::new()
            })
        };
        let data_source_value = required(data_source.get(row), "data_source");
        let ability_value = required(ability.get(row), "ability");
        let style_value = required(
            (!reward.is_null(row)).then(|| style.get(row)).flatten(),
            "reward_model.style",
        );
        let label = required(
            (!reward.is_null(row))
                .then(|| ground_truth.get(row))
                .flatten(),
            "reward_model.ground_truth",
        );

        let mut messages = Vec::new();
        if prompt.is_null(row) {
            log.push(line, Some("prompt"), "is null");
            ok = false;
        } else {
            let offsets = prompt.value_offsets();
            for item in offsets[row] as usize..offsets[row + 1] as usize {
                match (turn_role.get(item), turn_content.get(item)) {
                    (Some(role), Some(content)) if !turns.is_null(item) => {
                        messages.push(ChatTurn {
                            role: role.to_owned(),
                            content: content.to_owned(),
                        })
                    }
                    _ => {
                        log.push(line, Some("prompt"), "has a null message, role or content");
                        ok = false;
                    }
                }
            }
            if messages.is_empty() && ok {
                log.push(line, Some("prompt"), "is an empty list");
                ok = false;
            }
        }

        let index_value = if extra_info.is_null(row) {
            None
        } else {
            index.get(row)
        };
        if index_value.is_none() {
            log.push(line, Some("extra_info.index"), "is null");
            ok = false;
        }
        if ok {
            let extra = if extra_info.is_null(row) {
                Vec::new()
            } else {
                extra_cols
                    .iter()
                    .map(|(name, col)| (name.clone(), col.get(row)))
                    .collect()
            };
            rows.push(VerlRow {
                data_source: data_source_value,
                prompt: messages,
                ability: ability_value,
                ground_truth: label,
                reward_style: style_value,
                index: index_value.unwrap_or_default(),
                extra,
            });
        }
    }
    Ok(())
}
