//! Pool and benchmark: deterministic, disjoint, with the configured family quotas; the pool
//! round-trips through the verl parquet writer/reader and the benchmark through jsonl.
use oneshot_data::verl::read_verl_parquet;
use oneshot_lab::rng::{item_rng, Purpose};
use oneshot_lab::splits::{self, files, SplitConfig};
use oneshot_lab::task::sample_task;
use oneshot_lab::weights::pick_weighted;
use oneshot_lab::{Family, LabJudge};
use std::collections::{HashMap, HashSet};

#[test]
fn splits_are_deterministic_disjoint_and_follow_quotas() {
    let (p1, b1) = splits::default_splits(0).unwrap();
    let (p2, b2) = splits::default_splits(0).unwrap();
    assert_eq!(p1, p2);
    assert_eq!(b1, b2);
    assert_eq!(p1.len(), 1000);
    assert_eq!(b1.len(), 500);
    let pool_q: HashSet<_> = p1.iter().map(|p| p.problem.as_str()).collect();
    assert_eq!(pool_q.len(), 1000, "pool questions must be unique");
    assert!(
        b1.iter().all(|b| !pool_q.contains(b.problem.as_str())),
        "benchmark overlaps the pool"
    );
    let count =
        |v: &[oneshot_lab::LabProblem], f: Family| v.iter().filter(|x| x.family == f).count();
    for f in Family::ALL {
        assert!(
            (166..=167).contains(&count(&p1, f)),
            "pool {f}: {}",
            count(&p1, f)
        );
    }
    assert_eq!(count(&b1, Family::Arithmetic), 50);
    assert_eq!(count(&b1, Family::Linear), 125);
    // Indices are the row positions.
    assert!(b1.iter().enumerate().all(|(i, p)| p.idx == i));
    let (p3, _) = splits::default_splits(1).unwrap();
    assert_ne!(p1, p3);
}

#[test]
fn files_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let pool_cfg = SplitConfig {
        size: 60,
        ..SplitConfig::pool()
    };
    let bench_cfg = SplitConfig {
        size: 30,
        ..SplitConfig::benchmark()
    };
    let (p, b) = splits::write_splits(dir.path(), 3, &pool_cfg, &bench_cfg).unwrap();
    let rows = read_verl_parquet(&dir.path().join(files::POOL_PARQUET)).unwrap();
    assert_eq!(rows.len(), p.len());
    for (row, prob) in rows.iter().zip(&p) {
        assert_eq!(row.ground_truth, prob.answer);
        assert_eq!(row.index, prob.idx as i64);
        assert_eq!(
            oneshot_data::prompt::strip_training_suffix(row.user_text().unwrap()),
            prob.problem
        );
    }
    assert_eq!(
        splits::read_jsonl(&dir.path().join(files::BENCHMARK_JSONL)).unwrap(),
        b
    );
    assert!(
        b.iter().all(|p| !p.steps.is_empty()),
        "benchmark without steps"
    );
    // The benchmark file is readable as a plain benchmark (question `problem`, label `answer`).
    let probs = oneshot_data::problems::read_jsonl_problems(
        &dir.path().join(files::BENCHMARK_JSONL),
        &oneshot_data::problems::ProblemFields::simple("problem", "answer"),
        oneshot_data::checker::VerifyChecker::extract_boxed,
    )
    .unwrap();
    assert_eq!(probs.len(), b.len());
    // A broken line is reported with file and line.
    std::fs::write(dir.path().join("bad.jsonl"), "{\"idx\": 0}\n").unwrap();
    let e = format!(
        "{:#}",
        splits::read_jsonl(&dir.path().join("bad.jsonl")).unwrap_err()
    );
    assert!(e.contains("bad.jsonl:1"), "{e}");
}

#[test]
fn benchmark_steps_are_the_working_of_the_task_behind_each_problem() {
    let cfg = SplitConfig {
        size: 60,
        ..SplitConfig::benchmark()
    };
    let seed = 5;
    let bench = splits::benchmark(&cfg, seed, &[]).unwrap();
    // Every task a benchmark stream can draw, by family and question.
    let mut tasks = HashMap::new();
    for stream in 0..400 {
        for family in Family::ALL {
            let mut rng = item_rng(seed, Purpose::Benchmark, stream);
            let d = pick_weighted(&mut rng, &cfg.difficulty_weights) as u8 + 1;
            let t = sample_task(family, d, &mut rng);
            tasks.insert((family, t.question.clone()), t);
        }
    }
    let judge = LabJudge::default();
    for p in &bench {
        let t = &tasks[&(p.family, p.problem.clone())];
        assert!(!p.steps.is_empty(), "{}: no steps", p.problem);
        assert_eq!(p.steps, t.steps, "{}", p.problem);
        assert_eq!(p.answer, t.gold_text());
        // The gold working itself is judged as worked and not slipped.
        let text = format!("{}\nThe answer is {}.", p.steps.join("\n"), p.answer);
        let j = judge.judge(&text, &p.answer, &p.steps);
        assert!(j.lenient && !j.direct, "{text}");
        assert_eq!(j.slipped, Some(false), "{text}");
    }
}

#[test]
fn a_benchmark_line_without_steps_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.jsonl");
    std::fs::write(
        &path,
        "{\"idx\":0,\"family\":\"modular\",\"difficulty\":1,\"problem\":\"Compute 41 mod 4.\",\"answer\":\"1\"}\n",
    )
    .unwrap();
    let probs = splits::read_jsonl(&path).unwrap();
    assert_eq!(probs.len(), 1);
    assert_eq!(probs[0].family, Family::Modular);
    assert_eq!(probs[0].answer, "1");
    assert!(probs[0].steps.is_empty());
}
