//! Data-parallel training under `mpirun -np 2` against one process on the same global batch
//! (the `toy_run` example on the toy task): the ranks take disjoint slices that cover each
//! batch, the final weights match (token-mean and seq-mean-token-mean), the rewards and the
//! selection history are the same, and rank 0 alone writes. A rank killed mid-run stops the
//! job, the last checkpoint loads, and `--resume` ends where an uninterrupted run ends.
//!
//! Needs the `mpi` feature, `mpirun` on the PATH, and the example built beside this test (a
//! plain `cargo test --release -p oneshot-train --features mpi` builds it).
#![cfg(feature = "mpi")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use oneshot_train::checkpoint;
use oneshot_train::toy::write_toy_task;

fn toy_run() -> PathBuf {
    let deps = std::env::current_exe().expect("test path");
    let dir = deps.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join("toy_run")
}

fn mpirun() -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--mca"])
        .args(["btl_vader_single_copy_mechanism", "none"])
        // Each rank one thread, as the CI machine has two cores.
        .args(["-x", "RAYON_NUM_THREADS=1"]);
    // The backend (MPI unless ONESHOT_DIST_BACKEND=nccl on a machine with a GPU per rank).
    if std::env::var_os("ONESHOT_DIST_BACKEND").is_some() {
        c.args(["-x", "ONESHOT_DIST_BACKEND"]);
    }
    c
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Writes the toy task and a config for it (3 steps, a checkpoint per step, 4 prompt rows x
/// 8 samples, 4 response tokens so lengths differ between responses).
fn setup(dir: &Path) -> PathBuf {
    let mut cfg = write_toy_task(dir, 11).expect("toy task");
    cfg.trainer.total_steps = 3;
    cfg.trainer.save_every = 1;
    cfg.rollout.max_response_length = 4;
    let path = dir.join("run.toml");
    std::fs::write(&path, cfg.to_toml_string().expect("toml")).expect("write config");
    path
}

fn set(agg: &str, out: &Path) -> Vec<String> {
    vec![
        "--set".into(),
        format!("algorithm.loss_agg_mode=\"{agg}\""),
        "--set".into(),
        format!("trainer.output_dir=\"{}\"", out.display()),
        // AdamW moves a parameter whose gradient is ~0 (rounding noise: the key biases,
        // to which attention is invariant) by lr x noise / eps, so the comparison's floor
        // scales with lr; at 1e-3 the weights still move ~100x that floor in 3 steps.
        "--set".into(),
        "optim.lr=1e-3".into(),
    ]
}

fn final_params(out: &Path) -> BTreeMap<String, Vec<f32>> {
    let ckpt = checkpoint::latest(out)
        .expect("latest")
        .expect("a checkpoint");
    let file = ckpt.join(checkpoint::ACTOR_DIR).join("model.safetensors");
    common::sorted_tensors(&file).into_iter().collect()
}

/// The largest difference between two runs' parameters, relative to each tensor's scale:
/// max over tensors of max|a - b| / max|a|. (Per element it would be meaningless: AdamW
/// divides each gradient by its own running RMS, so a parameter whose gradient is ~0 moves
/// by an amount set by rounding noise of the summation order, as large in 1-process runs that
/// differ only in micro-batch packing.)
fn max_rel_diff(a: &BTreeMap<String, Vec<f32>>, b: &BTreeMap<String, Vec<f32>>) -> f64 {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let mut worst = (0f64, "");
    for (k, va) in a {
        let scale = va.iter().fold(0f64, |m, x| m.max(x.abs() as f64));
        let diff = va
            .iter()
            .zip(&b[k])
            .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
        let rel = diff / scale.max(f64::MIN_POSITIVE);
        if rel > worst.0 {
            worst = (rel, k);
        }
    }
    if worst.0 > 0.0 {
        eprintln!("largest relative difference in `{}`", worst.1);
    }
    worst.0
}

fn metrics(out: &Path, key: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).expect("metrics.jsonl");
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            v[key].as_f64().unwrap_or_else(|| panic!("{key} in {l}"))
        })
        .collect()
}

/// The rows each rank logged per step: (rank, step) -> global batch positions.
fn logged_rows(log: &str) -> BTreeMap<(usize, usize), (usize, usize)> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("rank ") else {
            continue;
        };
        let Some((head, range)) = rest.split_once(": batch rows ") else {
            continue;
        };
        let (rank, step) = head.split_once(" step ").expect("rank R step S");
        let range = range.split(" =").next().expect("range");
        let (a, b) = range.split_once("..").expect("a..b");
        out.insert(
            (rank.parse().unwrap(), step.parse().unwrap()),
            (a.parse().unwrap(), b.parse().unwrap()),
        );
    }
    out
}

fn one_process(config: &Path, sets: &[String]) {
    let out = Command::new(toy_run())
        .arg(config)
        .args(sets)
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("toy_run runs");
    assert!(out.status.success(), "{}", text(&out));
}

fn matches_one_process(agg: &str) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let single = dir.path().join("single");
    one_process(&config, &set(agg, &single));

    // Rank 1 gets an output dir of its own that must stay absent: rank 0 alone writes.
    let (shared, elsewhere) = (dir.path().join("two"), dir.path().join("rank1-out"));
    let out = mpirun()
        .args(["-np", "1"])
        .arg(toy_run())
        .arg(&config)
        .args(set(agg, &shared))
        .arg(":")
        .args(["-np", "1"])
        .arg(toy_run())
        .arg(&config)
        .args(set(agg, &elsewhere))
        .output()
        .expect("mpirun runs");
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!elsewhere.exists(), "rank 1 wrote {}", elsewhere.display());

    let rows = logged_rows(&log);
    for step in 1..=3 {
        let mut covered = BTreeSet::new();
        for rank in 0..2 {
            let (a, b) = rows[&(rank, step)];
            for r in a..b {
                assert!(
                    covered.insert(r),
                    "row {r} taken twice at step {step}: {rows:?}"
                );
            }
        }
        assert_eq!(covered, (0..4).collect(), "step {step}: {rows:?}");
    }

    for key in [
        "reward/mean",
        "reward/std",
        "acc/mean",
        "response_length/mean",
    ] {
        assert_eq!(metrics(&single, key), metrics(&shared, key), "{key}");
    }
    // AdamW is blind to a constant factor on the gradient; its norm is not (a local instead of
    // a global normaliser would double it).
    let (g1, g2) = (
        metrics(&single, "actor/grad_norm"),
        metrics(&shared, "actor/grad_norm"),
    );
    for (a, b) in g1.iter().zip(&g2) {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs(),
            "grad norms {g1:?} vs {g2:?}"
        );
    }
    let history = |d: &Path| std::fs::read_to_string(d.join("rollout_accuracy.json")).unwrap();
    assert_eq!(history(&single), history(&shared));
    let files = |d: &Path| -> BTreeSet<String> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(files(&single), files(&shared));

    let diff = max_rel_diff(&final_params(&single), &final_params(&shared));
    eprintln!("{agg}: largest relative parameter difference after 3 steps: {diff:.3e}");
    assert!(diff <= 1e-5, "{agg}: {diff:e}");
    diff
}

#[test]
fn two_ranks_match_one_process_token_mean() {
    matches_one_process("token-mean");
}

#[test]
fn two_ranks_match_one_process_seq_mean() {
    matches_one_process("seq-mean-token-mean");
}

#[test]
fn a_killed_rank_stops_the_job_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    // The default collective deadline (ONESHOT_DIST_TIMEOUT unset, 600 s): the launcher, not
    // the deadline, must end the job when a rank dies.
    let two = |out: &Path, extra: &[&str]| {
        mpirun()
            .env_remove("ONESHOT_DIST_TIMEOUT")
            .args(["-np", "2"])
            .arg(toy_run())
            .arg(&config)
            .args(set("token-mean", out))
            .args(extra)
            .output()
            .expect("mpirun runs")
    };
    let whole = dir.path().join("whole");
    let out = two(&whole, &[]);
    assert!(out.status.success(), "{}", text(&out));

    let broken = dir.path().join("broken");
    let start = Instant::now();
    let out = two(&broken, &["--kill-rank", "1", "--kill-at-step", "2"]);
    let took = start.elapsed();
    eprintln!("the job with a killed rank ended after {took:?}");
    assert!(!out.status.success(), "the job must fail: {}", text(&out));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let last = checkpoint::latest(&broken)
        .expect("a readable latest pointer")
        .expect("step 1 was saved before the kill");
    let state = checkpoint::read_state(&last).expect("the checkpoint loads");
    assert!((1..=2).contains(&state.step), "{}", last.display());
    let _ = final_params(&broken);

    let out = two(&broken, &["--resume"]);
    assert!(out.status.success(), "{}", text(&out));
    let (a, b) = (final_params(&whole), final_params(&broken));
    assert_eq!(max_rel_diff(&a, &b), 0.0, "resume is not bit-identical");
}

#[test]
fn a_two_rank_run_resumes_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let run = |out: &Path, np: usize, extra: &[&str]| {
        let mut c = match np {
            1 => Command::new(toy_run()),
            _ => {
                let mut c = mpirun();
                c.args(["-np", &np.to_string()]).arg(toy_run());
                c
            }
        };
        c.arg(&config)
            .args(set("token-mean", out))
            .args(extra)
            .output()
            .expect("toy_run runs")
    };
    let whole = dir.path().join("whole");
    let out = run(&whole, 1, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let moved = dir.path().join("moved");
    let out = run(&moved, 2, &["--kill-rank", "0", "--kill-at-step", "2"]);
    assert!(!out.status.success(), "{}", text(&out));
    // The world shrinks to one process: the state is global, so it re-shards.
    let out = run(&moved, 1, &["--resume"]);
    assert!(out.status.success(), "{}", text(&out));
    let diff = max_rel_diff(&final_params(&whole), &final_params(&moved));
    eprintln!("2 ranks then 1 vs 1 throughout: largest relative difference {diff:.3e}");
    assert!(diff <= 1e-5, "{diff:e}");
}
