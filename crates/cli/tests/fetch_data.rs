//! `scripts/fetch_data.sh`: `--verify` accepts the real shared data and names every missing or
//! altered file; the download path fills an empty directory from a local mirror of the
//! upstream tree (`ONESHOT_FETCH_UPSTREAM=file://...`, since the tests run without network).
//!
//! The shared data is `$ONESHOT_SHARED`, else `shared/` beside the repository. Without it the
//! tests print a `skipped:` line and pass, except under `CI=true` (or `1`), where they fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("ONESHOT_SHARED") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join("../shared"),
    };
    if dir.join("data").is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "shared data not found at {}, set ONESHOT_SHARED",
        dir.display()
    );
    let ci = std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    if ci {
        panic!("{msg} (CI=true: missing data is a failure)");
    }
    // Straight to the process's stderr, so the harness's output capture does not hide it.
    let _ = writeln!(std::io::stderr(), "skipped: {msg}");
    None
}

fn script(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg("scripts/fetch_data.sh")
        .args(args)
        .current_dir(repo_root())
        .env_remove("ONESHOT_SHARED")
        .env_remove("ONESHOT_FETCH_UPSTREAM");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("bash runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The script's manifest rows: (path under the shared dir, upstream path or "-").
fn manifest() -> Vec<(String, String)> {
    let body = std::fs::read_to_string(repo_root().join("scripts/fetch_data.sh")).unwrap();
    body.lines()
        .filter(|l| l.starts_with("data/"))
        .map(|l| {
            let cols: Vec<&str> = l.split('|').collect();
            assert_eq!(cols.len(), 3, "manifest row `{l}`");
            (cols[0].to_string(), cols[2].to_string())
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            // The shared copy may be read-only; the test alters its own copy.
            let mut perms = std::fs::metadata(&target).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            perms.set_readonly(false);
            std::fs::set_permissions(&target, perms).unwrap();
        }
    }
}

#[test]
fn the_manifest_covers_every_file_the_tests_read() {
    let paths: Vec<String> = manifest().into_iter().map(|(p, _)| p).collect();
    for expected in [
        "data/train/dsr_sub.parquet",
        "data/train/acc_step_500.json",
        "data/train/pi1_r128.parquet",
        "data/train/pi2_r128.parquet",
        "data/train/pi13_r128.parquet",
        "data/train/pi1209_r128.parquet",
        "data/train/merge_pi1_pi13_r128.parquet",
        "data/train/math500_verl.parquet",
        "data/benchmarks/math500/test.jsonl",
        "data/benchmarks/aime24/test.jsonl",
        "data/benchmarks/aime25/test.jsonl",
        "data/benchmarks/amc23/test.jsonl",
        "data/benchmarks/minerva_math/test.jsonl",
        "data/benchmarks/olympiadbench/test.jsonl",
        "data/verifier/dev_cases.jsonl",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} not in the manifest"
        );
    }
}

#[test]
fn verify_accepts_the_shared_data() {
    let Some(shared) = shared_dir() else { return };
    let out = script(&["--verify", shared.to_str().unwrap()], &[]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("ok       data/train/pi1_r128.parquet"),
        "{log}"
    );
    assert!(
        !log.contains("MISSING") && !log.contains("MISMATCH"),
        "{log}"
    );

    // Without DIR the script reads ONESHOT_SHARED.
    let out = script(
        &["--verify"],
        &[("ONESHOT_SHARED", shared.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn verify_names_an_altered_and_a_missing_file() {
    let Some(shared) = shared_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(&shared.join("data"), &tmp.path().join("data"));
    let altered = tmp.path().join("data/benchmarks/amc23/test.jsonl");
    let mut bytes = std::fs::read(&altered).unwrap();
    bytes.push(b'\n');
    std::fs::write(&altered, bytes).unwrap();
    std::fs::remove_file(tmp.path().join("data/train/acc_step_500.json")).unwrap();

    let out = script(&["--verify", tmp.path().to_str().unwrap()], &[]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("MISMATCH data/benchmarks/amc23/test.jsonl"),
        "{log}"
    );
    assert!(
        log.contains("MISSING  data/train/acc_step_500.json"),
        "{log}"
    );
    assert!(log.contains("2 of "), "{log}");
    assert!(log.contains("ok       data/train/dsr_sub.parquet"), "{log}");
}

#[test]
fn download_fills_an_empty_directory_from_a_mirror() {
    let Some(shared) = shared_dir() else { return };
    // A mirror laid out like the upstream repository, built from the shared copy.
    let mirror = tempfile::tempdir().unwrap();
    for (path, src) in manifest().iter().filter(|(_, src)| src != "-") {
        let to = mirror.path().join(src);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(shared.join(path), &to).unwrap();
    }
    let upstream = format!("file://{}", mirror.path().display());
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().join("shared");

    let out = script(
        &[dir.to_str().unwrap()],
        &[("ONESHOT_FETCH_UPSTREAM", &upstream)],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("fetched  data/train/pi1_r128.parquet"),
        "{log}"
    );
    // The project-made file has no upstream: reported, not fetched.
    assert!(
        log.contains("skipped  data/verifier/dev_cases.jsonl"),
        "{log}"
    );
    assert_eq!(
        std::fs::read(dir.join("data/benchmarks/math500/test.jsonl")).unwrap(),
        std::fs::read(shared.join("data/benchmarks/math500/test.jsonl")).unwrap()
    );
    // So --verify then fails on that file alone.
    let out = script(&["--verify", dir.to_str().unwrap()], &[]);
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("MISSING  data/verifier/dev_cases.jsonl"),
        "{log}"
    );
    assert!(log.contains("1 of "), "{log}");

    // A second run finds everything in place and downloads nothing.
    let out = script(
        &[dir.to_str().unwrap()],
        &[("ONESHOT_FETCH_UPSTREAM", &upstream)],
    );
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(!log.contains("fetched"), "{log}");

    // Bytes that do not match the committed checksum are refused and not left behind.
    std::fs::remove_file(dir.join("data/benchmarks/aime24/test.jsonl")).unwrap();
    std::fs::write(
        mirror
            .path()
            .join("Qwen2.5-Eval/evaluation/data/aime24/test.jsonl"),
        b"{}\n",
    )
    .unwrap();
    let out = script(
        &[dir.to_str().unwrap()],
        &[("ONESHOT_FETCH_UPSTREAM", &upstream)],
    );
    let log = text(&out);
    assert!(!out.status.success(), "{log}");
    assert!(
        log.contains("FAILED   data/benchmarks/aime24/test.jsonl"),
        "{log}"
    );
    assert!(!dir.join("data/benchmarks/aime24/test.jsonl").exists());
    assert!(!dir.join("data/benchmarks/aime24/test.jsonl.part").exists());
}

#[test]
fn unknown_options_are_refused() {
    let out = script(&["--verfy"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown option --verfy"));
}
