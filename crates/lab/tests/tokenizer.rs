//! The lab tokenizer: round trip, digits one per token, special tokens, HF files that the
//! project's own loaders read back.
use oneshot_hf::{ChatTemplate, GenerationConfig, Tokenizer};
use oneshot_lab::tokenizer::{self, IM_END, IM_START, SPECIAL_TOKENS};
use oneshot_lab::{Corpus, CorpusConfig};
use std::collections::HashSet;

fn trained() -> (Tokenizer, Vec<String>) {
    let corpus = Corpus::new(CorpusConfig::default(), 5, HashSet::new()).unwrap();
    let template = tokenizer::chat_template().unwrap();
    let texts: Vec<String> = (0..1500)
        .map(|i| {
            let d = corpus.document(i);
            format!(
                "{}{}{IM_END}",
                tokenizer::render_prompt(&template, &d.user).unwrap(),
                d.solution
            )
        })
        .collect();
    (
        tokenizer::train_tokenizer(texts.iter(), 400).unwrap(),
        texts,
    )
}

#[test]
fn round_trip_digits_and_specials() {
    let (tok, texts) = trained();
    assert!(
        tok.vocab_size() <= 400 && tok.vocab_size() > 300,
        "vocab {}",
        tok.vocab_size()
    );
    for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
        assert_eq!(tok.token_to_id(t), Some(i as u32));
    }
    let mut total_tokens = 0;
    for text in texts.iter().take(300) {
        let ids = tok.encode(text, false).unwrap();
        total_tokens += ids.len();
        assert_eq!(&tok.decode(&ids, false).unwrap(), text, "round trip failed");
        // Special tokens are single ids, never split.
        assert_eq!(
            ids.iter().filter(|&&id| id == 1).count(),
            text.matches(IM_START).count()
        );
        for &id in &ids {
            let piece = tok.decode(&[id], false).unwrap();
            let digits = piece.chars().filter(char::is_ascii_digit).count();
            assert!(
                digits == 0 || piece.trim().len() == 1,
                "token {id} {piece:?} holds more than one digit"
            );
        }
    }
    // BPE must actually compress the templated text (well under one token per byte).
    let bytes: usize = texts.iter().take(300).map(String::len).sum();
    assert!(
        (total_tokens as f64) < 0.5 * bytes as f64,
        "{total_tokens} tokens for {bytes} bytes"
    );
    // Text never seen in training (other bytes) still round-trips, byte-level.
    let odd = "Ünïcödé ∑ 12345 \\frac{3}{4}";
    assert_eq!(
        tok.decode(&tok.encode(odd, false).unwrap(), false).unwrap(),
        odd
    );
}

#[test]
fn training_is_deterministic() {
    let (a, _) = trained();
    let (b, _) = trained();
    assert_eq!(
        a.inner().to_string(false).unwrap(),
        b.inner().to_string(false).unwrap()
    );
}

#[test]
fn hf_files_load_back() {
    let (tok, _) = trained();
    let dir = tempfile::tempdir().unwrap();
    tokenizer::write_tokenizer_files(dir.path(), &tok, 256).unwrap();
    let back = Tokenizer::from_dir(dir.path()).unwrap();
    let text = "Compute 41 mod 4. Let's think step by step.";
    assert_eq!(
        back.encode(text, false).unwrap(),
        tok.encode(text, false).unwrap()
    );
    let template = ChatTemplate::from_dir(dir.path())
        .unwrap()
        .expect("chat template saved");
    let prompt = tokenizer::render_prompt(&template, "What is 2 + 3?").unwrap();
    assert_eq!(
        prompt,
        "<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n"
    );
    let gen = GenerationConfig::from_dir(dir.path()).unwrap();
    assert_eq!(gen.eos_token_ids, vec![2, 0]);
    assert_eq!(gen.pad_token_id, Some(0));
}

#[test]
fn too_small_vocab_is_an_error() {
    let e = tokenizer::train_tokenizer(["abc"].iter(), 100)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("vocab_size 100"), "{e}");
}
