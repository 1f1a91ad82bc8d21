//! Readers on hand-made files: good records load, every bad one is reported with file/line/field.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, ListArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType, Field, Fields, Schema};
use oneshot_data::problems::{
    read_jsonl_problems, read_parquet_problems, LabelSource, ProblemFields,
};
use oneshot_data::prompt::{
    strip_training_suffix, training_question, ChatRenderer, PromptTemplate,
};
use oneshot_data::sample_log::{read_samples, SampleLog};
use oneshot_data::scoring::SampleRecord;
use oneshot_data::subset::Limit;
use oneshot_data::verl::{read_verl_parquet, ChatTurn};
use oneshot_data::DataError;

fn no_extract(_: &str) -> Option<String> {
    None
}

fn issues(err: DataError) -> Vec<(usize, Option<String>)> {
    match err {
        DataError::BadRecords(list) => list.into_iter().map(|i| (i.line, i.field)).collect(),
        other => panic!("expected BadRecords, got {other}"),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn jsonl_bad_records_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "b.jsonl",
        concat!(
            "{\"problem\": \"1+1?\", \"answer\": \"2\"}\n",
            "\n",
            "{\"question\": \"2+2?\", \"answer\": 4.0}\n",
            "{\"problem\": \"no label\"}\n",
            "not json\n",
            "{\"problem\": \"bad type\", \"answer\": [1]}\n",
            "{\"answer\": \"3\"}\n",
            "[1, 2]\n",
            "{\"problem\": \"empty\", \"answer\": \"  \"}\n",
        ),
    );
    let fields = ProblemFields {
        question: vec!["problem".into(), "question".into()],
        label: LabelSource::Field("answer".into()),
    };
    let err = read_jsonl_problems(&path, &fields, no_extract).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("b.jsonl:4: field `answer`: is missing"),
        "{msg}"
    );
    assert_eq!(
        issues(err),
        vec![
            (4, Some("answer".into())),
            (5, None),
            (6, Some("answer".into())),
            (7, Some("problem or question".into())),
            (8, None),
            (9, Some("answer".into())),
        ]
    );
    let good = write(
        dir.path(),
        "g.jsonl",
        "{\"problem\": \"1+1?\", \"answer\": \"2\"}\n{\"question\": \"q\", \"answer\": 27.0}\n",
    );
    let problems = read_jsonl_problems(&good, &fields, no_extract).unwrap();
    assert_eq!(problems.len(), 2);
    assert_eq!(
        (
            problems[1].idx,
            problems[1].question.as_str(),
            problems[1].label.as_str()
        ),
        (1, "q", "27")
    );
}

#[test]
fn label_rules_boxed_and_first_of() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "o.jsonl",
        "{\"question\": \"q\", \"final_answer\": [\"$\\\\frac{1}{2}$\"]}\n{\"question\": \"q\", \"final_answer\": []}\n",
    );
    let fields = ProblemFields {
        question: vec!["question".into()],
        label: LabelSource::FirstOf("final_answer".into()),
    };
    assert_eq!(
        issues(read_jsonl_problems(&path, &fields, no_extract).unwrap_err()),
        vec![(2, Some("final_answer".into()))]
    );

    let path = write(
        dir.path(),
        "m.jsonl",
        "{\"problem\": \"q\", \"solution\": \"so \\\\boxed{7}\"}\n",
    );
    let fields = ProblemFields {
        question: vec!["problem".into()],
        label: LabelSource::BoxedIn("solution".into()),
    };
    let take_after_brace = |s: &str| {
        s.split("boxed{")
            .nth(1)
            .map(|r| r.trim_end_matches('}').to_owned())
    };
    let problems = read_jsonl_problems(&path, &fields, take_after_brace).unwrap();
    assert_eq!(problems[0].label, "7");
    assert_eq!(
        issues(read_jsonl_problems(&path, &fields, no_extract).unwrap_err()),
        vec![(1, Some("solution".into()))]
    );
}

#[test]
fn flat_parquet_problems_with_named_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("q", DataType::Utf8, true),
        Field::new("gold", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), None])) as ArrayRef,
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ],
    )
    .unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None)
            .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let fields = ProblemFields::simple("q", "gold");
    assert_eq!(
        issues(read_parquet_problems(&path, &fields).unwrap_err()),
        vec![(2, Some("gold".into())), (3, Some("q".into()))]
    );
    let missing = ProblemFields::simple("question", "gold");
    assert!(read_parquet_problems(&path, &missing)
        .unwrap_err()
        .to_string()
        .contains("no question column"));
}

#[test]
fn verl_rows_with_null_label_are_reported_by_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.parquet");
    let msg_fields = Fields::from(vec![
        Field::new("content", DataType::Utf8, true),
        Field::new("role", DataType::Utf8, true),
    ]);
    let messages = StructArray::try_new(
        msg_fields.clone(),
        vec![
            Arc::new(StringArray::from(vec!["q1", "q2"])),
            Arc::new(StringArray::from(vec!["user", "user"])),
        ],
        None,
    )
    .unwrap();
    let prompt = ListArray::try_new(
        Arc::new(Field::new("element", DataType::Struct(msg_fields), true)),
        arrow_buffer::OffsetBuffer::from_lengths([1, 1]),
        Arc::new(messages),
        None,
    )
    .unwrap();
    let rm_fields = Fields::from(vec![
        Field::new("ground_truth", DataType::Utf8, true),
        Field::new("style", DataType::Utf8, true),
    ]);
    let reward = StructArray::try_new(
        rm_fields,
        vec![
            Arc::new(StringArray::from(vec![Some("1"), None])),
            Arc::new(StringArray::from(vec!["rule", "rule"])),
        ],
        None,
    )
    .unwrap();
    let extra = StructArray::try_new(
        Fields::from(vec![Field::new("index", DataType::Int64, true)]),
        vec![Arc::new(Int64Array::from(vec![Some(0), None]))],
        None,
    )
    .unwrap();
    let strings = |v: &str| Arc::new(StringArray::from(vec![v, v])) as ArrayRef;
    let columns: Vec<ArrayRef> = vec![
        strings("src"),
        Arc::new(prompt),
        strings("math"),
        Arc::new(reward),
        Arc::new(extra),
    ];
    let batch = RecordBatch::try_from_iter(
        [
            "data_source",
            "prompt",
            "ability",
            "reward_model",
            "extra_info",
        ]
        .into_iter()
        .zip(columns),
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&path).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    assert_eq!(
        issues(read_verl_parquet(&path).unwrap_err()),
        vec![
            (2, Some("reward_model.ground_truth".into())),
            (2, Some("extra_info.index".into()))
        ]
    );
    let not_parquet = write(dir.path(), "x.parquet", "hello");
    assert!(read_verl_parquet(&not_parquet)
        .unwrap_err()
        .to_string()
        .contains("x.parquet"));
}

struct FakeChat;
impl ChatRenderer for FakeChat {
    fn render_chat(
        &self,
        messages: &[ChatTurn],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String> {
        assert!(add_generation_prompt);
        Ok(messages
            .iter()
            .map(|m| format!("[{}]{}", m.role, m.content))
            .collect::<String>()
            + "[assistant]")
    }
}

#[test]
fn prompt_templates() {
    let q = "What is $1+1$?";
    assert_eq!(
        PromptTemplate::Qwen25MathCot.render(q, None).unwrap(),
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n\
         <|im_start|>user\nWhat is $1+1$?<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(PromptTemplate::Plain.render(q, None).unwrap(), q);
    assert_eq!(
        PromptTemplate::Chat.render(q, Some(&FakeChat)).unwrap(),
        "[user]What is $1+1$? Let's think step by step and output the final answer within \\boxed{}.[assistant]"
    );
    assert!(PromptTemplate::Chat.render(q, None).is_err());
    assert_eq!(
        "chat".parse::<PromptTemplate>().unwrap(),
        PromptTemplate::Chat
    );
    assert!("cot"
        .parse::<PromptTemplate>()
        .unwrap_err()
        .contains("qwen25-math-cot"));
    assert_eq!(strip_training_suffix(&training_question(q)), q);
    assert_eq!(strip_training_suffix(q), q);
}

#[test]
fn limit_subsets_are_deterministic() {
    assert_eq!(Limit::First(3).select(10), vec![0, 1, 2]);
    assert_eq!(Limit::First(30).select(4), vec![0, 1, 2, 3]);
    let a = Limit::Seeded { n: 5, seed: 7 }.select(100);
    assert_eq!(a, Limit::Seeded { n: 5, seed: 7 }.select(100));
    assert_ne!(a, Limit::Seeded { n: 5, seed: 8 }.select(100));
    assert_eq!(a.len(), 5);
    assert!(a.windows(2).all(|w| w[0] < w[1]) && a.iter().all(|&i| i < 100));
    assert_eq!("12".parse::<Limit>().unwrap(), Limit::First(12));
    assert_eq!(
        "12@3".parse::<Limit>().unwrap(),
        Limit::Seeded { n: 12, seed: 3 }
    );
    assert!("x".parse::<Limit>().is_err());
}

fn record(idx: usize, sample: usize) -> SampleRecord {
    SampleRecord {
        benchmark: "math500".into(),
        idx,
        sample,
        prompt: "p".into(),
        response: format!("r{idx}.{sample}"),
        gold: "1".into(),
        extracted: Some("1".into()),
        correct: idx.is_multiple_of(2),
        n_tokens: Some(3),
        truncated: Some(false),
        // Odd problems carry a finish reason, even ones do not (as `oneshot score` writes them).
        finish_reason: (idx % 2 == 1).then(|| "eos".to_string()),
    }
}

#[test]
fn sample_log_resumes_after_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("samples.jsonl");
    {
        let (mut log, done) = SampleLog::open(&path, true).unwrap();
        assert!(done.is_empty());
        log.append(&record(0, 0)).unwrap();
        log.append(&record(1, 0)).unwrap();
        assert!(log.append(&record(1, 0)).is_err());
    }
    // A crash in the middle of the third line.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"benchmark\":\"math5");
    std::fs::write(&path, &text).unwrap();
    assert_eq!(
        read_samples(&path).unwrap(),
        vec![record(0, 0), record(1, 0)]
    );
    // `finish_reason` is written only when known.
    let lines: Vec<&str> = text.lines().collect();
    assert!(!lines[0].contains("finish_reason"), "{}", lines[0]);
    assert!(
        lines[1].ends_with(",\"finish_reason\":\"eos\"}"),
        "{}",
        lines[1]
    );
    let (mut log, done) = SampleLog::open(&path, true).unwrap();
    assert_eq!(done, vec![record(0, 0), record(1, 0)]);
    assert!(log.is_done(1, 0) && !log.is_done(2, 0));
    log.append(&record(2, 0)).unwrap();
    drop(log);
    assert_eq!(
        read_samples(&path).unwrap(),
        vec![record(0, 0), record(1, 0), record(2, 0)]
    );
    // Without resume the log starts over.
    let (_, done) = SampleLog::open(&path, false).unwrap();
    assert!(done.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
    // A bad complete line is an error with its line number.
    std::fs::write(&path, "{}\n").unwrap();
    assert_eq!(issues(read_samples(&path).unwrap_err()), vec![(1, None)]);
}

#[test]
fn responses_attach_to_problems() {
    use oneshot_data::problems::Problem;
    use oneshot_data::responses::{attach_responses, read_responses};
    let dir = tempfile::tempdir().unwrap();
    let problems: Vec<Problem> = (0..3)
        .map(|i| Problem {
            idx: i,
            question: format!("q{i}"),
            label: format!("{}", i * 10),
        })
        .collect();
    let render = |q: &str| format!("<{q}>");

    // Numbered lines: samples counted per problem, gold from the benchmark, prompt rendered.
    let path = write(
        dir.path(),
        "r.jsonl",
        "{\"idx\": 1, \"response\": \"a\"}\n{\"idx\": 0, \"response\": \"b\", \"prompt\": \"P\"}\n{\"idx\": 1, \"response\": \"c\", \"truncated\": true}\n{\"idx\": 2, \"response\": \"d\", \"gold\": 20}\n",
    );
    let (rs, outside) =
        attach_responses(&path, read_responses(&path).unwrap(), &problems, 3, &render).unwrap();
    assert_eq!(outside, 0);
    let got: Vec<(usize, usize, &str, &str, Option<bool>)> = rs
        .iter()
        .map(|r| {
            (
                r.idx,
                r.sample,
                r.gold.as_str(),
                r.prompt.as_str(),
                r.truncated,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, 0, "10", "<q1>", None),
            (0, 0, "0", "P", None),
            (1, 1, "10", "<q1>", Some(true)),
            (2, 0, "20", "<q2>", None)
        ]
    );

    // Only problem 0 is in the subset: the others are counted as outside.
    let (rs, outside) = attach_responses(
        &path,
        read_responses(&path).unwrap(),
        &problems[..1],
        3,
        &render,
    )
    .unwrap();
    assert_eq!((rs.len(), outside), (1, 3));

    // Gold mismatch, duplicate sample, out-of-range idx: each reported with its line.
    let path = write(
        dir.path(),
        "bad.jsonl",
        "{\"idx\": 0, \"response\": \"a\", \"gold\": \"7\"}\n{\"idx\": 1, \"response\": \"a\", \"sample\": 0}\n{\"idx\": 1, \"response\": \"a\", \"sample\": 0}\n{\"idx\": 9, \"response\": \"a\"}\n{\"idx\": 2, \"response\": \"a\"}\n{\"idx\": 0, \"response\": \"z\"}\n",
    );
    let err =
        attach_responses(&path, read_responses(&path).unwrap(), &problems, 3, &render).unwrap_err();
    assert_eq!(
        issues(err),
        vec![
            (1, Some("gold".into())),
            (3, Some("sample".into())),
            (4, Some("idx".into()))
        ]
    );

    // A problem without any response is an error naming it.
    let path = write(
        dir.path(),
        "few.jsonl",
        "{\"idx\": 0, \"response\": \"a\"}\n",
    );
    let msg = attach_responses(&path, read_responses(&path).unwrap(), &problems, 3, &render)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no response for 2 of the 3 problems") && msg.contains("idx 1, 2"),
        "{msg}"
    );

    // Gold-only lines: each its own problem.
    let path = write(
        dir.path(),
        "gold.jsonl",
        "{\"gold\": \"1\", \"response\": \"a\"}\n{\"answer\": 2, \"response\": \"b\"}\n",
    );
    let (rs, _) =
        attach_responses(&path, read_responses(&path).unwrap(), &problems, 3, &render).unwrap();
    let got: Vec<(usize, usize, &str)> = rs
        .iter()
        .map(|r| (r.idx, r.sample, r.gold.as_str()))
        .collect();
    assert_eq!(got, vec![(0, 0, "1"), (1, 0, "2")]);

    // Mixed lines and unreadable lines.
    let path = write(
        dir.path(),
        "mixed.jsonl",
        "{\"gold\": \"1\", \"response\": \"a\"}\n{\"idx\": 0, \"response\": \"b\"}\n",
    );
    assert!(
        attach_responses(&path, read_responses(&path).unwrap(), &problems, 3, &render)
            .unwrap_err()
            .to_string()
            .contains("mixed")
    );
    let path = write(dir.path(), "broken.jsonl", "{\"response\": \"a\"}\n{\"idx\": -1, \"response\": \"a\"}\n{\"idx\": 0, \"response\": 5}\n{\"idx\": 0, \"response\": \"a\", \"truncated\": \"yes\"}\n");
    assert_eq!(
        issues(read_responses(&path).unwrap_err()),
        vec![
            (1, Some("idx".into())),
            (2, Some("idx".into())),
            (3, Some("response".into())),
            (4, Some("truncated".into()))
        ]
    );
}
