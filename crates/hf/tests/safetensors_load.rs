//! Loading single-file and sharded safetensors checkpoints, and the errors for broken ones.

use candle_core::{DType, Device, Tensor};
use oneshot_hf::{load_safetensors, write_checkpoint_with, WriteOptions};
use std::collections::HashMap;
use std::path::Path;

// Values exactly representable in bf16 and f16, so every dtype round-trips without rounding.
const VALUES: [f32; 6] = [0.5, -1.25, 3.0, 0.0, -2.0, 96.0];

fn sample(dtype: DType) -> Tensor {
    Tensor::new(&VALUES, &Device::Cpu)
        .unwrap()
        .reshape((2, 3))
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn save(path: &Path, tensors: Vec<(&str, Tensor)>) {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

fn as_f32(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn single_file_in_each_float_dtype_converts_to_the_requested_dtype() {
    for disk in [DType::F32, DType::BF16, DType::F16] {
        let dir = tempfile::tempdir().unwrap();
        let ids = Tensor::new(&[7i64, 8, 9], &Device::Cpu).unwrap();
        save(
            &dir.path().join("model.safetensors"),
            vec![("w", sample(disk)), ("position_ids", ids)],
        );
        for want in [DType::F32, DType::BF16] {
            let got = load_safetensors(dir.path(), want, &Device::Cpu).unwrap();
            assert_eq!(got.len(), 2);
            let w = &got["w"];
            assert_eq!(
                (w.dtype(), w.dims()),
                (want, &[2usize, 3][..]),
                "disk {disk:?}"
            );
            assert_eq!(as_f32(w), VALUES, "disk {disk:?} -> {want:?}");
            // Integer buffers are not weights: their dtype is kept.
            assert_eq!(got["position_ids"].dtype(), DType::I64);
            assert_eq!(got["position_ids"].to_vec1::<i64>().unwrap(), vec![7, 8, 9]);
        }
    }
}

#[test]
fn sharded_checkpoint_loads_every_tensor_from_its_shard() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ckpt");
    let tensors: Vec<(String, Tensor)> = (0..5)
        .map(|i| {
            (
                format!("layers.{i}.w"),
                (sample(DType::BF16) * (i as f64 + 1.0)).unwrap(),
            )
        })
        .collect();
    // 12 bytes per tensor, 30-byte shards: 2 + 2 + 1 tensors.
    let opts = WriteOptions {
        max_shard_bytes: 30,
    };
    write_checkpoint_with(&out, &tensors, &serde_json::json!({}), None, &[], &opts).unwrap();
    assert!(out.join("model.safetensors.index.json").is_file());
    assert!(out.join("model-00003-of-00003.safetensors").is_file());
    assert!(!out.join("model.safetensors").exists());

    let got = load_safetensors(&out, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(got.len(), 5);
    for (name, t) in &tensors {
        assert_eq!(as_f32(&got[name]), as_f32(t), "{name}");
    }
}

#[test]
fn index_takes_precedence_over_a_stray_single_file() {
    let dir = tempfile::tempdir().unwrap();
    save(
        &dir.path().join("model.safetensors"),
        vec![("stale", sample(DType::F32))],
    );
    save(
        &dir.path().join("part-a.safetensors"),
        vec![("fresh", sample(DType::F32))],
    );
    let index = serde_json::json!({"metadata": {}, "weight_map": {"fresh": "part-a.safetensors"}});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let got = load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(got.keys().collect::<Vec<_>>(), vec!["fresh"]);
}

#[test]
fn missing_shard_error_names_the_shard_and_the_index() {
    let dir = tempfile::tempdir().unwrap();
    save(
        &dir.path().join("a.safetensors"),
        vec![("x", sample(DType::F32))],
    );
    let index = serde_json::json!({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(
        err.contains("b.safetensors") && err.contains("model.safetensors.index.json"),
        "{err}"
    );
    assert!(err.contains("missing") && err.contains('y'), "{err}");
}

#[test]
fn missing_tensor_error_names_the_tensor_and_the_shard_file() {
    let dir = tempfile::tempdir().unwrap();
    save(
        &dir.path().join("a.safetensors"),
        vec![("x", sample(DType::F32))],
    );
    let index = serde_json::json!({"weight_map": {"x": "a.safetensors", "lm_head.weight": "a.safetensors"}});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(
        err.contains("lm_head.weight") && err.contains("a.safetensors"),
        "{err}"
    );
}

#[test]
fn broken_inputs_give_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(
        err.contains("no weights") && err.contains(&dir.path().display().to_string()),
        "{err}"
    );

    std::fs::write(
        dir.path().join("model.safetensors"),
        b"definitely not safetensors",
    )
    .unwrap();
    let err = format!(
        "{:#}",
        load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(err.contains("model.safetensors"), "{err}");

    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        "{\"weight_map\": 3}",
    )
    .unwrap();
    let err = format!(
        "{:#}",
        load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(
        err.contains("model.safetensors.index.json") && err.contains("weight_map"),
        "{err}"
    );

    // Shard names may not point outside the model directory.
    let index = serde_json::json!({"weight_map": {"x": "../elsewhere.safetensors"}});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = format!(
        "{:#}",
        load_safetensors(dir.path(), DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(err.contains("invalid shard file name"), "{err}");

    let gone = dir.path().join("nope");
    let err = format!(
        "{:#}",
        load_safetensors(&gone, DType::F32, &Device::Cpu).unwrap_err()
    );
    assert!(
        err.contains("does not exist") && err.contains("nope"),
        "{err}"
    );
}
