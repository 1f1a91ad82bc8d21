//! One configuration system for every command that takes a config (`oneshot train`,
//! `oneshot lab pretrain`): the type's defaults, a TOML file laid over them key by key (a
//! partial file is fine), then `--set key.path=value` overrides. Unknown keys are errors
//! naming the key (the config types deny unknown fields), and choices are enums whose error
//! lists the allowed values. The resolved config is written back as TOML with the run.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses one override value: any TOML value (`0.5`, `true`, `"x"`, `[1, 2]`), else the raw
/// text as a string (so `--set model.path=/m` needs no quotes).
fn parse_value(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Applies `key.path=value` to a table, creating intermediate tables as needed.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (key, value) = assignment.split_once('=').with_context(|| {
        format!("--set `{assignment}`: expected key=value (e.g. optim.lr=1e-5)")
    })?;
    let path: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if path.iter().any(|p| p.is_empty()) {
        bail!(
            "--set `{assignment}`: the key `{}` has an empty part",
            key.trim()
        );
    }
    let (last, parents) = path.split_last().expect("split yields at least one part");
    let mut here = table;
    for (depth, part) in parents.iter().enumerate() {
        let slot = here
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = slot.as_table_mut().with_context(|| {
            format!(
                "--set `{assignment}`: `{}` is not a section",
                path[..=depth].join(".")
            )
        })?;
    }
    here.insert(last.to_string(), parse_value(value.trim()));
    Ok(())
}

/// Lays `over` onto `base` key by key (tables merge, anything else replaces).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// `T::default()`, then the file at `path` (when given), then `overrides`, in that order.
/// Errors name the file and the key.
pub fn load<T>(path: Option<&Path>, overrides: &[String]) -> Result<T>
where
    T: Default + Serialize + DeserializeOwned,
{
    let mut table = toml::Table::try_from(T::default()).context("serialising the defaults")?;
    if let Some(p) = path {
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading config {}", p.display()))?;
        let file: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?;
        merge(&mut table, file);
    }
    for o in overrides {
        apply_override(&mut table, o)?;
    }
    let what = path.map_or("the default config".to_string(), |p| {
        p.display().to_string()
    });
    toml::Value::Table(table)
        .try_into()
        .with_context(|| format!("in {what} (after --set overrides)"))
}

/// The resolved config as TOML.
pub fn to_toml<T: Serialize>(cfg: &T) -> Result<String> {
    toml::to_string_pretty(cfg).context("serialising the config")
}

/// A TOML string literal for `s` (for building overrides from flags).
pub fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        lr: f64,
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        steps: usize,
        inner: Inner,
    }

    impl Default for Cfg {
        fn default() -> Self {
            Cfg {
                steps: 10,
                inner: Inner {
                    lr: 1e-3,
                    name: "a".into(),
                },
            }
        }
    }

    #[test]
    fn a_partial_file_and_overrides_lay_over_the_defaults() {
        let dir = tempdir();
        let p = dir.join("c.toml");
        std::fs::write(&p, "[inner]\nname = \"file\"\n").unwrap();
        let c: Cfg = load(Some(&p), &["steps=3".into(), "inner.lr=0.5".into()]).unwrap();
        assert_eq!(
            c,
            Cfg {
                steps: 3,
                inner: Inner {
                    lr: 0.5,
                    name: "file".into()
                }
            }
        );
        let c: Cfg = load(None, &["inner.name=/some/path".into()]).unwrap();
        assert_eq!(c.inner.name, "/some/path");
    }

    #[test]
    fn typos_and_bad_assignments_are_errors_naming_them() {
        let err = format!(
            "{:#}",
            load::<Cfg>(None, &["inner.lrr=1".into()]).unwrap_err()
        );
        assert!(err.contains("lrr"), "{err}");
        let err = format!("{:#}", load::<Cfg>(None, &["steps".into()]).unwrap_err());
        assert!(err.contains("key=value"), "{err}");
        let err = format!(
            "{:#}",
            load::<Cfg>(None, &["steps.x=1".into()]).unwrap_err()
        );
        assert!(err.contains("`steps` is not a section"), "{err}");
    }

    #[test]
    fn floats_print_as_written() {
        let text = to_toml(&Cfg {
            steps: 1,
            inner: Inner {
                lr: 0.001,
                name: "x".into(),
            },
        })
        .unwrap();
        assert!(text.contains("lr = 0.001"), "{text}");
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("oneshot-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
