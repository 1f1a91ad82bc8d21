//! The file-writing runner end to end on a tiny random model and the real benchmark files: every
//! output file checked against the sample records, resume after an interruption (including a
//! torn last line), refusal to mix settings, and agreement with `oneshot score`'s scoring path.
mod common;

use std::path::Path;

use common::*;
use oneshot_data::responses::{attach_responses, read_responses};
use oneshot_data::scoring::{score_response, summarize};
use oneshot_data::subset::Limit;
use oneshot_eval::testing::{check_run_dir, ExpectedBenchmark};
use oneshot_eval::{run_benchmarks, EvalSpec, RunOptions, Silent};

const TOKENS: usize = 16;

fn specs() -> Vec<EvalSpec> {
    vec![
        spec("math500", short(TOKENS), Some(Limit::First(4))),
        spec("amc23", short(TOKENS), Some(Limit::First(4))),
    ]
}

fn options(out: &Path) -> RunOptions {
    RunOptions {
        out: out.to_owned(),
        name: "tiny".into(),
        model: "tiny-test-model".into(),
        dtype: "f32".into(),
        overwrite: false,
    }
}

fn expected() -> Vec<ExpectedBenchmark> {
    vec![
        ExpectedBenchmark {
            name: "math500".into(),
            problems: vec![0, 1, 2, 3],
            samples: 1,
            max_new_tokens: TOKENS,
        },
        ExpectedBenchmark {
            name: "amc23".into(),
            problems: vec![0, 1, 2, 3],
            samples: 8,
            max_new_tokens: TOKENS,
        },
    ]
}

fn snapshot(out: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for rel in ["summary.json", "table.md"]
        .into_iter()
        .map(String::from)
        .chain(["math500", "amc23"].iter().flat_map(|b| {
            [
                "samples.jsonl",
                "summary.json",
                "table.md",
                "eval_config.json",
            ]
            .map(|f| format!("{b}/{f}"))
        }))
    {
        files.push((
            rel.clone(),
            std::fs::read_to_string(out.join(&rel)).unwrap(),
        ));
    }
    files
}

/// Keeps the first `keep` lines of a file, then appends `torn` (a partial line, no newline).
fn cut(path: &Path, keep: usize, torn: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut kept: String = text.lines().take(keep).map(|l| format!("{l}\n")).collect();
    kept.push_str(torn);
    std::fs::write(path, kept).unwrap();
}

#[test]
fn runner_writes_consistent_files_and_resumes_without_regenerating() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    let generator = tiny.generator(6);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");

    let report = run_benchmarks(
        &generator,
        &specs(),
        &ParityChecker,
        &options(&out),
        &Silent,
    )
    .unwrap();
    let generated: Vec<(usize, usize)> = report
        .runs
        .iter()
        .map(|r| (r.generated, r.reused))
        .collect();
    assert_eq!(generated, vec![(4, 0), (32, 0)]);
    let lines = check_run_dir(&out, "tiny", &expected());
    assert_eq!(
        report.summary.six_benchmark_average, None,
        "only two of six benchmarks ran"
    );

    // Prompts are the qwen25-math-cot rendering of each question; gold is the benchmark label.
    let math = &specs()[0];
    for l in &lines[0] {
        let p = &math.problems[l["idx"].as_u64().unwrap() as usize];
        let prompt = l["prompt"].as_str().unwrap();
        assert!(
            prompt.starts_with("<|im_start|>system\nPlease reason step by step"),
            "{prompt}"
        );
        assert!(
            prompt.ends_with(&format!(
                "{}<|im_end|>\n<|im_start|>assistant\n",
                p.question
            )),
            "{prompt}"
        );
        assert_eq!(l["gold"], p.label.as_str());
    }
    // Sampled benchmark: the 8 samples of a problem are not all the same text.
    for idx in 0..4u64 {
        let texts: std::collections::HashSet<&str> = lines[1]
            .iter()
            .filter(|l| l["idx"] == idx)
            .map(|l| l["response"].as_str().unwrap())
            .collect();
        assert!(
            texts.len() > 1,
            "amc23 problem {idx}: all 8 samples identical"
        );
    }
    // The parity checker gives mixed verdicts, so the pass@k checks above were not vacuous.
    let correct = lines[1].iter().filter(|l| l["correct"] == true).count();
    assert!(0 < correct && correct < 32, "{correct} of 32 correct");

    // `oneshot score`'s path (read responses, attach to problems, check, summarise) gives the
    // same summary from this samples.jsonl.
    for (spec, i) in specs().iter().zip(0..) {
        let path = out.join(&spec.benchmark).join("samples.jsonl");
        let selected: Vec<_> = spec.selected().into_iter().cloned().collect();
        let (responses, outside) = attach_responses(
            &path,
            read_responses(&path).unwrap(),
            &selected,
            spec.problems.len(),
            &|q| q.to_owned(),
        )
        .unwrap();
        assert_eq!(outside, 0);
        let mut records: Vec<_> = responses
            .into_iter()
            .map(|r| score_response(&ParityChecker, &spec.benchmark, r))
            .collect();
        records.sort_by_key(|r| r.key());
        assert_eq!(
            summarize(&spec.benchmark, &spec.column, &records).unwrap(),
            report.summary.benchmarks[i]
        );
    }

    // Interrupt: drop the last sample of math500; drop 5 of amc23 and leave a torn line.
    let before = snapshot(&out);
    cut(&out.join("math500/samples.jsonl"), 3, "");
    cut(
        &out.join("amc23/samples.jsonl"),
        27,
        "{\"benchmark\":\"amc23\",\"idx\":3,\"sam",
    );
    std::fs::remove_file(out.join("summary.json")).unwrap();
    // A different batch size does not change any sample: seeds are per sample.
    let report = run_benchmarks(
        &tiny.generator(4),
        &specs(),
        &ParityChecker,
        &options(&out),
        &Silent,
    )
    .unwrap();
    let generated: Vec<(usize, usize)> = report
        .runs
        .iter()
        .map(|r| (r.generated, r.reused))
        .collect();
    assert_eq!(
        generated,
        vec![(1, 3), (5, 27)],
        "only the missing samples are generated"
    );
    assert_eq!(
        snapshot(&out),
        before,
        "a resumed run writes exactly the files of an uninterrupted one"
    );

    // A finished run resumed again generates nothing.
    let report = run_benchmarks(
        &generator,
        &specs(),
        &ParityChecker,
        &options(&out),
        &Silent,
    )
    .unwrap();
    assert!(report.runs.iter().all(|r| r.generated == 0));
    assert_eq!(snapshot(&out), before);
}

#[test]
fn resuming_under_other_settings_is_refused_unless_overwriting() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    let generator = tiny.generator(8);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let math = || spec("math500", short(4), Some(Limit::First(2)));
    run_benchmarks(
        &generator,
        &[math()],
        &ParityChecker,
        &options(&out),
        &Silent,
    )
    .unwrap();

    let mut hotter = math();
    hotter.decoding.temperature = 0.6;
    let err = run_benchmarks(
        &generator,
        &[hotter.clone()],
        &ParityChecker,
        &options(&out),
        &Silent,
    )
    .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("eval_config.json") && msg.contains("decoding") && msg.contains("--overwrite"),
        "{msg}"
    );
    let mut other_model = options(&out);
    other_model.model = "another-model".into();
    let msg = format!(
        "{:#}",
        run_benchmarks(&generator, &[math()], &ParityChecker, &other_model, &Silent).unwrap_err()
    );
    assert!(
        msg.contains("model") && msg.contains("another-model"),
        "{msg}"
    );

    let mut overwrite = options(&out);
    overwrite.overwrite = true;
    let report =
        run_benchmarks(&generator, &[hotter], &ParityChecker, &overwrite, &Silent).unwrap();
    assert_eq!((report.runs[0].generated, report.runs[0].reused), (2, 0));
    let config = read_json(&out.join("math500/eval_config.json"));
    assert_eq!(config["decoding"]["temperature"], 0.6);

    // Samples without their eval_config.json cannot be vouched for.
    let config_path = out.join("math500/eval_config.json");
    let config_text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::remove_file(&config_path).unwrap();
    let hot = || {
        let mut s = math();
        s.decoding.temperature = 0.6;
        s
    };
    let msg = format!(
        "{:#}",
        run_benchmarks(
            &generator,
            &[hot()],
            &ParityChecker,
            &options(&out),
            &Silent
        )
        .unwrap_err()
    );
    assert!(msg.contains("no eval_config.json"), "{msg}");
    // A corrupt line before the end of samples.jsonl is an error naming the file and line.
    std::fs::write(&config_path, config_text).unwrap();
    let samples = out.join("math500/samples.jsonl");
    let text = std::fs::read_to_string(&samples).unwrap();
    std::fs::write(&samples, format!("not json\n{text}")).unwrap();
    let msg = format!(
        "{:#}",
        run_benchmarks(
            &generator,
            &[hot()],
            &ParityChecker,
            &options(&out),
            &Silent
        )
        .unwrap_err()
    );
    assert!(msg.contains(&format!("{}:1", samples.display())), "{msg}");
}

#[test]
fn a_benchmark_listed_twice_is_an_error() {
    if !have_benchmarks() {
        return;
    }
    let tiny = tiny();
    let dir = tempfile::tempdir().unwrap();
    let s = spec("math500", short(2), Some(Limit::First(1)));
    let err = run_benchmarks(
        &tiny.generator(2),
        &[s.clone(), s],
        &ParityChecker,
        &options(dir.path()),
        &Silent,
    )
    .unwrap_err();
    assert!(err.to_string().contains("listed twice"), "{err}");
}
