//! `resolve_model_dir` against the real environment variables. A single test function, because the
//! process environment is shared by all threads of a test binary.

use oneshot_hf::{hub_cache_dir, resolve_model_dir};
use std::path::Path;

fn write_model(dir: &Path, with_weights: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), "{}").unwrap();
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    if with_weights {
        std::fs::write(dir.join("model.safetensors"), "weights").unwrap();
    }
}

#[test]
fn resolves_local_dirs_and_the_offline_hub_cache() {
    std::env::remove_var("HF_HUB_CACHE");
    std::env::remove_var("HF_ENDPOINT");
    std::env::set_var("HF_HUB_OFFLINE", "1");
    let home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", home.path());
    let cache = home.path().join("hub");
    assert_eq!(hub_cache_dir(), cache);

    // A local directory is returned as is.
    let local = home.path().join("my-model");
    write_model(&local, true);
    assert_eq!(resolve_model_dir(local.to_str().unwrap()).unwrap(), local);
    let err = resolve_model_dir("./definitely/not/here")
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not exist"), "{err}");

    // Offline with an empty cache: a clear error naming the id and the cache, and no network use
    // (with HF_HUB_OFFLINE nothing that could reach the network is even constructed).
    let err = resolve_model_dir("Qwen/Qwen2.5-Math-1.5B")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Qwen/Qwen2.5-Math-1.5B") && err.contains("HF_HUB_OFFLINE"),
        "{err}"
    );
    assert!(err.contains(&cache.display().to_string()), "{err}");

    // The standard cache layout: refs/<revision> holds the commit of snapshots/<commit>/.
    let repo = cache.join("models--org--tiny");
    write_model(&repo.join("snapshots/aaa111"), true);
    write_model(&repo.join("snapshots/bbb222"), true);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "aaa111\n").unwrap();
    std::fs::write(repo.join("refs/v2"), "bbb222").unwrap();
    assert_eq!(
        resolve_model_dir("org/tiny").unwrap(),
        repo.join("snapshots/aaa111")
    );
    assert_eq!(
        resolve_model_dir("org/tiny@v2").unwrap(),
        repo.join("snapshots/bbb222")
    );
    // A commit hash as revision needs no ref file.
    assert_eq!(
        resolve_model_dir("org/tiny@bbb222").unwrap(),
        repo.join("snapshots/bbb222")
    );
    let err = resolve_model_dir("org/tiny@v3").unwrap_err().to_string();
    assert!(err.contains("org/tiny") && err.contains("v3"), "{err}");

    // An incomplete snapshot (interrupted download) is reported with what is missing.
    let partial = cache.join("models--org--partial");
    write_model(&partial.join("snapshots/ccc333"), false);
    std::fs::write(
        partial.join("snapshots/ccc333/model.safetensors.index.json"),
        r#"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    std::fs::write(
        partial.join("snapshots/ccc333/model-00001-of-00002.safetensors"),
        "x",
    )
    .unwrap();
    std::fs::create_dir_all(partial.join("refs")).unwrap();
    std::fs::write(partial.join("refs/main"), "ccc333").unwrap();
    let err = resolve_model_dir("org/partial").unwrap_err().to_string();
    assert!(
        err.contains("model-00002-of-00002.safetensors") && !err.contains("model-00001"),
        "{err}"
    );

    // HF_HUB_CACHE takes precedence over HF_HOME.
    let other = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HUB_CACHE", other.path());
    assert_eq!(hub_cache_dir(), other.path());
    let err = resolve_model_dir("org/tiny").unwrap_err().to_string();
    assert!(err.contains(&other.path().display().to_string()), "{err}");
    std::env::remove_var("HF_HUB_CACHE");

    // Malformed ids are rejected before any lookup.
    let err = resolve_model_dir("a/b/c").unwrap_err().to_string();
    assert!(err.contains("hub id"), "{err}");
}
