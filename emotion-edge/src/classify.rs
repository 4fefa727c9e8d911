//! `emotion-edge classify`: WAV files (or folders of them) through the bundle's
//! pipeline, one result per file; a bad file is reported and the rest go on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use emotion_core::head_graph::ModelKind;
use emotion_core::pipeline::{Classification, Pipeline, PipelineError, TextInput};

/// Which text goes with each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextChoice {
    /// The fallback chain: the prompt word if given, else the keyword spotter if it is
    /// sure, else none (speech-only head).
    Auto {
        /// The word the speaker was asked to say.
        prompt: Option<String>,
    },
    /// This keyword for every file.
    Keyword(String),
    /// This transcript for every file.
    Transcript(String),
    /// The word in a TESS-style file name (`OAF_back_angry.wav` → `back`).
    FromFileName,
    /// No text: the speech-only head answers.
    None,
}

/// The WAV files named by `paths`: files as given, folders searched recursively, each
/// folder's files in name order; and a warning for each folder passed over (one that
/// cannot be read, or a link back into a folder already searched: a loop would
/// otherwise recurse until the stack overflows).
pub fn wav_files(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = files.len();
            // The folder named on the command line must be readable; below it, one
            // unreadable folder is a warning, not the end of the run.
            std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut seen = HashSet::new();
            collect_wavs(path, &mut files, &mut seen, &mut warnings);
            if files.len() == before {
                return Err(format!("{} holds no .wav files", path.display()));
            }
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(format!("{} does not exist", path.display()));
        }
    }
    Ok((files, warnings))
}

fn collect_wavs(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    seen: &mut HashSet<PathBuf>,
    warnings: &mut Vec<String>,
) {
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    if !seen.insert(real.clone()) {
        warnings.push(format!(
            "{}: skipped, a link back to {} (already searched)",
            dir.display(),
            real.display()
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            warnings.push(format!("{}: skipped, cannot be read ({e})", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_wavs(&path, files, seen, warnings);
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
        {
            files.push(path);
        }
    }
}

/// The word of a TESS-style name `SPEAKER_WORD_EMOTION.wav`: everything between the
/// first and the last underscore.
pub fn word_from_file_name(path: &Path) -> Option<String> {
    let stem = path.file_stem()?.to_str()?;
    let (_, rest) = stem.split_once('_')?;
    let (word, _) = rest.rsplit_once('_')?;
    (!word.is_empty()).then(|| word.to_lowercase())
}

/// Classifies one file. Every error names the file, once.
pub fn classify_file(
    pipeline: &Pipeline,
    path: &Path,
    text: &TextChoice,
    model: Option<ModelKind>,
) -> anyhow::Result<Classification> {
    let name = path.display().to_string();
    let word;
    let input = match text {
        TextChoice::Auto { prompt } => TextInput::Auto {
            prompt: prompt.as_deref(),
        },
        TextChoice::Keyword(k) => TextInput::Keyword(k),
        TextChoice::Transcript(t) => TextInput::Transcript(t),
        TextChoice::None => TextInput::None,
        TextChoice::FromFileName => {
            word = word_from_file_name(path).ok_or_else(|| {
                anyhow::anyhow!(
                    "{name}: no word in the file name (expected SPEAKER_WORD_EMOTION.wav, as TESS names its files)"
                )
            })?;
            TextInput::Keyword(&word)
        }
    };
    pipeline
        .classify_file(path, input, model)
        .map_err(|error| match error {
            // The front-end's errors start with the name they were given.
            PipelineError::Audio(_) => anyhow::Error::new(error),
            other => anyhow::Error::new(other).context(name),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_come_from_tess_style_names() {
        let word = |p: &str| word_from_file_name(Path::new(p));
        assert_eq!(word("a/OAF_back_angry.wav").as_deref(), Some("back"));
        assert_eq!(word("YAF_pain_ps.wav").as_deref(), Some("pain"));
        assert_eq!(word("X_two_words_sad.wav").as_deref(), Some("two_words"));
        assert_eq!(word("noword.wav"), None);
        assert_eq!(word("A__sad.wav"), None);
    }

    #[test]
    fn folders_are_searched_in_name_order_and_missing_paths_named() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        for p in [
            dir.path().join("z.WAV"),
            sub.join("a.wav"),
            sub.join("notes.txt"),
        ] {
            std::fs::write(p, b"").unwrap();
        }
        let (found, warnings) = wav_files(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(found, [sub.join("a.wav"), dir.path().join("z.WAV")]);
        assert!(warnings.is_empty(), "{warnings:?}");
        let missing = dir.path().join("nope.wav");
        assert!(wav_files(&[missing]).unwrap_err().contains("nope.wav"));
        let empty = tempfile::tempdir().unwrap();
        assert!(
            wav_files(&[empty.path().to_path_buf()])
                .unwrap_err()
                .contains("no .wav")
        );
    }

    #[test]
    fn a_link_loop_and_an_unreadable_folder_are_passed_over_with_a_warning() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("one.wav"), b"").unwrap();
        // a/loop -> .. (the top folder): a walk that follows it never ends.
        std::os::unix::fs::symlink(dir.path(), sub.join("loop")).unwrap();
        let locked = dir.path().join("b-locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::write(locked.join("hidden.wav"), b"").unwrap();
        std::fs::write(dir.path().join("two.wav"), b"").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let readable_anyway = std::fs::read_dir(&locked).is_ok(); // root reads it all
        let (found, warnings) = wav_files(&[dir.path().to_path_buf()]).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(
            found.contains(&sub.join("one.wav")) && found.contains(&dir.path().join("two.wav"))
        );
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("loop") && w.contains("already searched")),
            "{warnings:?}"
        );
        if !readable_anyway {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("b-locked") && w.contains("cannot be read")),
                "{warnings:?}"
            );
            assert_eq!(found.len(), 2, "{found:?}");
        }
    }
}
