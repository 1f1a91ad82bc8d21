//! Python bindings of the oneshot checker (`oneshot_verify._native`). The Python package
//! `oneshot_verify` re-exports these functions and adds the verl/TRL reward signatures.
//!
//! Nothing panics across the boundary: every call into the checker runs under `catch_unwind`
//! and a panic becomes a `RuntimeError`. Batches run on a rayon pool owned by this module and
//! rebuilt after `fork()` (a forked child inherits the pool's bookkeeping but not its threads,
//! so the parent's pool would wait forever there).

use oneshot_verify::{Checker, CheckerOptions, Verdict};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rayon::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

/// The batch pool and the process that built it.
static POOL: Mutex<Option<(u32, Arc<rayon::ThreadPool>)>> = Mutex::new(None);

/// The pool of this process, built on first use and again in a forked child. Called with the
/// GIL held, so a fork (which Python performs holding the GIL) never sees the mutex locked.
fn pool() -> PyResult<Arc<rayon::ThreadPool>> {
    let pid = std::process::id();
    let mut guard = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((owner, p)) = guard.as_ref() {
        if *owner == pid {
            return Ok(p.clone());
        }
    }
    let p = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("oneshot-verify-{i}"))
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start worker threads: {e}")))?;
    let p = Arc::new(p);
    *guard = Some((pid, p.clone()));
    Ok(p)
}

/// Builds `CheckerOptions` from keyword arguments; unknown names and wrong types are errors
/// that name the option.
fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<CheckerOptions> {
    let mut o = CheckerOptions::default();
    let Some(kw) = kwargs else { return Ok(o) };
    for (k, v) in kw.iter() {
        let name: String = k.extract()?;
        let bad = |want: &str| {
            PyTypeError::new_err(format!(
                "option `{name}` must be {want}, got {}",
                v.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        };
        match name.as_str() {
            "tolerance" => {
                let t: f64 = v.extract().map_err(|_| bad("a float"))?;
                if !(t.is_finite() && t >= 0.0) {
                    return Err(PyValueError::new_err(
                        "option `tolerance` must be a finite number >= 0",
                    ));
                }
                o.tolerance = t;
            }
            "precision" => {
                o.precision = if v.is_none() {
                    None
                } else {
                    Some(v.extract().map_err(|_| bad("an int >= 0 or None"))?)
                }
            }
            "rounded_min_sig_digits" => {
                o.rounded_min_sig_digits = v.extract().map_err(|_| bad("an int >= 0"))?
            }
            "last_number_fallback" => {
                o.last_number_fallback = v.extract().map_err(|_| bad("a bool"))?
            }
            "boxed_only" => o.boxed_only = v.extract().map_err(|_| bad("a bool"))?,
            "choices" => {
                if v.is_instance_of::<pyo3::types::PyString>() {
                    return Err(bad("a list of strings"));
                }
                o.choices = v.extract().map_err(|_| bad("a list of strings"))?
            }
            "work_limit" => o.work_limit = v.extract().map_err(|_| bad("an int >= 0"))?,
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown option `{name}` (known: tolerance, precision, \
                     rounded_min_sig_digits, last_number_fallback, boxed_only, choices, \
                     work_limit)"
                )))
            }
        }
    }
    Ok(o)
}

fn guarded<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| {
        PyRuntimeError::new_err("internal error in the checker (a bug: please report the input)")
    })
}

fn run_check(checker: &Checker, prediction: &str, gold: &str) -> PyResult<Verdict> {
    guarded(|| checker.check(prediction, gold))
}

/// verify(prediction, gold, **options) -> bool
///
/// Whether the final answer of `prediction` (a full response or a bare answer) equals `gold`.
#[pyfunction]
#[pyo3(signature = (prediction, gold, **options))]
fn verify(
    py: Python<'_>,
    prediction: &str,
    gold: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<bool> {
    let checker = Checker::new(self::options(options)?);
    let (p, g) = (prediction.to_owned(), gold.to_owned());
    py.allow_threads(move || run_check(&checker, &p, &g).map(|v| v.correct))
}

/// check(prediction, gold, **options) -> dict
///
/// As `verify`, also returning what was extracted:
/// `{"correct": bool, "extracted": str | None, "gold_extracted": str | None}`.
#[pyfunction]
#[pyo3(signature = (prediction, gold, **options))]
fn check<'py>(
    py: Python<'py>,
    prediction: &str,
    gold: &str,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyDict>> {
    let checker = Checker::new(self::options(options)?);
    let (p, g) = (prediction.to_owned(), gold.to_owned());
    let v = py.allow_threads(move || run_check(&checker, &p, &g))?;
    let d = PyDict::new(py);
    d.set_item("correct", v.correct)?;
    d.set_item("extracted", v.extracted)?;
    d.set_item("gold_extracted", v.gold_extracted)?;
    Ok(d)
}

/// verify_batch(predictions, golds, **options) -> list[bool]
///
/// `verify` over pairs, on all cores with the GIL released. `golds` may also be a single
/// string used for every prediction.
#[pyfunction]
#[pyo3(signature = (predictions, golds, **options))]
fn verify_batch<'py>(
    py: Python<'py>,
    predictions: &Bound<'py, PyAny>,
    golds: &Bound<'py, PyAny>,
    options: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyList>> {
    let checker = Checker::new(self::options(options)?);
    if predictions.is_instance_of::<pyo3::types::PyString>() {
        return Err(PyTypeError::new_err(
            "predictions must be a sequence of strings, not a string",
        ));
    }
    let preds: Vec<String> = predictions
        .extract()
        .map_err(|_| PyTypeError::new_err("predictions must be a sequence of strings"))?;
    let golds: Vec<String> = if let Ok(one) = golds.extract::<String>() {
        vec![one; preds.len()]
    } else {
        golds
            .extract()
            .map_err(|_| PyTypeError::new_err("golds must be a string or a sequence of strings"))?
    };
    if golds.len() != preds.len() {
        return Err(PyValueError::new_err(format!(
            "{} predictions but {} golds",
            preds.len(),
            golds.len()
        )));
    }
    let pool = pool()?;
    let out: PyResult<Vec<bool>> = py.allow_threads(move || {
        guarded(|| {
            pool.install(|| {
                preds
                    .par_iter()
                    .zip(golds.par_iter())
                    .map(|(p, g)| checker.check(p, g).correct)
                    .collect()
            })
        })
    });
    PyList::new(py, out?)
}

/// The checker's default options as a dict (the keyword arguments every function accepts).
#[pyfunction]
fn default_options(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let o = CheckerOptions::default();
    let d = PyDict::new(py);
    d.set_item("tolerance", o.tolerance)?;
    d.set_item("precision", o.precision)?;
    d.set_item("rounded_min_sig_digits", o.rounded_min_sig_digits)?;
    d.set_item("last_number_fallback", o.last_number_fallback)?;
    d.set_item("boxed_only", o.boxed_only)?;
    d.set_item("choices", o.choices)?;
    d.set_item("work_limit", o.work_limit)?;
    Ok(d)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_function(wrap_pyfunction!(verify_batch, m)?)?;
    m.add_function(wrap_pyfunction!(default_options, m)?)?;
    Ok(())
}
