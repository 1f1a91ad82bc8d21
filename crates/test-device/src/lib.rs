//! The device that device-parameterised tests run on, from `ONESHOT_TEST_DEVICE`: `cpu` (the
//! default), `cuda` (device 0) or `cuda:N`. `scripts/gpu_check.sh` runs the same test binaries
//! with `ONESHOT_TEST_DEVICE=cuda:0`.

use candle_core::Device;

pub const ENV: &str = "ONESHOT_TEST_DEVICE";

/// Which device a value of `ONESHOT_TEST_DEVICE` names: `None` = the CPU, `Some(n)` = CUDA
/// device n; an unknown value is an error naming the variable.
pub fn parse(value: &str) -> Result<Option<usize>, String> {
    match value.trim() {
        "" | "cpu" => Ok(None),
        "cuda" => Ok(Some(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| format!("{ENV}={other}: expected cpu, cuda or cuda:N")),
    }
}

/// The test device. Panics (failing the test, with the reason) on an unknown value or a CUDA
/// device this build or machine cannot open: a test asked to run on a GPU must not quietly
/// run on the CPU.
pub fn device() -> Device {
    let value = std::env::var(ENV).unwrap_or_default();
    match parse(&value) {
        Ok(None) => Device::Cpu,
        Ok(Some(n)) => Device::new_cuda(n).unwrap_or_else(|e| {
            panic!("{ENV}={value}: cannot open CUDA device {n} (built with --features cuda?): {e}")
        }),
        Err(e) => panic!("{e}"),
    }
}

/// A short name of the test device for messages: `cpu` or `cuda:N`.
pub fn name() -> String {
    match parse(&std::env::var(ENV).unwrap_or_default()) {
        Ok(Some(n)) => format!("cuda:{n}"),
        _ => "cpu".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_and_rejects_others() {
        assert_eq!(parse("cpu"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("cuda"), Ok(Some(0)));
        assert_eq!(parse("cuda:3"), Ok(Some(3)));
        let err = parse("gpu0").unwrap_err();
        assert!(err.contains(ENV) && err.contains("gpu0"), "{err}");
        assert!(parse("cuda:x").is_err());
    }
}
