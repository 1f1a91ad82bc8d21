//! Which process of which job this is, read from the launcher's environment, so `mpirun -np 4
//! oneshot train` and `srun oneshot train` need no flag of their own.

use anyhow::{bail, Context, Result};

/// This process's place in the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct World {
    pub rank: usize,
    pub size: usize,
    /// Rank among the processes on this node (for picking a GPU or a CPU set).
    pub local_rank: usize,
    /// Processes on this node.
    pub local_size: usize,
    pub launcher: Launcher,
}

/// Who started the processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// No launcher variables: one process.
    None,
    /// Open MPI's `mpirun` (`OMPI_COMM_WORLD_*`).
    OpenMpi,
    /// A PMI launcher: MPICH's and Intel MPI's `mpiexec` (`PMI_RANK`, `PMI_SIZE`).
    Pmi,
    /// Slurm's `srun` (`SLURM_PROCID`, `SLURM_NTASKS`).
    Slurm,
}

impl Launcher {
    pub fn name(self) -> &'static str {
        match self {
            Launcher::None => "none",
            Launcher::OpenMpi => "mpirun (Open MPI)",
            Launcher::Pmi => "PMI (mpiexec)",
            Launcher::Slurm => "srun (Slurm)",
        }
    }
}

impl World {
    /// One process, rank 0.
    pub fn single() -> Self {
        Self {
            rank: 0,
            size: 1,
            local_rank: 0,
            local_size: 1,
            launcher: Launcher::None,
        }
    }

    pub fn is_root(&self) -> bool {
        self.rank == 0
    }

    /// The world of this process, from its environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// The world described by `var` (a lookup of environment variables). Open MPI's variables
    /// win over PMI's, and both over Slurm's: `mpirun` inside a Slurm allocation keeps the
    /// allocation's `SLURM_*` variables, but its processes are Open MPI's ranks.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let schemes: [(Launcher, [&str; 4]); 3] = [
            (
                Launcher::OpenMpi,
                [
                    "OMPI_COMM_WORLD_RANK",
                    "OMPI_COMM_WORLD_SIZE",
                    "OMPI_COMM_WORLD_LOCAL_RANK",
                    "OMPI_COMM_WORLD_LOCAL_SIZE",
                ],
            ),
            (
                Launcher::Pmi,
                ["PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"],
            ),
            (
                Launcher::Slurm,
                [
                    "SLURM_PROCID",
                    "SLURM_NTASKS",
                    "SLURM_LOCALID",
                    "SLURM_NTASKS_PER_NODE",
                ],
            ),
        ];
        for (launcher, [rank, size, local, local_size]) in schemes {
            let (Some(r), Some(s)) = (var(rank), var(size)) else {
                continue;
            };
            let num = |name: &str, v: &str| -> Result<usize> {
                v.trim()
                    .parse()
                    .with_context(|| format!("{name}={v:?} is not a number"))
            };
            let (rank_v, size_v) = (num(rank, &r)?, num(size, &s)?);
            if size_v == 0 || rank_v >= size_v {
                bail!("{rank}={rank_v} is not below {size}={size_v}");
            }
            // Slurm writes tasks per node as "2(x3)" on uneven layouts; the count before any
            // "(" is this node's.
            let local_rank = var(local).map(|v| num(local, &v)).transpose()?;
            let local_size = var(local_size)
                .map(|v| num(local_size, v.split('(').next().unwrap_or("")))
                .transpose()?;
            return Ok(Self {
                rank: rank_v,
                size: size_v,
                local_rank: local_rank.unwrap_or(0),
                local_size: local_size.unwrap_or(1).max(1),
                launcher,
            });
        }
        Ok(Self::single())
    }

    /// One line for logs and `--print-config`.
    pub fn describe(&self) -> String {
        format!(
            "rank {} of {} (local {} of {}), launcher: {}",
            self.rank,
            self.size,
            self.local_rank,
            self.local_size,
            self.launcher.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn world(vars: &[(&str, &str)]) -> Result<World> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        World::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn launchers_are_read_in_order() {
        assert_eq!(world(&[]).unwrap(), World::single());
        let w = world(&[
            ("OMPI_COMM_WORLD_RANK", "3"),
            ("OMPI_COMM_WORLD_SIZE", "4"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
            ("OMPI_COMM_WORLD_LOCAL_SIZE", "2"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ])
        .unwrap();
        assert_eq!((w.rank, w.size, w.local_rank, w.local_size), (3, 4, 1, 2));
        assert_eq!(w.launcher, Launcher::OpenMpi);
        let s = world(&[
            ("SLURM_PROCID", "5"),
            ("SLURM_NTASKS", "8"),
            ("SLURM_LOCALID", "1"),
            ("SLURM_NTASKS_PER_NODE", "4(x2)"),
        ])
        .unwrap();
        assert_eq!((s.rank, s.size, s.local_rank, s.local_size), (5, 8, 1, 4));
        assert_eq!(s.launcher, Launcher::Slurm);
        let p = world(&[("PMI_RANK", "1"), ("PMI_SIZE", "2")]).unwrap();
        assert_eq!((p.rank, p.size, p.launcher), (1, 2, Launcher::Pmi));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = world(&[("PMI_RANK", "x"), ("PMI_SIZE", "2")]).unwrap_err();
        assert!(format!("{e:#}").contains("PMI_RANK"), "{e:#}");
        let e = world(&[("SLURM_PROCID", "2"), ("SLURM_NTASKS", "2")]).unwrap_err();
        assert!(format!("{e:#}").contains("SLURM_NTASKS=2"), "{e:#}");
    }
}
