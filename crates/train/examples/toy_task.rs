//! Writes the toy verifiable task (tiny random model + one-example parquet) into a directory and
//! prints the `oneshot train` command that learns it, for trying the CLI end to end:
//! `cargo run --release -p oneshot-train --example toy_task -- /tmp/toy`.

fn main() -> anyhow::Result<()> {
    let dir =
        std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "toy_task".into()));
    std::fs::create_dir_all(&dir)?;
    let cfg = oneshot_train::toy::write_toy_task(&dir, 3)?;
    let path = dir.join("toy.toml");
    std::fs::write(&path, cfg.to_toml_string()?)?;
    println!("oneshot train --config {}", path.display());
    Ok(())
}
