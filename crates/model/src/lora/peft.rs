//! PEFT's adapter layout: `adapter_config.json` and `adapter_model.safetensors` with keys
//! `base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_<A|B>.weight`, as
//! `PeftModel.save_pretrained` writes them and `PeftModel.from_pretrained` reads them.
use super::{peft_name, Adapter, Lora, LoraConfig, Target};
use crate::model::Model;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, Var};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const CONFIG_FILE: &str = "adapter_config.json";
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// `adapter_config.json` for `cfg`; `base` names the base model (PEFT records it).
pub fn config_json(cfg: &LoraConfig, base: Option<&str>) -> Value {
    let alpha = if cfg.alpha.fract() == 0.0 && cfg.alpha.abs() < 1e15 {
        json!(cfg.alpha as i64)
    } else {
        json!(cfg.alpha)
    };
    json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base,
        "r": cfg.r,
        "lora_alpha": alpha,
        "lora_dropout": cfg.dropout,
        "use_rslora": cfg.use_rslora,
        "target_modules": cfg.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": false,
        "revision": null,
    })
}

/// Reads the LoRA settings of an `adapter_config.json`, refusing the PEFT features the
/// engine does not implement (DoRA, bias training, per-module ranks, ...).
pub fn parse_config(v: &Value, path: &Path) -> Result<LoraConfig> {
    let ctx = || format!("in {}", path.display());
    let field = |k: &str| v.get(k).filter(|x| !x.is_null());
    if let Some(t) = field("peft_type") {
        if t.as_str() != Some("LORA") {
            bail!(
                "{}: peft_type is {t}, only LORA is supported",
                path.display()
            );
        }
    }
    let r = field("r")
        .and_then(Value::as_u64)
        .context("field `r` (a positive integer) missing or invalid")
        .with_context(ctx)? as usize;
    let alpha = match field("lora_alpha") {
        None => 8.0,
        Some(a) => a
            .as_f64()
            .with_context(|| format!("field `lora_alpha` must be a number, got {a}"))
            .with_context(ctx)?,
    };
    let dropout = field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0);
    let use_rslora = field("use_rslora")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    for (key, ok) in [
        (
            "use_dora",
            field("use_dora").is_none_or(|x| x == &json!(false)),
        ),
        ("bias", field("bias").is_none_or(|x| x == &json!("none"))),
        (
            "fan_in_fan_out",
            field("fan_in_fan_out").is_none_or(|x| x == &json!(false)),
        ),
        (
            "rank_pattern",
            field("rank_pattern").is_none_or(|x| x.as_object().is_some_and(|o| o.is_empty())),
        ),
        (
            "alpha_pattern",
            field("alpha_pattern").is_none_or(|x| x.as_object().is_some_and(|o| o.is_empty())),
        ),
        (
            "modules_to_save",
            field("modules_to_save").is_none_or(|x| x.as_array().is_some_and(|a| a.is_empty())),
        ),
    ] {
        if !ok {
            bail!(
                "{}: `{key}` = {} is not supported (plain LoRA on the decoder's projections only)",
                path.display(),
                v[key]
            );
        }
    }
    let targets = match field("target_modules") {
        Some(Value::String(s)) => Target::parse_list(&[s.as_str()]),
        Some(Value::Array(a)) => {
            let names: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            Target::parse_list(&names)
        }
        _ => bail!("field `target_modules` missing or not a list of names"),
    }
    .with_context(ctx)?;
    let cfg = LoraConfig {
        r,
        alpha,
        dropout,
        targets,
        use_rslora,
    };
    cfg.validate().with_context(ctx)?;
    Ok(cfg)
}

/// (layer, target, 'A' or 'B') of a PEFT key (with or without the adapter name `default`).
fn parse_key(key: &str) -> Option<(usize, Target, char)> {
    let rest = key.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (path, tail) = rest.split_once(".lora_")?;
    let which = match tail {
        "A.weight" | "A.default.weight" => 'A',
        "B.weight" | "B.default.weight" => 'B',
        _ => return None,
    };
    let t = Target::ALL.into_iter().find(|t| t.path() == path)?;
    Some((layer.parse().ok()?, t, which))
}

impl Model {
    /// Writes the adapters in PEFT's layout into `dir` (created if missing; each file
    /// replaced atomically). `base` is recorded as `base_model_name_or_path`.
    pub fn save_lora(&self, dir: &Path, base: Option<&str>) -> Result<()> {
        let lora = self
            .lora()
            .context("save_lora: the model has no adapters")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tensors: HashMap<String, Tensor> = lora
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        let weights = dir.join(WEIGHTS_FILE);
        let tmp = dir.join(format!("{WEIGHTS_FILE}.tmp"));
        candle_core::safetensors::save(&tensors, &tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &weights)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        let config = serde_json::to_string_pretty(&config_json(&lora.config, base))?;
        let cfg_path = dir.join(CONFIG_FILE);
        let tmp = dir.join(format!("{CONFIG_FILE}.tmp"));
        std::fs::write(&tmp, config).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &cfg_path)
            .with_context(|| format!("renaming {} into place", tmp.display()))?;
        Ok(())
    }

    /// Loads adapters saved in PEFT's layout (by PEFT or by [`Model::save_lora`]) onto this
    /// model, replacing any present. Every key must be an adapter of a projection this model
    /// has, with the shapes its config implies; errors name the file and the key.
    pub fn load_lora(&mut self, dir: &Path) -> Result<()> {
        let cfg_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&cfg_path)
            .with_context(|| format!("reading {}", cfg_path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {} as JSON", cfg_path.display()))?;
        let mut config = parse_config(&v, &cfg_path)?;
        let weights = dir.join(WEIGHTS_FILE);
        let tensors = candle_core::safetensors::load(&weights, self.device())
            .with_context(|| format!("reading {}", weights.display()))?;
        let n_layers = self.config.num_hidden_layers;
        let mut found: BTreeMap<(usize, Target), [Option<Tensor>; 2]> = BTreeMap::new();
        for (key, t) in tensors {
            let Some((layer, target, which)) = parse_key(&key) else {
                bail!(
                    "{}: tensor `{key}` is not a LoRA adapter of a decoder projection",
                    weights.display()
                );
            };
            if layer >= n_layers {
                bail!(
                    "{}: tensor `{key}` is for layer {layer}, but the model has {n_layers}",
                    weights.display()
                );
            }
            let (fan_in, out) = super::features(&self.config, target);
            let want = match which {
                'A' => vec![config.r, fan_in],
                _ => vec![out, config.r],
            };
            if t.dims() != want.as_slice() {
                bail!(
                    "{}: tensor `{key}` has shape {:?}, expected {want:?} (r = {} from {})",
                    weights.display(),
                    t.dims(),
                    config.r,
                    cfg_path.display()
                );
            }
            let slot = found.entry((layer, target)).or_default();
            slot[(which == 'B') as usize] = Some(t.to_dtype(DType::F32)?);
        }
        if found.is_empty() {
            bail!("{}: no adapter tensors", weights.display());
        }
        let mut layers: Vec<[Option<Adapter>; 7]> =
            (0..n_layers).map(|_| Default::default()).collect();
        for ((layer, target), [a, b]) in found {
            let (Some(a), Some(b)) = (a, b) else {
                bail!(
                    "{}: layer {layer} {} has only one of lora_A / lora_B",
                    weights.display(),
                    target.path()
                );
            };
            layers[layer][target.index()] = Some(Adapter {
                a: Var::from_tensor(&a)?,
                b: Var::from_tensor(&b)?,
            });
        }
        let present: Vec<Target> = Target::ALL
            .into_iter()
            .filter(|t| layers.iter().any(|l| l[t.index()].is_some()))
            .collect();
        config.targets = present;
        self.lora = Some(Lora::assemble(config, layers));
        Ok(())
    }
}

/// The PEFT key of every adapter matrix a config implies for `layers` layers (for checks).
pub fn expected_keys(cfg: &LoraConfig, layers: usize) -> Vec<String> {
    let mut out = Vec::new();
    for l in 0..layers {
        for &t in &cfg.targets {
            out.push(peft_name(l, t, 'A'));
            out.push(peft_name(l, t, 'B'));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_and_without_the_adapter_name() {
        assert_eq!(
            parse_key("base_model.model.model.layers.3.mlp.up_proj.lora_B.weight"),
            Some((3, Target::UpProj, 'B'))
        );
        assert_eq!(
            parse_key("base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight"),
            Some((0, Target::QProj, 'A'))
        );
        assert_eq!(parse_key("base_model.model.lm_head.lora_A.weight"), None);
    }

    #[test]
    fn unsupported_peft_features_are_refused_by_name() {
        let cfg = config_json(
            &LoraConfig {
                r: 4,
                alpha: 8.0,
                dropout: 0.0,
                targets: vec![Target::QProj],
                use_rslora: true,
            },
            None,
        );
        let p = Path::new("adapter_config.json");
        let back = parse_config(&cfg, p).unwrap();
        assert_eq!((back.r, back.alpha, back.use_rslora), (4, 8.0, true));
        let mut dora = cfg.clone();
        dora["use_dora"] = json!(true);
        let err = format!("{:#}", parse_config(&dora, p).unwrap_err());
        assert!(err.contains("use_dora"), "{err}");
        let mut ranks = cfg;
        ranks["rank_pattern"] = json!({"q_proj": 8});
        let err = format!("{:#}", parse_config(&ranks, p).unwrap_err());
        assert!(err.contains("rank_pattern"), "{err}");
    }
}
