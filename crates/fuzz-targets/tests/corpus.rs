//! Replays the seed corpora and the regression inputs of every fuzz target on stable, with no
//! new fuzzing: each file of `fuzz/corpus/<target>/` goes through the target's body once.

#![allow(clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

#[test]
fn every_target_has_a_corpus_and_a_cargo_fuzz_binary() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    for (name, _) in encoder_fuzz_targets::TARGETS {
        let files = std::fs::read_dir(corpus_dir(name))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{name}: {e}"))
            .count();
        assert!(files > 0, "fuzz/corpus/{name} is empty");
        let binary = fuzz.join("fuzz_targets").join(format!("{name}.rs"));
        assert!(binary.exists(), "{} is missing", binary.display());
    }
}

#[test]
fn corpora_replay_without_failures() {
    let mut replayed = 0;
    for (name, body) in encoder_fuzz_targets::TARGETS {
        let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir(name))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{name}: {e}"))
            .map(|entry| entry.expect("corpus entry").path())
            .collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", file.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus files");
}
