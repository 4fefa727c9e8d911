//! Any other corpus, listed in a CSV file: one row per recording with the columns `path`
//! (relative to the list's folder, or absolute), `label`, `speaker` and optionally
//! `transcript` (header names in any case, other columns ignored). Ids and speakers are
//! prefixed with the list's file stem (`mycorpus_…`, `mycorpus-…`), so that two lists
//! in one run never collide.

use std::path::Path;

use crate::data::labelled::{Candidate, Labelled, Skip};

/// Reads the list: one candidate per data row, in row order. Errors (a missing file, a
/// missing column) stop the scan; a bad row is a warning about that row.
pub(crate) fn read(list: &Path) -> Result<Vec<Candidate>, String> {
    let folder = list.parent().unwrap_or(Path::new("."));
    let stem = token(list.file_stem().and_then(|s| s.to_str()).unwrap_or("list"));
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(list)
        .map_err(|e| format!("cannot read the list {}: {e}", list.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: cannot read the header: {e}", list.display()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let required = |name: &str| {
        column(name).ok_or_else(|| {
            format!(
                "{}: no '{name}' column; a list needs path,label,speaker (and may have transcript); it has: {}",
                list.display(),
                headers.iter().collect::<Vec<_>>().join(",")
            )
        })
    };
    let (path_col, label_col, speaker_col) =
        (required("path")?, required("label")?, required("speaker")?);
    let transcript_col = column("transcript");

    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("{}: line {line}: {e}", list.display()))?;
        let cell = |col: usize| record.get(col).unwrap_or_default().trim().to_string();
        let relative = cell(path_col);
        let path = folder.join(&relative);
        let labelled = row_labels(
            &stem,
            &relative,
            &cell(label_col),
            &cell(speaker_col),
            transcript_col.map(cell).unwrap_or_default(),
        )
        .map_err(|skip| match skip {
            Skip::BadName(why) => Skip::BadName(format!("{}, line {line}: {why}", list.display())),
            other => other,
        });
        rows.push((path, labelled));
    }
    if rows.is_empty() {
        return Err(format!("{}: the list has no rows", list.display()));
    }
    Ok(rows)
}

fn row_labels(
    stem: &str,
    relative: &str,
    label: &str,
    speaker: &str,
    transcript: String,
) -> Result<Labelled, Skip> {
    if relative.is_empty() {
        return Err(Skip::BadName("empty path".into()));
    }
    let extension = Path::new(relative)
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "wav" => {}
        "mp4" | "flv" | "avi" | "mov" | "mkv" | "webm" => {
            return Err(Skip::VideoOnly("listed as a video file".into()));
        }
        _ => return Err(Skip::BadName(format!("'{relative}' is not a .wav file"))),
    }
    if label.is_empty() || speaker.is_empty() {
        return Err(Skip::BadName("empty label or speaker".into()));
    }
    let without_extension = &relative[..relative.len() - extension.len() - 1];
    let key: String = without_extension
        .trim_start_matches(['/', '.'])
        .chars()
        .map(|c| if c == '/' || c == '\\' { '_' } else { c })
        .collect();
    Ok(Labelled {
        id: format!("{stem}_{key}"),
        speaker: format!("{stem}-{}", token(speaker)),
        label: label.to_ascii_lowercase(),
        text: transcript,
        intensity: String::new(),
    })
}

/// `text` with every character but letters, digits, `-`, `_` and `.` replaced by `_`:
/// speakers and corpus names end up in split names, which are folder names.
fn token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_labels_and_bad_rows_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("mine.csv");
        std::fs::write(
            &list,
            "Path,Speaker,Label,Transcript,notes\n\
             s1/a.wav,s1,Angry,hello there,x\n\
             s2/a.WAV,s2,calm,,\n\
             s2/b.mp4,s2,sad,,\n\
             s2/c.mp3,s2,sad,,\n\
             s3/d.wav,,sad,,\n\
             s3/e.wav,Anna Maria,sad,,\n",
        )
        .unwrap();
        let rows = read(&list).unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[5].1.as_ref().unwrap().speaker, "mine-Anna_Maria");
        let (path, first) = &rows[0];
        assert_eq!(path, &dir.path().join("s1/a.wav"));
        let first = first.as_ref().unwrap();
        assert_eq!(first.id, "mine_s1_a");
        assert_eq!(first.speaker, "mine-s1");
        assert_eq!(first.label, "angry");
        assert_eq!(first.text, "hello there");
        assert_eq!(rows[1].1.as_ref().unwrap().id, "mine_s2_a");
        assert!(matches!(rows[2].1, Err(Skip::VideoOnly(_))));
        assert!(matches!(&rows[3].1, Err(Skip::BadName(why)) if why.contains("line 5")));
        assert!(matches!(&rows[4].1, Err(Skip::BadName(why)) if why.contains("line 6")));
    }

    #[test]
    fn a_list_without_the_columns_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("l.csv");
        std::fs::write(&list, "file,emotion\na.wav,sad\n").unwrap();
        let err = read(&list).unwrap_err();
        assert!(err.contains("no 'path' column"), "{err}");
        std::fs::write(&list, "path,label,speaker\n").unwrap();
        assert!(read(&list).unwrap_err().contains("no rows"));
    }
}
