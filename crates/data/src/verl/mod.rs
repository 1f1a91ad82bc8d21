//! verl-format training/validation parquet files (the format of One-Shot-RLVR's data files).
//!
//! Schema, as in `shared/data/train/*.parquet` (written by pandas/pyarrow):
//! ```text
//! data_source: string
//! prompt: list<element: struct<content: string, role: string>>
//! ability: string
//! reward_model: struct<ground_truth: string, style: string>
//! extra_info: struct<index: int64, ...other scalar fields, e.g. split: string>
//! ```
//! Other top-level columns (e.g. pandas' `__index_level_0__`) are ignored when reading.
//! [`write_verl_parquet`] writes exactly this schema back (Snappy, like the originals), so the
//! files load in verl and pandas.

mod columns;
mod read;
mod write;

pub(crate) use columns::scalar_column_json;
pub use read::read_verl_parquet;
pub use write::write_verl_parquet;

use serde::{Deserialize, Serialize};

/// One chat message of a prompt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatTurn {
    pub role: String,
    pub content: String,
}

impl ChatTurn {
    pub fn user(content: impl Into<String>) -> Self {
        ChatTurn {
            role: "user".into(),
            content: content.into(),
        }
    }
}

/// A scalar value of `extra_info` other than `index`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtraValue {
    Null,
    Int(i64),
    Float(f64),
    Str(String),
}

/// One row of a verl parquet file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerlRow {
    pub data_source: String,
    pub prompt: Vec<ChatTurn>,
    pub ability: String,
    /// `reward_model.ground_truth`: the label the reward compares against.
    pub ground_truth: String,
    /// `reward_model.style` ("rule" in every file of the paper).
    pub reward_style: String,
    /// `extra_info.index`: the example's id in its source data set (for DSR-sub it equals the
    /// row number; selection and the history file use this id).
    pub index: i64,
    /// The other `extra_info` fields, in file order (e.g. `split`).
    pub extra: Vec<(String, ExtraValue)>,
}

impl VerlRow {
    /// The content of the last user message (the question with its instruction suffix).
    pub fn user_text(&self) -> Option<&str> {
        self.prompt
            .iter()
            .rev()
            .find(|t| t.role == "user")
            .map(|t| t.content.as_str())
    }
}
