//! What the progress lines say (no timing asserted: only the shape of rate and ETA).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oneshot_run::Progress;

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }
}

/// `<rate> <unit>/s` with a decimal number.
fn is_rate(text: &str, unit: &str) -> bool {
    text.strip_suffix(&format!(" {unit}/s"))
        .is_some_and(|n| n.parse::<f64>().is_ok_and(|r| r >= 0.0))
}

/// `45s`, `2m05s`, `1h02m`, `3d04h` or `?`.
fn is_eta(text: &str) -> bool {
    text == "?"
        || (text.ends_with(['s', 'm', 'h'])
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || "smhd".contains(c)))
}

#[test]
fn every_update_prints_counts_rate_and_eta_with_a_zero_interval() {
    let out = Buffer::default();
    let p = Progress::to_writer("eval math500", 5, Duration::ZERO, Box::new(out.clone()))
        .unit("samples");
    p.inc(1);
    p.inc(2);
    p.message("batch 2");
    p.set(5);
    p.finish();
    p.finish();
    let lines = out.lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for (line, done) in lines[..3].iter().zip(["1/5", "3/5", "5/5"]) {
        let rest = line
            .strip_prefix(&format!("eval math500: {done} samples, "))
            .unwrap_or_else(|| panic!("{line}"));
        let (rest, message) = match rest.split_once(" | ") {
            Some((r, m)) => (r, Some(m)),
            None => (rest, None),
        };
        let (rate, eta) = rest
            .split_once(", ETA ")
            .unwrap_or_else(|| panic!("{line}"));
        assert!(is_rate(rate, "samples"), "{line}");
        assert!(is_eta(eta), "{line}");
        assert_eq!(message, (done == "5/5").then_some("batch 2"), "{line}");
    }
    let last = &lines[3];
    let rest = last
        .strip_prefix("eval math500: 5/5 samples in ")
        .unwrap_or_else(|| panic!("{last}"));
    let (took, rest) = rest.split_once(", ").unwrap();
    assert!(is_eta(took) && took != "?", "{last}");
    assert!(rest.ends_with(" | batch 2"), "{last}");
    assert!(
        is_rate(rest.trim_end_matches(" | batch 2"), "samples"),
        "{last}"
    );
}

#[test]
fn a_long_interval_prints_only_the_final_line() {
    let out = Buffer::default();
    let p = Progress::to_writer(
        "train",
        100,
        Duration::from_secs(3600),
        Box::new(out.clone()),
    )
    .unit("steps");
    for _ in 0..100 {
        p.inc(1);
    }
    p.finish();
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("train: 100/100 steps in "),
        "{lines:?}"
    );
}

#[test]
fn resumed_work_counts_as_done_and_an_unknown_total_has_no_eta() {
    let out = Buffer::default();
    let p = Progress::to_writer("eval amc23", 40, Duration::ZERO, Box::new(out.clone()))
        .unit("samples")
        .resumed(30);
    p.inc(2);
    assert_eq!(p.done(), 32);
    let unknown = Progress::to_writer("score", 0, Duration::ZERO, Box::new(out.clone()));
    unknown.inc(7);
    let lines = out.lines();
    assert!(
        lines[0].starts_with("eval amc23: 32/40 samples, "),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("score: 7 items, "), "{lines:?}");
    assert!(!lines[1].contains("ETA"), "{lines:?}");
}

#[test]
fn durations_read_as_clock_units() {
    use oneshot_run::progress::duration;
    let d = |s| duration(Duration::from_secs(s));
    assert_eq!(
        [d(0), d(45), d(165), d(3_720), d(273_600)],
        ["0s", "45s", "2m45s", "1h02m", "3d04h"]
    );
}
