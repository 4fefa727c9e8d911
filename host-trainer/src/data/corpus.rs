//! The embedded default corpus: the synthetic TESS-like speech committed under
//! `data/synthetic-tess` (made by `scripts/make-synthetic-tess.sh`), used by the demo
//! and the tests so that neither needs espeak-ng or the real TESS.

use std::path::PathBuf;

/// Environment variable that points the demo at another corpus folder.
pub const CORPUS_ENV: &str = "EMOTION_CORPUS";

/// The committed corpus, as found from the source tree this binary was built from.
pub fn embedded_corpus_dir() -> PathBuf {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/synthetic-tess"
    ));
    dir.canonicalize().unwrap_or(dir)
}

/// The corpus to use when none is given: `$EMOTION_CORPUS`, else the embedded one.
/// Fails with instructions when neither exists (a binary copied away from its source tree).
pub fn default_corpus_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os(CORPUS_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(embedded_corpus_dir);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "the default corpus is not at {} (binary moved away from its source tree?): \
             pass a corpus folder, or set {CORPUS_ENV}",
            dir.display()
        ))
    }
}

/// The bert-base-uncased `tokenizer.json` committed with the conformance fixtures: the
/// demo's tiny random BERT reads transcripts with it.
pub fn embedded_tokenizer() -> PathBuf {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/conformance/bert-tiny/tokenizer.json"
    ));
    path.canonicalize().unwrap_or(path)
}
