//! The golden demo: a short `oneshot demo` (the `golden` budget, under a minute) on the
//! committed lab base with the portable kernels forced (`ONESHOT_ISA=portable`), so every CPU
//! computes the same numbers. Its summary, less timings and the model path, must equal the
//! committed `tests/golden/demo_summary.json` field by field: any change to sampling, the
//! checker, the lab or the training step shows up here. A change that alters them on purpose
//! re-records the file (`bash scripts/record_golden_demo.sh`) and says why in its commit.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/demo_summary.json"
);
/// Fields that measure time or name machine-specific paths.
const NOT_COMPARED: [&str; 3] = ["stage_seconds", "wall_seconds", "model"];

fn lab_base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../lab/base")
}

/// Runs the golden demo into `out` and returns its summary without the uncompared fields.
fn golden_summary(out: &Path) -> Value {
    let status = Command::new(env!("CARGO_BIN_EXE_oneshot"))
        .args([
            "demo",
            "--budget",
            "golden",
            "--no-progress",
            "--seed",
            "0",
            "--model",
        ])
        .arg(lab_base())
        .arg("--out")
        .arg(out)
        .env("ONESHOT_ISA", "portable")
        .status()
        .expect("the oneshot binary runs");
    assert!(
        status.success(),
        "oneshot demo --budget golden failed: {status}"
    );
    let text = std::fs::read_to_string(out.join("summary.json")).expect("summary.json written");
    let mut v: Value = serde_json::from_str(&text).expect("summary.json parses");
    let obj = v.as_object_mut().expect("summary.json is an object");
    for k in NOT_COMPARED {
        obj.remove(k);
    }
    v
}

/// Every leaf that differs, as `path: golden -> now`.
fn differences(path: &str, golden: &Value, now: &Value, out: &mut Vec<String>) {
    match (golden, now) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                differences(&format!("{path}/{k}"), x, y, out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(&format!("{path}/{i}"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("{path}: {a} -> {b}")),
        _ => {}
    }
}

#[test]
fn the_golden_demo_reproduces_its_committed_summary() {
    let dir = tempfile::tempdir().unwrap();
    let now = golden_summary(&dir.path().join("demo"));
    if std::env::var_os("ONESHOT_RECORD_GOLDEN").is_some() {
        let text = serde_json::to_string_pretty(&now).unwrap() + "\n";
        std::fs::write(GOLDEN, text).unwrap();
        eprintln!("recorded {GOLDEN}");
        return;
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(GOLDEN).unwrap_or_else(|e| panic!("{GOLDEN}: {e}")),
    )
    .unwrap();
    let mut diffs = Vec::new();
    differences("", &golden, &now, &mut diffs);
    assert!(
        diffs.is_empty(),
        "the golden demo changed ({} fields); if on purpose, re-record with \
         scripts/record_golden_demo.sh and say why in the commit:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}
