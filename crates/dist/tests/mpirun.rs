//! The MPI backend under a real launcher: `mpirun -np 2` of the `collectives` example (built by
//! `cargo test --features mpi` beside this test, when no `--test` filter is given). Without the feature this file is empty; with
//! it and no `mpirun` on the PATH the tests fail, since the feature promises MPI is there.
#![cfg(feature = "mpi")]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("test path");
    let dir = deps.parent().and_then(|d| d.parent()).expect("target dir");
    dir.join("examples").join(name)
}

/// `mpirun` with the flags a root CI container needs (run as root; oversubscribed cores; no
/// cross-memory attach, which sandboxes forbid).
fn mpirun(np: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--mca"])
        .args(["btl_vader_single_copy_mechanism", "none"])
        .args(["-np", &np.to_string()]);
    c
}

#[test]
fn two_ranks_agree_on_every_collective() {
    let out = mpirun(2)
        .arg(example("collectives"))
        .output()
        .expect("mpirun runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in 0..2 {
        assert!(
            stdout.contains(&format!("rank {r} of 2 (MPI): all collectives agree")),
            "{stdout}"
        );
    }
}

#[test]
fn a_dead_rank_stops_the_job_in_bounded_time() {
    // Under the default deadline (600 s): mpirun ends the job when a rank exits early.
    let start = Instant::now();
    let out = mpirun(2)
        .env_remove("ONESHOT_DIST_TIMEOUT")
        .arg(example("collectives"))
        .args(["--die-rank", "1"])
        .output()
        .expect("mpirun runs");
    let took = start.elapsed();
    assert!(!out.status.success(), "the job must fail");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("rank 0 of 2 (MPI): all collectives agree"),
        "{stdout}"
    );
}

#[test]
fn a_hung_rank_times_out_the_others_and_the_message_says_so() {
    let start = Instant::now();
    let out = mpirun(2)
        .env("ONESHOT_DIST_TIMEOUT", "3")
        .arg(example("collectives"))
        .args(["--hang-rank", "1"])
        .output()
        .expect("mpirun runs");
    let took = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the job must fail: {stderr}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
    assert!(
        stderr.contains("rank 0 of 2: all-reduce (f32) did not complete within 3 s"),
        "{stderr}"
    );
}
