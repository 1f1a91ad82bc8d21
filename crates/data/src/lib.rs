//! verl parquet and benchmark jsonl readers, prompt templates, example selection, scoring
