//! Replays every committed fuzz corpus (`fuzz/corpus/<target>/`) through the entry points the
//! cargo-fuzz targets call (`sidebus::fuzzing`), so CI keeps checking every input the fuzzers
//! reached, with the same invariants, without running a fuzzer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sidebus::fuzzing::TARGETS;

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

/// Runs every file of `target`'s corpus; the corpus must hold inputs the code accepts and
/// inputs it refuses, or it has stopped exercising both paths.
fn replay(target: &str) {
    let (_, run) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"));
    let dir = corpus_root().join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    let (mut accepted, mut refused) = (0, 0);
    for file in &files {
        let input = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match std::panic::catch_unwind(|| run(&input)) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(_) => panic!(
                "{} breaks an invariant (see the panic above)",
                file.display()
            ),
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{target}: {accepted} inputs accepted and {refused} refused"
    );
}

#[test]
fn every_target_has_a_corpus_and_every_corpus_a_target() {
    let targets: BTreeSet<String> = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    let corpora: BTreeSet<String> = std::fs::read_dir(corpus_root())
        .expect("fuzz/corpus")
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.into_string().expect("a UTF-8 name"))
        .collect();
    assert_eq!(targets, corpora);
}

#[test]
fn event_binary() {
    replay("event_binary");
}

#[test]
fn event_structured() {
    replay("event_structured");
}

#[test]
fn event_batch() {
    replay("event_batch");
}

#[test]
fn event_ndjson() {
    replay("event_ndjson");
}

#[test]
fn sse_cursor() {
    replay("sse_cursor");
}

#[test]
fn config_toml() {
    replay("config_toml");
}

#[test]
fn schema_validate() {
    replay("schema_validate");
}

#[test]
fn cesql() {
    replay("cesql");
}
