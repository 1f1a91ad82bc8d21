//! `write_checkpoint`: layout, side files, sharding and atomic replacement.

use candle_core::{DType, Device, Tensor};
use oneshot_hf::{load_safetensors, write_checkpoint, write_checkpoint_with, WriteOptions};
use serde_json::json;
use std::path::Path;

fn tensors(scale: f64) -> Vec<(String, Tensor)> {
    let base = Tensor::arange(0f32, 12., &Device::Cpu)
        .unwrap()
        .reshape((3, 4))
        .unwrap();
    vec![
        (
            "model.embed_tokens.weight".to_string(),
            (base.clone() * scale)
                .unwrap()
                .to_dtype(DType::BF16)
                .unwrap(),
        ),
        (
            "model.norm.weight".to_string(),
            Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(),
        ),
    ]
}

/// Entries of `dir` other than `keep` (temp/backup leftovers would show up here).
fn siblings(dir: &Path, keep: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect();
    v.sort();
    v
}

fn source_dir(root: &Path) -> std::path::PathBuf {
    let src = root.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("tokenizer.json"), "{\"tok\": 1}").unwrap();
    std::fs::write(
        src.join("tokenizer_config.json"),
        "{\"chat_template\": \"x\"}",
    )
    .unwrap();
    std::fs::write(src.join("generation_config.json"), "{\"eos_token_id\": 2}").unwrap();
    std::fs::write(src.join("unrelated.bin"), "not copied").unwrap();
    src
}

#[test]
fn writes_weights_config_side_files_and_extras() {
    let root = tempfile::tempdir().unwrap();
    let src = source_dir(root.path());
    let out = root.path().join("step-10");
    let config = json!({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 4});
    let extra = vec![("trainer_state.json".to_string(), b"{\"step\": 10}".to_vec())];
    write_checkpoint(&out, &tensors(1.0), &config, Some(&src), &extra).unwrap();

    let files = siblings(&out, "");
    assert_eq!(
        files,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "trainer_state.json"
        ]
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg, config);
    assert_eq!(
        std::fs::read_to_string(out.join("tokenizer.json")).unwrap(),
        "{\"tok\": 1}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("trainer_state.json")).unwrap(),
        "{\"step\": 10}"
    );
    assert_eq!(
        siblings(root.path(), "step-10"),
        ["src"],
        "no temp dirs left behind"
    );

    // Tensors keep their own dtype on disk, and carry the metadata transformers requires.
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata()
            .as_ref()
            .unwrap()
            .get("format")
            .map(String::as_str),
        Some("pt")
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(
        st.tensor("model.embed_tokens.weight").unwrap().dtype(),
        safetensors::Dtype::BF16
    );
    assert_eq!(
        st.tensor("model.norm.weight").unwrap().dtype(),
        safetensors::Dtype::F32
    );
    let back = load_safetensors(&out, DType::F32, &Device::Cpu).unwrap();
    let emb: Vec<f32> = back["model.embed_tokens.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(emb, (0..12).map(|i| i as f32).collect::<Vec<_>>());
}

#[test]
fn extra_files_override_copied_side_files() {
    let root = tempfile::tempdir().unwrap();
    let src = source_dir(root.path());
    let out = root.path().join("ckpt");
    let extra = vec![(
        "generation_config.json".to_string(),
        b"{\"eos_token_id\": 7}".to_vec(),
    )];
    write_checkpoint(&out, &tensors(1.0), &json!({}), Some(&src), &extra).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("generation_config.json")).unwrap(),
        "{\"eos_token_id\": 7}"
    );
}

#[test]
fn large_checkpoints_are_sharded_with_an_index() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("ckpt");
    // 24 bytes (bf16 3x4) + 16 bytes (f32 4): a 30-byte limit gives two shards.
    write_checkpoint_with(
        &out,
        &tensors(1.0),
        &json!({}),
        None,
        &[],
        &WriteOptions {
            max_shard_bytes: 30,
        },
    )
    .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap();
    assert_eq!(index["metadata"]["total_size"], 40);
    assert_eq!(
        index["weight_map"]["model.embed_tokens.weight"],
        "model-00001-of-00002.safetensors"
    );
    assert_eq!(
        index["weight_map"]["model.norm.weight"],
        "model-00002-of-00002.safetensors"
    );
    assert_eq!(
        load_safetensors(&out, DType::F32, &Device::Cpu)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn replacing_a_checkpoint_swaps_it_completely() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("latest");
    // First a sharded checkpoint, then a single-file one: no stale shard may survive.
    write_checkpoint_with(
        &out,
        &tensors(1.0),
        &json!({"v": 1}),
        None,
        &[],
        &WriteOptions {
            max_shard_bytes: 30,
        },
    )
    .unwrap();
    write_checkpoint(&out, &tensors(2.0), &json!({"v": 2}), None, &[]).unwrap();
    assert_eq!(siblings(&out, ""), ["config.json", "model.safetensors"]);
    let back = load_safetensors(&out, DType::F32, &Device::Cpu).unwrap();
    let emb: Vec<f32> = back["model.embed_tokens.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(emb[1], 2.0);
    assert_eq!(
        siblings(root.path(), "latest"),
        Vec::<String>::new(),
        "no backup or temp dirs left"
    );
}

#[test]
fn a_failed_write_leaves_the_existing_checkpoint_intact() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("ckpt");
    write_checkpoint(&out, &tensors(1.0), &json!({"v": 1}), None, &[]).unwrap();
    let before_cfg = std::fs::read(out.join("config.json")).unwrap();
    let before_weights = std::fs::read(out.join("model.safetensors")).unwrap();

    let check_intact = || {
        assert_eq!(std::fs::read(out.join("config.json")).unwrap(), before_cfg);
        assert_eq!(
            std::fs::read(out.join("model.safetensors")).unwrap(),
            before_weights
        );
        assert_eq!(siblings(&out, ""), ["config.json", "model.safetensors"]);
        assert_eq!(
            siblings(root.path(), "ckpt"),
            Vec::<String>::new(),
            "temp dir removed"
        );
    };

    // Fails midway: weights and config are already written to the temp dir when the bad extra
    // file name is reached.
    let bad_extra = vec![
        ("notes.txt".to_string(), b"fine".to_vec()),
        ("../escape.txt".to_string(), b"bad".to_vec()),
    ];
    let err =
        write_checkpoint(&out, &tensors(3.0), &json!({"v": 2}), None, &bad_extra).unwrap_err();
    assert!(format!("{err:#}").contains("../escape.txt"), "{err:#}");
    check_intact();
    assert!(!root.path().join("escape.txt").exists());

    // Invalid tensor names fail before anything is written.
    let mut dup = tensors(3.0);
    dup.push(dup[0].clone());
    let err = write_checkpoint(&out, &dup, &json!({"v": 2}), None, &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("model.embed_tokens.weight"),
        "{err:#}"
    );
    check_intact();

    // A missing copy_from directory is reported, not silently skipped.
    let err = write_checkpoint(
        &out,
        &tensors(3.0),
        &json!({}),
        Some(&root.path().join("nope")),
        &[],
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("nope"), "{err:#}");
    check_intact();

    // Extra files may not overwrite the weights.
    let clash = vec![("model.safetensors".to_string(), b"x".to_vec())];
    assert!(write_checkpoint(&out, &tensors(3.0), &json!({}), None, &clash).is_err());
    check_intact();
}

#[test]
fn refuses_to_replace_a_directory_that_is_not_a_checkpoint() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("precious");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("thesis.tex"), "do not delete").unwrap();
    let err = write_checkpoint(&out, &tensors(1.0), &json!({}), None, &[]).unwrap_err();
    assert!(
        format!("{err:#}").contains("refusing to replace"),
        "{err:#}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("thesis.tex")).unwrap(),
        "do not delete"
    );

    // An empty directory (e.g. created by the caller) is fine.
    let empty = root.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    write_checkpoint(&empty, &tensors(1.0), &json!({}), None, &[]).unwrap();
    assert!(empty.join("model.safetensors").is_file());

    // Parent directories are created as needed.
    let nested = root.path().join("a/b/c");
    write_checkpoint(&nested, &tensors(1.0), &json!({}), None, &[]).unwrap();
    assert!(nested.join("config.json").is_file());
}
