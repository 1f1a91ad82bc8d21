//! One process: every collective is the identity.

use anyhow::{bail, Result};

use crate::{Collective, World};

#[derive(Debug, Clone, Copy, Default)]
pub struct Single;

impl Collective for Single {
    fn world(&self) -> World {
        World::single()
    }

    fn backend(&self) -> &'static str {
        "single process"
    }

    fn broadcast(&self, _buf: &mut Vec<u8>, root: usize) -> Result<()> {
        if root != 0 {
            bail!("broadcast from rank {root} in a world of one");
        }
        Ok(())
    }

    fn all_reduce_f32(&self, _buf: &mut [f32]) -> Result<()> {
        Ok(())
    }

    fn all_reduce_f64(&self, _buf: &mut [f64]) -> Result<()> {
        Ok(())
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(vec![mine.to_vec()])
    }

    fn barrier(&self) -> Result<()> {
        Ok(())
    }

    fn abort(&self, code: i32, msg: &str) -> ! {
        eprintln!("{msg}");
        std::process::exit(code)
    }
}
