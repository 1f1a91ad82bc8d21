//! Where and in what precision a model's weights live, as configs and flags name them.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};

/// Parameter dtype. HF's names (`float32`, `bfloat16`, `float16`) are accepted as aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    #[serde(alias = "float32", alias = "fp32")]
    #[value(alias = "float32")]
    F32,
    #[default]
    #[serde(alias = "bfloat16")]
    #[value(alias = "bfloat16")]
    Bf16,
    #[serde(alias = "float16", alias = "fp16")]
    #[value(alias = "float16")]
    F16,
}

impl WeightDtype {
    pub fn dtype(self) -> DType {
        match self {
            WeightDtype::F32 => DType::F32,
            WeightDtype::Bf16 => DType::BF16,
            WeightDtype::F16 => DType::F16,
        }
    }
}

/// `cpu`, `cuda` (device 0) or `cuda:N`; kept as a string in configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
}

impl DeviceSpec {
    /// Opens the device (CUDA needs the `cuda` feature and a GPU).
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => Device::new_cuda(n)
                .with_context(|| format!("device {self} (is the `cuda` feature on?)")),
        }
    }
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Ok(DeviceSpec::Cuda(n)),
                None => bail!("unknown device `{other}` (expected cpu, cuda or cuda:N)"),
            },
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = anyhow::Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print_back() {
        for (s, d) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
        ] {
            assert_eq!(s.parse::<DeviceSpec>().unwrap(), d);
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
        let err = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
    }

    #[test]
    fn dtypes_take_hf_names() {
        #[derive(Deserialize)]
        struct T {
            d: WeightDtype,
        }
        let t: T = serde_json::from_str(r#"{"d":"bfloat16"}"#).unwrap();
        assert_eq!(t.d, WeightDtype::Bf16);
        let err = serde_json::from_str::<T>(r#"{"d":"f8"}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("f8") && err.contains("f32"), "{err}");
    }
}
