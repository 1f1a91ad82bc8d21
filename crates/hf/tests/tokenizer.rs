//! `Tokenizer` over tokenizer.json files built in-test with the `tokenizers` crate.

use oneshot_hf::Tokenizer;
use std::collections::HashMap;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::whitespace::Whitespace;
use tokenizers::{AddedToken, TokenizerBuilder};

fn word_level_file(dir: &std::path::Path) -> std::path::PathBuf {
    let vocab: HashMap<String, u32> = [("[UNK]", 0), ("hello", 1), ("world", 2), ("!", 3)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let model = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = tokenizers::Tokenizer::new(model);
    tok.with_pre_tokenizer(Some(Whitespace {}));
    tok.add_special_tokens(vec![AddedToken::from("<|im_end|>", true)])
        .unwrap();
    let path = dir.join("tokenizer.json");
    tok.save(&path, false).unwrap();
    path
}

#[test]
fn word_level_round_trip_through_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    word_level_file(dir.path());
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.vocab_size(), 5, "4 words + 1 added special token");
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(4));
    assert_eq!(tok.token_to_id("missing"), None);

    let ids = tok.encode("hello world !<|im_end|>", false).unwrap();
    assert_eq!(ids, vec![1, 2, 3, 4]);
    assert_eq!(tok.encode("hello planet", false).unwrap(), vec![1, 0]);
    assert_eq!(tok.decode(&ids, true).unwrap(), "hello world !");
    assert_eq!(tok.decode(&ids, false).unwrap(), "hello world ! <|im_end|>");

    let texts: Vec<String> = ["hello", "world hello", "", "! !"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let batch = tok.encode_batch(&texts, false).unwrap();
    let single: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| tok.encode(t, false).unwrap())
        .collect();
    assert_eq!(batch, single);
    assert_eq!(batch[1], vec![2, 1]);
    assert_eq!(tok.decode_batch(&batch, true).unwrap()[1], "world hello");
}

#[test]
fn byte_level_bpe_decodes_back_to_the_exact_text() {
    // The Qwen/Llama family uses byte-level BPE: any UTF-8 text must survive encode -> decode.
    let dir = tempfile::tempdir().unwrap();
    let corpus_path = dir.path().join("corpus.txt");
    std::fs::write(
        &corpus_path,
        "the answer is 42.\nthe boxed answer is \\boxed{7}\nsolve x^2 = 4\n".repeat(20),
    )
    .unwrap();
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(300)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .build();
    let mut tok = TokenizerBuilder::<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        tokenizers::PostProcessorWrapper,
        ByteLevel,
    >::new()
    .with_model(BPE::default())
    .with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)))
    .with_decoder(Some(ByteLevel::default()))
    .build()
    .unwrap();
    tok.train_from_files(
        &mut trainer,
        vec![corpus_path.to_string_lossy().into_owned()],
    )
    .unwrap();
    let path = dir.path().join("tokenizer.json");
    tok.save(&path, true).unwrap();

    let loaded = Tokenizer::from_file(&path).unwrap();
    for text in [
        "the answer is \\boxed{42}",
        "émoji 🎉 and 中文 stay intact",
        "  leading spaces\n\ttabs",
    ] {
        let ids = loaded.encode(text, false).unwrap();
        assert_eq!(loaded.decode(&ids, false).unwrap(), text);
    }
    // Merges learned from the corpus make frequent words cheaper than their bytes.
    assert!(loaded.encode("the answer", false).unwrap().len() < "the answer".len());
    let eot = loaded.token_to_id("<|endoftext|>").unwrap();
    let ids = loaded.encode("x<|endoftext|>", false).unwrap();
    assert_eq!(*ids.last().unwrap(), eot);
    assert_eq!(loaded.decode(&ids, true).unwrap(), "x");
}

#[test]
fn padding_and_truncation_in_the_file_are_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = word_level_file(dir.path());
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["truncation"] = serde_json::json!({"direction": "Right", "max_length": 1, "strategy": "LongestFirst", "stride": 0});
    json["padding"] = serde_json::json!({"strategy": {"Fixed": 8}, "direction": "Right", "pad_to_multiple_of": null,
                                         "pad_id": 0, "pad_type_id": 0, "pad_token": "[UNK]"});
    std::fs::write(&path, json.to_string()).unwrap();
    let tok = Tokenizer::from_file(&path).unwrap();
    assert_eq!(tok.encode("hello world", false).unwrap(), vec![1, 2]);
}

#[test]
fn load_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{\"model\": 5}").unwrap();
    let err = Tokenizer::from_file(&path).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
}
