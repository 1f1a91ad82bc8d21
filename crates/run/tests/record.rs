//! `run.json` holds the command, the configuration, the build and the machine, and is completed
//! with the kernel paths at the end.

use oneshot_run::{write_run_json, KernelReport};
use serde_json::{json, Value};

struct Paths;

impl KernelReport for Paths {
    fn paths_used(&self) -> Vec<String> {
        vec!["matmul_nt:portable".into(), "simd:portable".into()]
    }
    fn summary(&self) -> String {
        "detected avx2, active portable".into()
    }
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn run_json_is_written_at_the_start_and_completed_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs/a");
    let config = json!({"lr": 1e-6, "steps": 3});
    let mut record = write_run_json(&out, "oneshot train --config x.toml", config.clone()).unwrap();
    let path = out.join("run.json");
    assert_eq!(record.path(), path);

    let v = read(&path);
    assert_eq!(v["command"], "oneshot train --config x.toml");
    assert_eq!(v["config"], config);
    assert_eq!(v["oneshot_version"], env!("CARGO_PKG_VERSION"));
    let commit = v["git"]["commit"].as_str().unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{commit}"
    );
    assert!(v["git"]["dirty"].is_boolean() || v["git"]["dirty"].is_null());
    assert!(v["cpu"]["model"].as_str().is_some_and(|m| !m.is_empty()));
    if cfg!(target_os = "linux") {
        assert_ne!(v["cpu"]["model"], "unknown", "read from /proc/cpuinfo");
        let flags = v["cpu"]["flags"].as_str().unwrap();
        assert!(
            flags.split(' ').count() > 1 && !flags.contains("  "),
            "{flags}"
        );
    }
    assert!(v["threads"].as_u64().is_some_and(|n| n >= 1));
    assert!(v["started_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(v["finished_at"].is_null() && v["kernels"].is_null());

    record.finish(&Paths).unwrap();
    let v = read(&path);
    assert!(v["finished_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(v["seconds"].as_f64().is_some_and(|s| s >= 0.0));
    assert_eq!(
        v["kernels"],
        json!({"isa": "detected avx2, active portable", "paths": ["matmul_nt:portable", "simd:portable"]})
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["run.json"], "no temporary file is left behind");
}
