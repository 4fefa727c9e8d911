//! Readings kept on disk until the broker has them (`--mqtt-spool DIR`), so a power cut
//! or a crash loses nothing already measured: each reading is one file, written whole
//! and synced before it is queued, removed once acknowledged; the next run sends what
//! it finds first, oldest first.

use std::path::{Path, PathBuf};

use emotion_core::fs::write_atomically;

use super::config::MqttConfigError;

/// The readings' folder and whether writing there has failed (said once).
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    failed: bool,
}

impl Spool {
    /// Opens (creates) the folder; the readings an earlier run left, oldest first, as
    /// `(id, JSON)`.
    pub fn open(dir: &Path) -> Result<(Spool, Vec<(u64, String)>), MqttConfigError> {
        let fail = |e: std::io::Error| MqttConfigError::Spool {
            path: dir.to_path_buf(),
            detail: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut left = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(fail)? {
            let path = entry.map_err(fail)?.path();
            // `NNNN.json` only: temporary files of an interrupted write start with `.`.
            let id = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(id) = id {
                left.push((id, std::fs::read_to_string(&path).map_err(fail)?));
            }
        }
        left.sort_by_key(|(id, _)| *id);
        let spool = Spool {
            dir: dir.to_path_buf(),
            failed: false,
        };
        Ok((spool, left))
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.json"))
    }

    /// Keeps a reading on disk. A failure is said once; the reading still goes out
    /// from memory.
    pub fn write(&mut self, id: u64, payload: &str) {
        if let Err(e) = write_atomically(&self.path(id), payload.as_bytes()) {
            self.warn(&e);
        }
    }

    /// Forgets a reading the broker has (or that the full buffer dropped).
    pub fn remove(&mut self, id: u64) {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => self.warn(&e),
            _ => {}
        }
    }

    fn warn(&mut self, error: &std::io::Error) {
        if !self.failed {
            self.failed = true;
            eprintln!(
                "MQTT: cannot use the spool {} ({error}); readings are kept in memory only",
                self.dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_run_leaves_the_next_finds_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let (mut spool, left) = Spool::open(&spool_dir).unwrap();
        assert!(left.is_empty());
        for id in [3, 10, 2] {
            spool.write(id, &format!("{{\"id\":{id}}}"));
        }
        spool.remove(3);
        spool.remove(99); // never written: nothing to say
        std::fs::write(spool_dir.join(".00000000000000000011.json.tmp1-0"), "half").unwrap();
        let (_, left) = Spool::open(&spool_dir).unwrap();
        let ids: Vec<u64> = left.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2, 10]);
        assert_eq!(left[1].1, "{\"id\":10}");
    }

    #[test]
    fn a_spool_that_cannot_be_made_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let error = Spool::open(&file.join("spool")).unwrap_err().to_string();
        assert!(error.contains("spool"), "{error}");
    }
}
