//! `configs/one_shot_pi1.toml` is the paper's recipe and its training file loads (the second
//! part needs the paper's data, see `oneshot_shared_data`: it skips without it, except under
//! `CI=true`).

use std::path::PathBuf;

use oneshot_train::prompts::{load_prompts, PromptRenderer};
use oneshot_train::{toy, TrainConfig};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_paper_config_is_the_recipe_and_its_data_loads() {
    let cfg = TrainConfig::load(Some(&workspace().join("configs/one_shot_pi1.toml")), &[]).unwrap();
    assert_eq!(cfg, {
        // Every value in the file equals the built-in defaults except the documented choices.
        let mut d =
            TrainConfig::load(None, &["model.path=\"Qwen/Qwen2.5-Math-1.5B\"".into()]).unwrap();
        d.model.recompute_layers = true;
        d.trainer.output_dir = "runs/one_shot_pi1".into();
        d.trainer.tensorboard = true;
        d
    });
    assert_eq!(
        (
            cfg.data.train_batch_size,
            cfg.rollout.n,
            cfg.optim.lr,
            cfg.trainer.total_steps
        ),
        (128, 8, 1e-6, 2000)
    );

    // The training file through a chat template and tokenizer (the toy's, word-level).
    let Some(file) =
        oneshot_shared_data::require("the pi1 training file", "data/train/pi1_r128.parquet")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    toy::write_toy_task(dir.path(), 0).unwrap();
    let tok = oneshot_hf::Tokenizer::from_dir(&dir.path().join("model")).unwrap();
    let chat = oneshot_hf::ChatTemplate::from_dir(&dir.path().join("model"))
        .unwrap()
        .unwrap();
    let prompts = load_prompts(
        std::slice::from_ref(&file),
        &PromptRenderer::Chat(&chat),
        &tok,
        1024,
    )
    .unwrap();
    assert_eq!(prompts.len(), 128);
    assert!(prompts.iter().all(|p| p.index == 124 && p.label == "12.8"));
    let err = format!(
        "{:#}",
        load_prompts(&[file], &PromptRenderer::Chat(&chat), &tok, 3).unwrap_err()
    );
    assert!(
        err.contains("row 0") && err.contains("max_prompt_length"),
        "{err}"
    );
}
