//! Selection on the paper's data: the variance ranking and the few-shot files it builds must
//! reproduce One-Shot-RLVR's (pi_1 = 124, pi_2 = 267, pi_13 = 682; pi1/pi2/pi13/merge files).

mod common;

use oneshot_data::select::{
    indices_at_ranks, rank_by_variance, read_history, repeat_rows, write_history,
};
use oneshot_data::verl::{read_verl_parquet, write_verl_parquet, VerlRow};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The training pool, or `None` (the test skips) without the shared data.
fn pool() -> Option<Vec<VerlRow>> {
    Some(read_verl_parquet(&common::train("dsr_sub.parquet")?).expect("dsr_sub reads"))
}

#[test]
fn pool_index_is_row_number() {
    let Some(pool) = pool() else {
        return;
    };
    assert_eq!(pool.len(), 1209);
    for (row, r) in pool.iter().enumerate() {
        assert_eq!(r.index, row as i64);
    }
    assert_eq!(pool[124].ground_truth, "12.8");
    assert_eq!(
        pool[0].extra,
        vec![(
            "split".to_owned(),
            oneshot_data::verl::ExtraValue::Str("train".into())
        )]
    );
}

#[test]
fn variance_ranking_reproduces_paper_indices() {
    let Some(file) = common::train("acc_step_500.json") else {
        return;
    };
    let history = read_history(&file).unwrap();
    assert_eq!(history.len(), 1209);
    let ranking = rank_by_variance(&history);
    assert_eq!(
        indices_at_ranks(&ranking, &[1, 2, 13]).unwrap(),
        vec![124, 267, 682]
    );
    // Scores are descending, and ranks 14/15 are a tie resolved by ascending index.
    assert!(ranking.windows(2).all(|w| w[0].score >= w[1].score));
    assert_eq!(ranking[13].score, ranking[14].score);
    assert!(ranking[13].index < ranking[14].index);
    assert!((ranking[0].score - 0.406_755_870_515_284_9).abs() < 1e-12);
    assert!(indices_at_ranks(&ranking, &[0]).is_err());
    assert!(indices_at_ranks(&ranking, &[1210]).is_err());
}

fn assert_same_rows(built: &[VerlRow], reference: &str) {
    let Some(file) = common::train(reference) else {
        return;
    };
    let expected = read_verl_parquet(&file).unwrap();
    assert_eq!(built.len(), expected.len(), "{reference}: row count");
    for (i, (a, b)) in built.iter().zip(&expected).enumerate() {
        assert_eq!(a, b, "{reference}: row {i} differs");
    }
}

#[test]
fn repeated_files_match_the_papers() {
    let Some(pool) = pool() else {
        return;
    };
    assert_same_rows(
        &repeat_rows(&pool, &[124], 128).unwrap(),
        "pi1_r128.parquet",
    );
    assert_same_rows(
        &repeat_rows(&pool, &[267], 128).unwrap(),
        "pi2_r128.parquet",
    );
    assert_same_rows(
        &repeat_rows(&pool, &[682], 128).unwrap(),
        "pi13_r128.parquet",
    );
    assert_same_rows(
        &repeat_rows(&pool, &[124, 682], 128).unwrap(),
        "merge_pi1_pi13_r128.parquet",
    );
    assert_same_rows(
        &repeat_rows(&pool, &[789], 128).unwrap(),
        "pi1209_r128.parquet",
    );
}

#[test]
fn uneven_repeat_gives_earlier_blocks_one_more() {
    let Some(pool) = pool() else {
        return;
    };
    let rows = repeat_rows(&pool, &[124, 267, 682], 8).unwrap();
    let idx: Vec<i64> = rows.iter().map(|r| r.index).collect();
    assert_eq!(idx, vec![124, 124, 124, 267, 267, 267, 682, 682]);
    assert!(repeat_rows(&pool, &[124, 267], 1).is_err());
    let err = repeat_rows(&pool, &[5000], 4).unwrap_err().to_string();
    assert!(err.contains("5000"), "{err}");
}

fn arrow_fields(path: &std::path::Path) -> arrow_schema::Fields {
    let file = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .schema()
        .fields()
        .clone()
}

#[test]
fn written_file_has_the_papers_schema_and_reads_back() {
    let Some(pool) = pool() else {
        return;
    };
    let rows = repeat_rows(&pool, &[124], 128).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pi1.parquet");
    write_verl_parquet(&out, &rows).unwrap();
    let Some(reference) = common::train("pi1_r128.parquet") else {
        return;
    };
    assert_eq!(arrow_fields(&out), arrow_fields(&reference));
    assert_same_rows(&read_verl_parquet(&out).unwrap(), "pi1_r128.parquet");
}

#[test]
fn math500_verl_round_trips_with_its_extra_fields() {
    let Some(path) = common::train("math500_verl.parquet") else {
        return;
    };
    let rows = read_verl_parquet(&path).unwrap();
    assert_eq!(rows.len(), 500);
    let names: Vec<&str> = rows[0].extra.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["level", "solution", "subject", "unique_id", "url"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.parquet");
    write_verl_parquet(&out, &rows).unwrap();
    assert_eq!(read_verl_parquet(&out).unwrap(), rows);
}

#[test]
fn history_file_round_trips() {
    let Some(file) = common::train("acc_step_500.json") else {
        return;
    };
    let history = read_history(&file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("h.json");
    write_history(&out, &history).unwrap();
    assert_eq!(read_history(&out).unwrap(), history);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.starts_with("{\n    \"0\": [\n        "),
        "{}",
        &text[..40]
    );
}

#[test]
fn trainer_history_is_ranked_like_the_papers() {
    use oneshot_data::select::{record_epoch, History};
    let mut history = History::new();
    record_epoch(&mut history, [(7, 0.0), (3, 0.5), (9, 1.0)]);
    record_epoch(&mut history, [(7, 0.0), (3, 1.0), (9, 0.0)]);
    record_epoch(&mut history, [(7, 0.125), (3, 0.0), (9, 1.0)]);
    assert_eq!(history[&3], vec![0.5, 1.0, 0.0]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    write_history(&path, &history).unwrap();
    let ranking = rank_by_variance(&read_history(&path).unwrap());
    // std: 9 -> sqrt(2/9) = 0.471, 3 -> sqrt(1/6) = 0.408, 7 -> sqrt(1/288)= 0.059.
    let order: Vec<i64> = ranking.iter().map(|r| r.index).collect();
    assert_eq!(order, vec![9, 3, 7]);
    assert!((ranking[0].score - (2.0f64 / 9.0).sqrt()).abs() < 1e-15);
    assert!((ranking[1].score - (1.0f64 / 6.0).sqrt()).abs() < 1e-15);
    assert!((ranking[2].mean - 0.125 / 3.0).abs() < 1e-15);
    // Bad history entries are reported by key.
    std::fs::write(
        &path,
        "{\"1\": [0.5], \"x\": [1], \"2\": [], \"3\": [\"a\"]}",
    )
    .unwrap();
    let msg = read_history(&path).unwrap_err().to_string();
    assert!(
        msg.contains("3 bad record(s)") && msg.contains("field `x`") && msg.contains("field `2`"),
        "{msg}"
    );
}
