//! Checks every collective of the process's backend against values each rank can predict:
//! `mpirun -np N target/release/examples/collectives` (built with `--features mpi`) exits 0
//! when all agree. `--die-rank R` makes rank R exit before the all-reduce, to watch the others
//! stop rather than hang; `--hang-rank R` makes rank R sleep there instead, so the others'
//! collective times out (`ONESHOT_DIST_TIMEOUT`) and ends the job.

use anyhow::{ensure, Result};
use oneshot_dist::{all_reduce_buckets, broadcast_f32, global};

fn main() -> Result<()> {
    let c = global()?;
    let w = c.world();
    let (rank, size) = (w.rank, w.size);
    let flag = |name: &str| -> Result<Option<usize>> {
        let v = std::env::args().skip_while(|a| a != name).nth(1);
        Ok(v.map(|v| v.parse()).transpose()?)
    };
    let (die, hang) = (flag("--die-rank")?, flag("--hang-rank")?);

    let mut bytes = if rank == 0 {
        b"from root".to_vec()
    } else {
        Vec::new()
    };
    c.broadcast(&mut bytes, 0)?;
    ensure!(
        bytes == b"from root",
        "rank {rank}: broadcast gave {bytes:?}"
    );

    let mut params: Vec<f32> = (0..5).map(|i| (i * (rank + 1)) as f32).collect();
    broadcast_f32(c.as_ref(), &mut params, 0)?;
    ensure!(
        params == [0.0, 1.0, 2.0, 3.0, 4.0],
        "rank {rank}: {params:?}"
    );

    if die == Some(rank) {
        eprintln!("rank {rank}: exiting on purpose");
        std::process::exit(3);
    }
    if hang == Some(rank) {
        std::thread::sleep(std::time::Duration::from_secs(300));
    }
    // Longer than one bucket, so the bucketed path runs more than one call.
    let len = oneshot_dist::BUCKET_VALUES + 3;
    let mut g: Vec<f32> = (0..len).map(|i| (rank + i % 7) as f32).collect();
    all_reduce_buckets(c.as_ref(), &mut g)?;
    let ranks: usize = (0..size).sum();
    for (i, v) in g.iter().enumerate().step_by(4099) {
        ensure!(
            *v == (ranks + size * (i % 7)) as f32,
            "rank {rank}: g[{i}] = {v}"
        );
    }
    let mut s = [rank as f64 + 0.5, 1.0];
    c.all_reduce_f64(&mut s)?;
    ensure!(
        s == [ranks as f64 + 0.5 * size as f64, size as f64],
        "{s:?}"
    );

    let mine = vec![rank as u8; rank + 1];
    let all = c.all_gather(&mine)?;
    ensure!(all.len() == size, "rank {rank}: {} parts", all.len());
    for (r, part) in all.iter().enumerate() {
        ensure!(
            *part == vec![r as u8; r + 1],
            "rank {rank}: part {r} = {part:?}"
        );
    }
    c.barrier()?;
    println!(
        "rank {rank} of {size} ({}): all collectives agree",
        c.backend()
    );
    oneshot_dist::finalize();
    Ok(())
}
