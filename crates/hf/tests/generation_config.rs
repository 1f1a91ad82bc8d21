//! `GenerationConfig::from_dir`: generation_config.json with config.json fallback.

use oneshot_hf::GenerationConfig;
use serde_json::json;

fn dir_with(files: &[(&str, serde_json::Value)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, v) in files {
        std::fs::write(dir.path().join(name), v.to_string()).unwrap();
    }
    dir
}

#[test]
fn reads_qwen_style_generation_config_with_eos_list() {
    // Shape of Qwen2.5-Instruct's generation_config.json.
    let dir = dir_with(&[(
        "generation_config.json",
        json!({"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
               "eos_token_id": [151645, 151643], "repetition_penalty": 1.05,
               "temperature": 0.7, "top_p": 0.8, "top_k": 20, "transformers_version": "4.37.0"}),
    )]);
    let g = GenerationConfig::from_dir(dir.path()).unwrap();
    assert_eq!(g.eos_token_ids, vec![151645, 151643]);
    assert_eq!(
        (g.bos_token_id, g.pad_token_id),
        (Some(151643), Some(151643))
    );
    assert_eq!(
        (g.temperature, g.top_p, g.top_k),
        (Some(0.7), Some(0.8), Some(20))
    );
}

#[test]
fn single_eos_int_and_nulls() {
    let dir = dir_with(&[(
        "generation_config.json",
        json!({"eos_token_id": 2, "pad_token_id": null, "temperature": null}),
    )]);
    let g = GenerationConfig::from_dir(dir.path()).unwrap();
    assert_eq!(g.eos_token_ids, vec![2]);
    assert_eq!((g.pad_token_id, g.temperature, g.top_k), (None, None, None));
}

#[test]
fn token_ids_fall_back_to_config_json() {
    let cfg = json!({"eos_token_id": 151643, "bos_token_id": 151643, "hidden_size": 8});
    // No generation_config.json at all.
    let dir = dir_with(&[("config.json", cfg.clone())]);
    let g = GenerationConfig::from_dir(dir.path()).unwrap();
    assert_eq!(g.eos_token_ids, vec![151643]);
    assert_eq!((g.bos_token_id, g.temperature), (Some(151643), None));

    // generation_config.json without eos: ids come from config.json, sampling from generation_config.
    let dir = dir_with(&[
        ("config.json", cfg),
        ("generation_config.json", json!({"top_p": 0.95})),
    ]);
    let g = GenerationConfig::from_dir(dir.path()).unwrap();
    assert_eq!(
        (g.eos_token_ids.clone(), g.top_p),
        (vec![151643], Some(0.95))
    );

    // generation_config.json's own eos wins over config.json's.
    let dir = dir_with(&[
        ("config.json", json!({"eos_token_id": 1})),
        ("generation_config.json", json!({"eos_token_id": [5, 6]})),
    ]);
    assert_eq!(
        GenerationConfig::from_dir(dir.path())
            .unwrap()
            .eos_token_ids,
        vec![5, 6]
    );
}

#[test]
fn bad_values_are_errors_naming_file_and_field() {
    let dir = dir_with(&[(
        "generation_config.json",
        json!({"eos_token_id": [1, "two"]}),
    )]);
    let err = format!("{:#}", GenerationConfig::from_dir(dir.path()).unwrap_err());
    assert!(
        err.contains("generation_config.json") && err.contains("eos_token_id[1]"),
        "{err}"
    );

    let dir = dir_with(&[("generation_config.json", json!({"top_k": -1}))]);
    let err = format!("{:#}", GenerationConfig::from_dir(dir.path()).unwrap_err());
    assert!(err.contains("top_k"), "{err}");

    let dir = dir_with(&[("config.json", json!({"eos_token_id": 1.5}))]);
    let err = format!("{:#}", GenerationConfig::from_dir(dir.path()).unwrap_err());
    assert!(
        err.contains("config.json") && err.contains("eos_token_id"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("generation_config.json"), "{oops").unwrap();
    let err = format!("{:#}", GenerationConfig::from_dir(dir.path()).unwrap_err());
    assert!(err.contains("generation_config.json"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = format!(
        "{:#}",
        GenerationConfig::from_dir(empty.path()).unwrap_err()
    );
    assert!(err.contains("neither"), "{err}");
}
