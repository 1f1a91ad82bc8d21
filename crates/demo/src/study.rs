//! A multi-run study's JSON file doubles as its checkpoint (`lab reproduce`, `lab selection`):
//! it holds the settings the runs were made with, results worth keeping across restarts (the
//! selection pass's history, the base evaluation) and every finished run. It is rewritten
//! atomically after each run, so an interrupted study keeps its finished runs, and a restart
//! with the same settings skips them; other settings are refused rather than mixed in.
use crate::files;
use crate::pipeline::{base_data_seed, LabData};
use anyhow::{bail, Context, Result};
use oneshot_lab::eval::LabModel;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// A study's model and lab data: the model in `model`, the output directory `out` created, and
/// the pool and benchmark generated into it from `data_seed` (by default the seed the base was
/// pretrained with), which is returned for the study's settings.
pub fn open_lab(
    model: &Path,
    out: &Path,
    data_seed: Option<u64>,
) -> Result<(LabModel, LabData, u64)> {
    let lab = LabModel::load(model)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let data_seed = match data_seed {
        Some(s) => s,
        None => base_data_seed(model)?,
    };
    let data = LabData::generate(&out.join(files::DATA_DIR), data_seed)?;
    Ok((lab, data, data_seed))
}

pub struct Study<R> {
    path: PathBuf,
    settings: Value,
    cache: Map<String, Value>,
    runs: Vec<R>,
}

/// The first top-level key whose values differ (or the whole object).
fn first_difference(a: &Value, b: &Value) -> String {
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for k in a.keys().chain(b.keys()) {
            if a.get(k) != b.get(k) {
                return k.clone();
            }
        }
    }
    "(all)".into()
}

impl<R: Serialize + DeserializeOwned> Study<R> {
    /// The study in `path`: its finished runs when the file exists with these `settings`, an
    /// empty one when it does not exist.
    pub fn open(path: &Path, settings: Value) -> Result<Self> {
        // Through text and back, so numbers compare as they will read from the file.
        let settings: Value = serde_json::from_str(&serde_json::to_string(&settings)?)?;
        let mut study = Self {
            path: path.to_path_buf(),
            settings,
            cache: Map::new(),
            runs: Vec::new(),
        };
        if !path.exists() {
            return Ok(study);
        }
        let redo = "pass another --out or remove the file to start over";
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not JSON ({redo})", path.display()))?;
        let Some(old) = v.get("settings") else {
            bail!(
                "{}: no `settings` field, so its runs cannot be matched to this command ({redo})",
                path.display()
            );
        };
        if *old != study.settings {
            let key = first_difference(old, &study.settings);
            bail!(
                "{}: its runs were made with other settings (`settings.{key}`: {} in the file, {} now); {redo}",
                path.display(),
                old.get(&key).unwrap_or(old),
                study.settings.get(&key).unwrap_or(&study.settings)
            );
        }
        if let Some(cache) = v.get("cache") {
            study.cache = cache
                .as_object()
                .with_context(|| format!("{}: `cache` is not an object ({redo})", path.display()))?
                .clone();
        }
        if let Some(runs) = v.get("runs") {
            study.runs = serde_json::from_value(runs.clone())
                .with_context(|| format!("{}: field `runs` ({redo})", path.display()))?;
        }
        Ok(study)
    }

    /// `name` from the file when an earlier run of the study computed it, else `compute()`'s
    /// value, kept for the next [`Study::save`].
    pub fn cached<T: Serialize + DeserializeOwned>(
        &mut self,
        name: &str,
        compute: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        if let Some(v) = self.cache.get(name) {
            return serde_json::from_value(v.clone())
                .with_context(|| format!("{}: field `cache.{name}`", self.path.display()));
        }
        let t = compute()?;
        self.cache
            .insert(name.to_string(), serde_json::to_value(&t)?);
        Ok(t)
    }

    pub fn runs(&self) -> &[R] {
        &self.runs
    }

    pub fn find(&self, pred: impl Fn(&R) -> bool) -> Option<&R> {
        self.runs.iter().find(|r| pred(r))
    }

    pub fn push(&mut self, run: R) {
        self.runs.push(run);
    }

    /// Writes the fields of `extra` (the study's tables) with the settings, the cache and the
    /// runs, through a temporary file, so an interruption leaves the previous file whole.
    pub fn save(&self, extra: Value) -> Result<()> {
        let Value::Object(mut m) = extra else {
            bail!(
                "{}: the study's fields are not an object",
                self.path.display()
            );
        };
        m.insert("settings".into(), self.settings.clone());
        m.insert("cache".into(), Value::Object(self.cache.clone()));
        m.insert("runs".into(), serde_json::to_value(&self.runs)?);
        let tmp = self.path.with_extension("json.partial");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(&Value::Object(m))? + "\n",
        )
        .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("replacing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_reopened_study_keeps_its_runs_and_cache_and_refuses_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let settings = json!({"model": "m", "lr": 1e-4, "k": 2});
        let mut s: Study<(u64, f64)> = Study::open(&path, settings.clone()).unwrap();
        assert!(s.runs().is_empty());
        let mut computed = 0;
        let v: Vec<f64> = s
            .cached("hist", || {
                computed += 1;
                Ok(vec![0.25, 0.5])
            })
            .unwrap();
        s.push((1, 0.3));
        s.save(json!({"table": 1})).unwrap();

        let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(file["table"], 1);
        let mut again: Study<(u64, f64)> = Study::open(&path, settings.clone()).unwrap();
        assert_eq!(again.runs(), &[(1, 0.3)]);
        assert!(again.find(|r| r.0 == 1).is_some() && again.find(|r| r.0 == 2).is_none());
        let cached: Vec<f64> = again
            .cached("hist", || {
                computed += 1;
                Ok(vec![])
            })
            .unwrap();
        assert_eq!((cached, computed), (v, 1));

        let err = Study::<(u64, f64)>::open(&path, json!({"model": "m", "lr": 1e-4, "k": 3}))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("s.json") && err.contains("settings.k"),
            "{err}"
        );
        std::fs::write(&path, "{").unwrap();
        let err = Study::<(u64, f64)>::open(&path, settings).err().unwrap();
        assert!(format!("{err:#}").contains("not JSON"), "{err:#}");
    }
}
