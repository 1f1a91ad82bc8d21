//! The one place that decides, per device, which implementation of the training step's pieces
//! runs: the host path (fused CPU kernels, the optimiser on flat host slices, sampling on the
//! host) or the device-generic path (candle tensor ops only, so everything stays on the device
//! that holds the tensors: CUDA, or the CPU when forced for testing).
//!
//! `ONESHOT_DEVICE_PATH` overrides the choice: `auto` (or unset) picks by device, `generic`
//! forces the tensor-op path everywhere (the CPU then runs exactly what a GPU would), `host`
//! forces the host path (off the CPU it copies through the host, for debugging).
//! `ONESHOT_ATTENTION=fused|chunked` overrides the CPU attention alone (the fused kernel or the
//! generic path's chunked composition), so the rest of the generic path can be compared with
//! the host path with identical attention arithmetic.

use candle_core::{Device, Result};

/// Which implementation of the step's pieces runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepPath {
    /// Fused CPU kernels and host buffers (the default on the CPU).
    Host,
    /// Candle tensor ops on the tensors' own device (the default off the CPU).
    Generic,
}

impl StepPath {
    pub fn name(self) -> &'static str {
        match self {
            StepPath::Host => "host",
            StepPath::Generic => "generic",
        }
    }
}

pub const ENV: &str = "ONESHOT_DEVICE_PATH";

/// The override set in `ONESHOT_DEVICE_PATH`, if any; an unknown value is an error naming the
/// variable and the accepted values.
pub fn from_env() -> Result<Option<StepPath>> {
    match std::env::var(ENV) {
        Err(_) => Ok(None),
        Ok(v) => parse(&v),
    }
}

/// Parses an override: `auto` or empty (none), `host`, `generic`.
pub fn parse(value: &str) -> Result<Option<StepPath>> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(None),
        "host" => Ok(Some(StepPath::Host)),
        "generic" => Ok(Some(StepPath::Generic)),
        other => candle_core::bail!("{ENV}={other}: expected auto, host or generic"),
    }
}

/// The path for tensors on `device`: the override when one is set, else host on the CPU and
/// generic elsewhere.
pub fn step_path(device: &Device) -> Result<StepPath> {
    Ok(from_env()?.unwrap_or(by_device(device)))
}

/// The choice by device alone.
pub fn by_device(device: &Device) -> StepPath {
    if device.is_cpu() {
        StepPath::Host
    } else {
        StepPath::Generic
    }
}

/// Whether ops on `device` take the tensor-op path; an unreadable override counts as unset here
/// (ops have no place to report it; [`step_path`] reports it where a run is set up).
pub fn is_generic(device: &Device) -> bool {
    from_env().ok().flatten().unwrap_or(by_device(device)) == StepPath::Generic
}

pub const ATTENTION_ENV: &str = "ONESHOT_ATTENTION";

/// Whether causal attention on `device` takes the chunked tensor-op composition: always off
/// the CPU; on the CPU as `ONESHOT_ATTENTION` says (`chunked` or `fused`), else as the step
/// path does.
pub fn chunked_attention(device: &Device) -> bool {
    if !device.is_cpu() {
        return true;
    }
    match std::env::var(ATTENTION_ENV).as_deref() {
        Ok("chunked") => true,
        Ok("fused") => false,
        _ => is_generic(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_overrides_and_rejects_unknown_values() {
        assert_eq!(parse("auto").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse(" Generic ").unwrap(), Some(StepPath::Generic));
        assert_eq!(parse("host").unwrap(), Some(StepPath::Host));
        let err = parse("gpu").unwrap_err().to_string();
        assert!(err.contains(ENV) && err.contains("gpu"), "{err}");
    }

    #[test]
    fn the_cpu_takes_the_host_path_by_default() {
        assert_eq!(by_device(&Device::Cpu), StepPath::Host);
    }
}
