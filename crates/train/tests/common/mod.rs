//! Helpers the trainer's integration tests share.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use serde_json::{Map, Value};

/// Every tensor of a safetensors file as f32, sorted by name.
pub fn sorted_tensors(file: &Path) -> Vec<(String, Vec<f32>)> {
    let t = candle_core::safetensors::load(file, &candle_core::Device::Cpu).unwrap();
    let mut v: Vec<(String, Vec<f32>)> = t
        .into_iter()
        .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Metrics without wall-clock fields.
pub fn deterministic(metrics: Vec<Map<String, Value>>) -> Vec<Map<String, Value>> {
    metrics
        .into_iter()
        .map(|m| {
            m.into_iter()
                .filter(|(k, _)| !k.starts_with("time/") && !k.starts_with("throughput/"))
                .collect()
        })
        .collect()
}
