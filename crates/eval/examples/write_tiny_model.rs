//! Writes the tiny random test model (byte-level tokenizer, hidden 32, 2 layers) to a directory,
//! for smoke runs of `oneshot eval`:
//! `cargo run --release -p oneshot-eval --features testing --example write_tiny_model -- DIR [SEED]`
fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: write_tiny_model DIR [SEED]"))?;
    let seed = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    oneshot_eval::testing::write_tiny_model(std::path::Path::new(&dir), seed)?;
    println!("wrote {dir}");
    Ok(())
}
