//! `require` finds present files, skips missing ones, and fails on them under `CI=true`. One test
//! function: the process environment is shared by the threads of a test binary.

use std::panic;

#[test]
fn require_finds_skips_or_fails_by_the_ci_setting() {
    let dir = std::env::temp_dir().join(format!("oneshot-shared-data-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("data/train")).unwrap();
    std::fs::write(dir.join("data/train/x.parquet"), b"x").unwrap();
    std::env::set_var(oneshot_shared_data::ENV, &dir);

    std::env::set_var("CI", "false");
    assert_eq!(oneshot_shared_data::root(), dir);
    assert_eq!(
        oneshot_shared_data::require("x", "data/train/x.parquet"),
        Some(dir.join("data/train/x.parquet"))
    );
    assert_eq!(
        oneshot_shared_data::require("the y file", "data/train/y.parquet"),
        None
    );

    std::env::set_var("CI", "true");
    assert!(oneshot_shared_data::require("x", "data/train/x.parquet").is_some());
    let failure =
        panic::catch_unwind(|| oneshot_shared_data::require("the y file", "data/train/y.parquet"))
            .expect_err("a missing file under CI=true panics");
    let message = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("the y file") && message.contains("data/train/y.parquet"),
        "{message}"
    );

    // An empty ONESHOT_SHARED means unset: the directory beside the workspace.
    std::env::set_var(oneshot_shared_data::ENV, "");
    assert_eq!(oneshot_shared_data::root().file_name().unwrap(), "shared");
    std::env::remove_var("CI");
    std::fs::remove_dir_all(&dir).unwrap();
}
