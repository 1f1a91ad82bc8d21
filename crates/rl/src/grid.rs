//! `TokenGrid`: a dense `[rows, cols]` f32 matrix on the host, one row per response and one
//! column per response token. Advantage estimators and reward shaping are not differentiated,
//! so they work on plain host data; the trainer turns grids into tensors for the loss.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

#[derive(Debug, Clone, PartialEq)]
pub struct TokenGrid {
    pub rows: usize,
    pub cols: usize,
    /// Row-major values, `rows * cols` long.
    pub data: Vec<f32>,
}

impl TokenGrid {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// Builds a grid from row-major data, checking the length.
    pub fn new(rows: usize, cols: usize, data: Vec<f32>) -> Result<Self> {
        if data.len() != rows * cols {
            bail!(
                "TokenGrid: {} values given for a {rows}x{cols} grid",
                data.len()
            );
        }
        Ok(Self { rows, cols, data })
    }

    /// Builds a grid from equally long rows.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                bail!(
                    "TokenGrid: row {i} has {} values, row 0 has {cols}",
                    r.len()
                );
            }
            data.extend_from_slice(r);
        }
        Ok(Self {
            rows: rows.len(),
            cols,
            data,
        })
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.data[i * self.cols..(i + 1) * self.cols]
    }

    pub fn get(&self, i: usize, t: usize) -> f32 {
        self.data[i * self.cols + t]
    }

    /// Fails with a message naming `what` unless `other` has this grid's shape.
    pub fn check_same_shape(&self, other: &TokenGrid, what: &str) -> Result<()> {
        if self.rows != other.rows || self.cols != other.cols {
            bail!(
                "{what}: shape {}x{} does not match {}x{}",
                other.rows,
                other.cols,
                self.rows,
                self.cols
            );
        }
        Ok(())
    }

    /// Number of tokens per row of a 0/1 mask.
    pub fn row_counts(&self) -> Vec<usize> {
        (0..self.rows)
            .map(|i| self.row(i).iter().filter(|&&m| m > 0.0).count())
            .collect()
    }

    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Tensor::from_slice(&self.data, (self.rows, self.cols), device)
            .context("TokenGrid -> tensor")
    }

    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let (rows, cols) = t
            .dims2()
            .context("TokenGrid::from_tensor needs a 2-D tensor")?;
        let data = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(Self { rows, cols, data })
    }
}
