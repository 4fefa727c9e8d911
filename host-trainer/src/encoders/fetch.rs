//! `host-trainer fetch`: the encoders' checkpoints exactly as the Hugging Face Hub serves
//! them, into a local folder, one sub-folder per model (`CACHE/owner--name/`), laid out as
//! `encoders import` and `demo --encoders` read it.
//!
//! - **Which files.** A model's own files (`config.json` and `preprocessor_config.json` or
//!   `tokenizer.json`) and one weights file: `model.safetensors` when the revision has it,
//!   else `pytorch_model.bin` (the checkpoint loader reads both). `facebook/hubert-base-ls960`
//!   has only `pytorch_model.bin` on `main`; its `model.safetensors` is on `refs/pr/2`.
//! - **How.** One call to the Hub's API, `GET {endpoint}/api/models/{repo}/revision/{rev}?blobs=true`,
//!   lists the revision's files with their sizes and, for LFS files, their SHA-256. The files
//!   come from `{endpoint}/{repo}/resolve/{commit}/{file}`, pinned to the commit the API
//!   named so that every file comes from one commit. Each goes to `FILE.part`, is resumed
//!   with an HTTP `Range` request after a cut (within a run, up to
//!   [`FetchOptions::attempts`] times, and in a later run), and is renamed into place only
//!   once its size and, where the Hub gives one, its SHA-256 match. `HF_TOKEN` (read by the
//!   command line) is sent as a bearer token, never to another host after a redirect.
//! - **Record.** `fetch.json` beside the files records the repository, revision, commit and
//!   each file's size and SHA-256 ([`FetchRecord`]); a later run re-checks the files
//!   against it without the network, and `--from` checks a copy against it.
//! - **Offline.** `--from DIR` takes the files from a folder copied by hand (a `fetch`
//!   folder from another machine, or the Hugging Face cache's
//!   `models--owner--name/snapshots/COMMIT/`) through the same checks: sizes and SHA-256
//!   against the copy's `fetch.json` where there is one, and in any case the weights file
//!   must be complete (a safetensors header and length that agree; a readable zip with a
//!   `data.pkl` for `pytorch_model.bin`) and every `.json` must parse. A copy that no
//!   record vouches for is also read whole by [`crate::encoders::EncoderCheckpoint::open`], as
//!   `encoders import` will read it.
//! - When nothing can be downloaded, the error lists the exact files of the revision asked,
//!   their URLs and where to put them.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The weights file preferred when a revision has it.
pub const SAFETENSORS: &str = "model.safetensors";
/// The weights file taken when a revision has no `model.safetensors`.
pub const PYTORCH_BIN: &str = "pytorch_model.bin";
/// The weights files, in order of preference.
pub const WEIGHTS: [&str; 2] = [SAFETENSORS, PYTORCH_BIN];
/// How [`RemoteModel::missing_files`] names absent weights.
pub const EITHER_WEIGHTS: &str = "model.safetensors or pytorch_model.bin";
/// The record `fetch` writes beside the files.
pub const RECORD_FILE: &str = "fetch.json";
/// The Hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The revision fetched when none is given.
pub const DEFAULT_REVISION: &str = "main";

/// A model on the Hub and the files the project needs from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteModel {
    /// Hub organisation.
    pub owner: &'static str,
    /// Repository name.
    pub name: &'static str,
    /// The files needed besides the weights (one of [`WEIGHTS`]), all required.
    pub files: &'static [&'static str],
}

/// The study's speech encoder.
pub const HUBERT_BASE: RemoteModel = RemoteModel {
    owner: "facebook",
    name: "hubert-base-ls960",
    files: &["config.json", "preprocessor_config.json"],
};

/// The study's text encoder.
pub const BERT_BASE: RemoteModel = RemoteModel {
    owner: "google-bert",
    name: "bert-base-uncased",
    files: &["config.json", "tokenizer.json"],
};

/// DistilHuBERT: a 2-layer HuBERT student, the speech encoder a Pi Zero 2 W can run.
pub const DISTILHUBERT: RemoteModel = RemoteModel {
    owner: "ntu-spml",
    name: "distilhubert",
    files: &["config.json", "preprocessor_config.json"],
};

/// WavLM-base-plus: the strongest frozen base-size speech encoder for emotion in SUPERB.
pub const WAVLM_BASE_PLUS: RemoteModel = RemoteModel {
    owner: "microsoft",
    name: "wavlm-base-plus",
    files: &["config.json", "preprocessor_config.json"],
};

/// all-MiniLM-L6-v2: a 6-layer, 384-wide BERT, a light text encoder.
pub const MINILM_L6: RemoteModel = RemoteModel {
    owner: "sentence-transformers",
    name: "all-MiniLM-L6-v2",
    files: &["config.json", "tokenizer.json"],
};

/// The models `fetch` knows. With none named it fetches the study's two
/// ([`HUBERT_BASE`], [`BERT_BASE`]).
pub const KNOWN_MODELS: [RemoteModel; 5] = [
    HUBERT_BASE,
    BERT_BASE,
    DISTILHUBERT,
    WAVLM_BASE_PLUS,
    MINILM_L6,
];

impl RemoteModel {
    /// `owner/name`.
    pub fn repo_id(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }

    /// The known model named `owner/name` (or just `name`).
    pub fn find(id: &str) -> Option<Self> {
        KNOWN_MODELS
            .into_iter()
            .find(|m| m.repo_id() == id || m.name == id)
    }

    /// Where this model lives under `cache`: `cache/owner--name`.
    pub fn local_dir(&self, cache: &Path) -> PathBuf {
        cache.join(format!("{}--{}", self.owner, self.name))
    }

    /// The files not yet in `dir` (missing or empty); absent weights are named
    /// [`EITHER_WEIGHTS`], since either weights file will do.
    pub fn missing_files(&self, dir: &Path) -> Vec<&'static str> {
        let mut missing: Vec<&'static str> = self
            .files
            .iter()
            .copied()
            .filter(|f| !non_empty_file(&dir.join(f)))
            .collect();
        if weights_in(dir).is_none() {
            missing.push(EITHER_WEIGHTS);
        }
        missing
    }
}

/// The weights file in `dir` (not empty), `model.safetensors` first.
pub fn weights_in(dir: &Path) -> Option<&'static str> {
    WEIGHTS.into_iter().find(|w| non_empty_file(&dir.join(w)))
}

fn non_empty_file(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() > 0)
}

/// What vouches for a file in a [`FetchRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Checked {
    /// Its SHA-256 equals the one the Hub published (LFS files).
    Sha256,
    /// The Hub published no SHA-256 (a small file kept in git): its size equals the Hub's.
    Size,
    /// Copied by hand without a record: only its structure was checked.
    Structure,
}

impl Checked {
    /// How the file was checked, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Checked::Sha256 => "sha256 checked",
            Checked::Size => "size checked",
            Checked::Structure => "copied by hand, structure checked",
        }
    }
}

/// One file of a [`FetchRecord`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name inside the model folder.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the file as it is here (lower-case hex).
    pub sha256: String,
    /// What it was checked against when it arrived.
    pub checked: Checked,
}

/// `fetch.json`: what was fetched into a model folder, so later runs and `--from` can
/// check the files again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRecord {
    /// `owner/name`.
    pub repo: String,
    /// The revision asked for (`main`, `refs/pr/2`, …); none when copied by hand without
    /// a record and without `--revision`.
    pub revision: Option<String>,
    /// The commit the files come from, when known.
    pub commit: Option<String>,
    /// The Hub endpoint, or the folder the files were copied from.
    pub source: String,
    /// The files, the weights last.
    pub files: Vec<FileRecord>,
}

impl FetchRecord {
    /// Reads `dir/fetch.json`; `None` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Self>, FetchError> {
        let path = dir.join(RECORD_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(FetchError::Io { path, source }),
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| FetchError::Record { path, source })
    }

    /// Writes `dir/fetch.json` (through a temporary file, renamed into place).
    pub fn write(&self, dir: &Path) -> Result<(), FetchError> {
        let path = dir.join(RECORD_FILE);
        let part = part_path(&path);
        let text = serde_json::to_string_pretty(self).expect("a record always serialises");
        fs::write(&part, text + "\n").map_err(|source| FetchError::Io {
            path: part.clone(),
            source,
        })?;
        fs::rename(&part, &path).map_err(|source| FetchError::Io { path, source })
    }

    /// The record of file `name`.
    pub fn file(&self, name: &str) -> Option<&FileRecord> {
        self.files.iter().find(|f| f.name == name)
    }

    /// The weights file recorded.
    pub fn weights(&self) -> Option<&'static str> {
        WEIGHTS.into_iter().find(|w| self.file(w).is_some())
    }
}

/// Why a fetch failed. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The Hub could not be reached (or kept failing): the message lists the files of the
    /// revision, their URLs and where to put them by hand.
    #[error("{0}")]
    Unavailable(String),
    /// The Hub refused the repository (missing, private or gated).
    #[error(
        "{url} answered HTTP {status}: {repo} does not exist, or it is private or gated; {hint}"
    )]
    Denied {
        /// `owner/name`.
        repo: String,
        /// The URL refused.
        url: String,
        /// 401 or 403.
        status: u16,
        /// What to do about the token.
        hint: &'static str,
    },
    /// No such revision.
    #[error(
        "{url} answered HTTP 404: {repo} has no revision `{revision}`; give an existing \
         branch, tag, commit or pull-request ref (e.g. `--revision refs/pr/2`)"
    )]
    RevisionNotFound {
        /// `owner/name`.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The API URL.
        url: String,
    },
    /// The revision lacks a file the project needs.
    #[error(
        "{repo} at revision `{revision}` has no {file} (it has: {available}); try another \
         --revision"
    )]
    MissingOnHub {
        /// `owner/name`.
        repo: String,
        /// The revision.
        revision: String,
        /// The file, or [`EITHER_WEIGHTS`].
        file: String,
        /// The revision's files, comma-separated.
        available: String,
    },
    /// The Hub answered something unexpected.
    #[error("{url} answered {what}; run again later, or fetch by hand with --from (see --help)")]
    BadResponse {
        /// The URL.
        url: String,
        /// What came back.
        what: String,
    },
    /// A download stopped; the part is kept.
    #[error(
        "the download of {} stopped at {have} of {total} bytes ({cause}); the part is kept \
         in {}: run the same command again to resume it",
        file.display(), part.display(),
        total = total.map_or_else(|| "?".to_string(), |t| t.to_string())
    )]
    Interrupted {
        /// The file being downloaded.
        file: PathBuf,
        /// The partial file kept.
        part: PathBuf,
        /// Bytes received.
        have: u64,
        /// Bytes expected, when known.
        total: Option<u64>,
        /// The last failure.
        cause: String,
    },
    /// A downloaded file differs from what the Hub listed; it was deleted.
    #[error(
        "{} from {url}: its {what} is {actual} but the Hub lists {expected}; the download \
         ({}.part) was deleted: run the command again to download it afresh",
        file.display(), file.display()
    )]
    Mismatch {
        /// The file.
        file: PathBuf,
        /// Where it came from.
        url: String,
        /// `sha256` or `size`.
        what: &'static str,
        /// What the Hub listed.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// A copied file differs from the record beside it.
    #[error(
        "{}: its {what} is {actual} but {} records {expected}; the copy is damaged or \
         was changed: copy it again from the machine that fetched it (it was not taken)",
        file.display(), record.display()
    )]
    CopyMismatch {
        /// The source file.
        file: PathBuf,
        /// The record it was checked against.
        record: PathBuf,
        /// `sha256` or `size`.
        what: &'static str,
        /// What the record says.
        expected: String,
        /// What the file has.
        actual: String,
    },
    /// A file is not a complete file of its kind.
    #[error(
        "{} is not a complete {kind}: {reason}; copy or download it again",
        path.display()
    )]
    Incomplete {
        /// The file.
        path: PathBuf,
        /// What it should be.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `--from` found no copy of the model.
    #[error(
        "found no copy of {repo} in {}: looked for {looked}; copy the folder `fetch` wrote \
         on the other machine (CACHE/{dir_name}/) into {}",
        from.display(), from.display()
    )]
    CopyNotFound {
        /// `owner/name`.
        repo: String,
        /// The folder given.
        from: PathBuf,
        /// The places looked at.
        looked: String,
        /// `owner--name`.
        dir_name: String,
    },
    /// `--from` found a copy that lacks files.
    #[error("{} lacks {missing} of {repo}; copy them there and run again", from.display())]
    CopyIncomplete {
        /// `owner/name`.
        repo: String,
        /// The copy.
        from: PathBuf,
        /// The missing files.
        missing: String,
    },
    /// `--from` found a copy of another revision or repository.
    #[error(
        "{} holds {found}, not {asked}: copy the right folder, or drop --revision to take \
         what it holds",
        record.display()
    )]
    CopyOtherRevision {
        /// The record read.
        record: PathBuf,
        /// What it holds.
        found: String,
        /// What was asked.
        asked: String,
    },
    /// `fetch.json` does not parse.
    #[error("cannot read {}: {source}; delete it and fetch again", path.display())]
    Record {
        /// The record.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// Where and how to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Hub URL, e.g. [`DEFAULT_ENDPOINT`] (the command line takes `--endpoint`, else
    /// `HF_ENDPOINT`).
    pub endpoint: String,
    /// Bearer token for private or gated repositories (the command line reads `HF_TOKEN`).
    pub token: Option<String>,
    /// Branch, tag, commit or `refs/pr/N`; `None`: what the folder already holds, else
    /// [`DEFAULT_REVISION`].
    pub revision: Option<String>,
    /// Take the files from this folder instead of the network.
    pub from: Option<PathBuf>,
    /// Download again even when the files are there.
    pub force: bool,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Tries per request before giving up (a cut download resumes on each).
    pub attempts: u32,
    /// Pause before the n-th retry: n times this.
    pub retry_delay: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            token: None,
            revision: None,
            from: None,
            force: false,
            progress: false,
            attempts: 3,
            retry_delay: Duration::from_secs(1),
        }
    }
}

/// What [`fetch`] left in a model folder.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The model folder.
    pub dir: PathBuf,
    /// Its `fetch.json`.
    pub record: FetchRecord,
    /// The files downloaded or copied by this call (none when all were there already).
    pub transferred: Vec<String>,
}

/// Makes sure every file of `model` is in `model.local_dir(cache)` and checked: from
/// `options.from` when given, else from the Hub (files already there and matching are
/// kept). Returns what the folder holds.
pub fn fetch(
    model: &RemoteModel,
    cache: &Path,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let dir = model.local_dir(cache);
    if let Some(from) = &options.from {
        return fetch_from_folder(model, from, &dir, options);
    }
    if !options.force
        && let Some(fetched) = up_to_date(model, &dir, options)?
    {
        return Ok(fetched);
    }
    fetch_from_hub(model, cache, &dir, options)
}

/// The folder as it is, when its record covers the model and the revision asked and every
/// recorded file still matches.
fn up_to_date(
    model: &RemoteModel,
    dir: &Path,
    options: &FetchOptions,
) -> Result<Option<Fetched>, FetchError> {
    let record = match FetchRecord::read(dir) {
        Ok(Some(record)) => record,
        Ok(None) => return Ok(None),
        Err(e) => {
            eprintln!("warning: {e}; fetching again");
            return Ok(None);
        }
    };
    let revision_ok = options
        .revision
        .as_deref()
        .is_none_or(|asked| record.revision.as_deref() == Some(asked));
    let complete =
        model.files.iter().all(|f| record.file(f).is_some()) && record.weights().is_some();
    if record.repo != model.repo_id() || !revision_ok || !complete {
        return Ok(None);
    }
    for file in &record.files {
        let path = dir.join(&file.name);
        match hash_file(&path) {
            Ok((size, sha256)) if size == file.size && sha256 == file.sha256 => {}
            Ok(_) => {
                eprintln!(
                    "{} changed since it was fetched; fetching again",
                    path.display()
                );
                return Ok(None);
            }
            Err(_) => {
                eprintln!("{} is gone; fetching again", path.display());
                return Ok(None);
            }
        }
    }
    Ok(Some(Fetched {
        dir: dir.to_path_buf(),
        record,
        transferred: Vec::new(),
    }))
}

// ---------------------------------------------------------------------------------------
// The Hub

/// The API's answer for one revision (`?blobs=true`).
#[derive(Debug, Deserialize)]
struct RevisionInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Deserialize)]
struct Sibling {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<LfsInfo>,
}

#[derive(Debug, Deserialize)]
struct LfsInfo {
    sha256: Option<String>,
    size: Option<u64>,
}

/// One file to download and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    name: &'static str,
    size: Option<u64>,
    sha256: Option<String>,
}

/// The files to download from a revision: the model's files and the preferred weights.
fn plan(
    model: &RemoteModel,
    revision: &str,
    info: &RevisionInfo,
    url: &str,
) -> Result<Vec<Planned>, FetchError> {
    let find = |name: &str| info.siblings.iter().find(|s| s.rfilename == name);
    let missing = |file: &str| FetchError::MissingOnHub {
        repo: model.repo_id(),
        revision: revision.to_string(),
        file: file.to_string(),
        available: info
            .siblings
            .iter()
            .map(|s| s.rfilename.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let planned = |name: &'static str, sibling: &Sibling| -> Result<Planned, FetchError> {
        let lfs = sibling.lfs.as_ref();
        let sha256 = match lfs.and_then(|l| l.sha256.as_deref()) {
            Some(sha) if is_hex(sha, 64) => Some(sha.to_ascii_lowercase()),
            Some(sha) => {
                return Err(FetchError::BadResponse {
                    url: url.to_string(),
                    what: format!("`{sha}` as the SHA-256 of {name}"),
                });
            }
            None => None,
        };
        Ok(Planned {
            name,
            size: lfs.and_then(|l| l.size).or(sibling.size),
            sha256,
        })
    };
    let mut files = Vec::new();
    for &name in model.files {
        let sibling = find(name).ok_or_else(|| missing(name))?;
        files.push(planned(name, sibling)?);
    }
    let (name, sibling) = WEIGHTS
        .into_iter()
        .find_map(|w| find(w).map(|s| (w, s)))
        .ok_or_else(|| missing(EITHER_WEIGHTS))?;
    files.push(planned(name, sibling)?);
    Ok(files)
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Percent-encodes `text` for one URL path segment (everything but `A-Za-z0-9-._~`), as
/// the Hub's clients encode revisions: `refs/pr/2` → `refs%2Fpr%2F2`.
pub fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `{endpoint}/api/models/{repo}/revision/{revision}?blobs=true`.
pub fn api_url(endpoint: &str, model: &RemoteModel, revision: &str) -> String {
    format!(
        "{}/api/models/{}/{}/revision/{}?blobs=true",
        endpoint.trim_end_matches('/'),
        model.owner,
        model.name,
        encode_segment(revision)
    )
}

/// `{endpoint}/{repo}/resolve/{revision}/{file}`.
pub fn resolve_url(endpoint: &str, model: &RemoteModel, revision: &str, file: &str) -> String {
    let file: Vec<String> = file.split('/').map(encode_segment).collect();
    format!(
        "{}/{}/{}/resolve/{}/{}",
        endpoint.trim_end_matches('/'),
        model.owner,
        model.name,
        encode_segment(revision),
        file.join("/")
    )
}

/// The outcome of one try.
enum Failure {
    /// Worth another try (network, 5xx, 429, a cut).
    Transient(String),
    /// Not worth another try.
    Fatal(FetchError),
}

struct Hub {
    agent: ureq::Agent,
    token: Option<String>,
}

impl Hub {
    fn new(options: &FetchOptions) -> Self {
        // A proxy cannot reach this machine's loopback: never send loopback through one.
        let loopback = ["://127.", "://localhost", "://[::1]"]
            .iter()
            .any(|p| options.endpoint.contains(p));
        let proxy = if loopback {
            None
        } else {
            ureq::Proxy::try_from_env()
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(proxy)
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(concat!(
                "emotion-edge-host-trainer/",
                env!("CARGO_PKG_VERSION")
            ))
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            token: options.token.clone().filter(|t| !t.is_empty()),
        }
    }

    fn get(
        &self,
        url: &str,
        range_from: Option<u64>,
    ) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let mut request = self.agent.get(url);
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(from) = range_from {
            request = request.header("Range", format!("bytes={from}-"));
        }
        request.call()
    }

    /// The revision's file list; `Err(Ok(cause))` when the Hub cannot be reached.
    fn revision_info(
        &self,
        model: &RemoteModel,
        revision: &str,
        options: &FetchOptions,
    ) -> Result<RevisionInfo, Result<String, FetchError>> {
        let url = api_url(&options.endpoint, model, revision);
        let mut last = String::new();
        for attempt in 0..options.attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(options.retry_delay * attempt);
            }
            let failure = match self.get(&url, None) {
                Err(e) => Failure::Transient(e.to_string()),
                Ok(mut response) => match response.status().as_u16() {
                    200 => match response.body_mut().read_to_string() {
                        Ok(text) => {
                            return serde_json::from_str(&text).map_err(|e| {
                                Err(FetchError::BadResponse {
                                    url: url.clone(),
                                    what: format!("JSON that does not parse ({e})"),
                                })
                            });
                        }
                        Err(e) => Failure::Transient(e.to_string()),
                    },
                    status @ (401 | 403) => Failure::Fatal(self.denied(model, &url, status)),
                    404 => Failure::Fatal(FetchError::RevisionNotFound {
                        repo: model.repo_id(),
                        revision: revision.to_string(),
                        url: url.clone(),
                    }),
                    status @ (408 | 429 | 500..=599) => {
                        Failure::Transient(format!("HTTP {status} from {url}"))
                    }
                    status => Failure::Fatal(FetchError::BadResponse {
                        url: url.clone(),
                        what: format!("HTTP {status}"),
                    }),
                },
            };
            match failure {
                Failure::Fatal(e) => return Err(Err(e)),
                Failure::Transient(cause) => last = cause,
            }
        }
        Err(Ok(last))
    }

    fn denied(&self, model: &RemoteModel, url: &str, status: u16) -> FetchError {
        FetchError::Denied {
            repo: model.repo_id(),
            url: url.to_string(),
            status,
            hint: if self.token.is_some() {
                "the token in HF_TOKEN was refused: check the name, and that the token may read it (and that its conditions are accepted on its page)"
            } else {
                "check the name, or set HF_TOKEN to a read token (https://huggingface.co/settings/tokens) after accepting its conditions on its page"
            },
        }
    }

    /// Downloads `planned` from `url` into `dir` through `FILE.part`, resuming what a part
    /// already holds, and renames it into place once it matches.
    fn download(
        &self,
        model: &RemoteModel,
        url: &str,
        planned: &Planned,
        dir: &Path,
        options: &FetchOptions,
    ) -> Result<FileRecord, FetchError> {
        let target = dir.join(planned.name);
        let part_file = part_path(&target);
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| FetchError::Io { path, source }
        };
        if options.force && part_file.exists() {
            fs::remove_file(&part_file).map_err(io_error(&part_file))?;
        }
        let mut part = Partial::open(&part_file).map_err(io_error(&part_file))?;
        if planned.size.is_some_and(|size| part.len > size) {
            part.restart().map_err(io_error(&part_file))?;
        }
        let size = planned
            .size
            .map_or_else(|| "size unknown".to_string(), |s| HumanBytes(s).to_string());
        if part.len > 0 {
            eprintln!(
                "{}: {} ({size}) resuming at {} from {url}",
                model.repo_id(),
                planned.name,
                HumanBytes(part.len)
            );
        } else {
            eprintln!("{}: {} ({size}) from {url}", model.repo_id(), planned.name);
        }
        let bar = progress_bar(options.progress, planned.name);
        let mut failures = 0;
        while planned.size != Some(part.len) {
            match self.transfer(model, url, &target, &mut part, planned, &bar) {
                Ok(()) => break,
                Err(Failure::Fatal(e)) => {
                    bar.abandon();
                    return Err(e);
                }
                Err(Failure::Transient(cause)) => {
                    failures += 1;
                    if failures >= options.attempts.max(1) {
                        bar.abandon();
                        return Err(FetchError::Interrupted {
                            file: target,
                            part: part_file,
                            have: part.len,
                            total: planned.size,
                            cause,
                        });
                    }
                    bar.suspend(|| {
                        eprintln!(
                            "{}: {cause}; trying again from byte {} ({failures} of {} tries failed)",
                            planned.name,
                            part.len,
                            options.attempts
                        );
                    });
                    std::thread::sleep(options.retry_delay * failures);
                }
            }
        }
        bar.finish_and_clear();
        let (len, sha256) = part.finish().map_err(io_error(&part_file))?;
        let mismatch = |what, expected: String, actual: String| {
            let _ = fs::remove_file(&part_file);
            FetchError::Mismatch {
                file: target.clone(),
                url: url.to_string(),
                what,
                expected,
                actual,
            }
        };
        if let Some(size) = planned.size
            && len != size
        {
            return Err(mismatch("size", size.to_string(), len.to_string()));
        }
        if let Some(expected) = &planned.sha256
            && *expected != sha256
        {
            return Err(mismatch("sha256", expected.clone(), sha256));
        }
        if let Err(e) = check_content(&part_file, planned.name) {
            let _ = fs::remove_file(&part_file);
            return Err(e);
        }
        fs::rename(&part_file, &target).map_err(io_error(&target))?;
        Ok(FileRecord {
            name: planned.name.to_string(),
            size: len,
            sha256,
            checked: if planned.sha256.is_some() {
                Checked::Sha256
            } else {
                Checked::Size
            },
        })
    }

    /// One GET of what `part` still lacks, appended to it.
    fn transfer(
        &self,
        model: &RemoteModel,
        url: &str,
        target: &Path,
        part: &mut Partial,
        planned: &Planned,
        bar: &ProgressBar,
    ) -> Result<(), Failure> {
        let from = part.len;
        let response = self
            .get(url, (from > 0).then_some(from))
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let fatal_io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Failure::Fatal(FetchError::Io { path, source })
        };
        match response.status().as_u16() {
            206 => {
                let start = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(from) {
                    part.restart().map_err(fatal_io(&part.path))?;
                    return Err(Failure::Transient(format!(
                        "asked to resume at byte {from}, the server answered from {start:?}"
                    )));
                }
            }
            200 => {
                if from > 0 {
                    // The server ignored the range: take the whole file again.
                    part.restart().map_err(fatal_io(&part.path))?;
                }
            }
            416 => {
                part.restart().map_err(fatal_io(&part.path))?;
                return Err(Failure::Transient(format!(
                    "the server would not resume at byte {from} (HTTP 416)"
                )));
            }
            status @ (401 | 403) => return Err(Failure::Fatal(self.denied(model, url, status))),
            status @ (408 | 429 | 500..=599) => {
                return Err(Failure::Transient(format!("HTTP {status}")));
            }
            status => {
                return Err(Failure::Fatal(FetchError::BadResponse {
                    url: url.to_string(),
                    what: format!("HTTP {status} for a file the API lists"),
                }));
            }
        }
        if let Some(size) = planned.size {
            bar.set_length(size);
        } else if let Some(len) = response.body().content_length() {
            bar.set_length(part.len + len);
        }
        bar.set_position(part.len);
        let mut reader = response.into_body().into_reader();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Transient(e.to_string())),
            };
            if let Some(size) = planned.size
                && part.len + n as u64 > size
            {
                let _ = fs::remove_file(&part.path);
                return Err(Failure::Fatal(FetchError::Mismatch {
                    file: target.to_path_buf(),
                    url: url.to_string(),
                    what: "size",
                    expected: size.to_string(),
                    actual: format!("more than {size}"),
                }));
            }
            part.write(&buf[..n]).map_err(fatal_io(&part.path))?;
            bar.set_position(part.len);
        }
        match planned.size {
            Some(size) if part.len < size => Err(Failure::Transient(format!(
                "the connection closed at byte {} of {size}",
                part.len
            ))),
            _ => Ok(()),
        }
    }
}

fn progress_bar(visible: bool, name: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name.to_string());
    bar
}

/// A `.part` file being written, hashed as it grows.
struct Partial {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
}

impl Partial {
    /// Opens (or creates) `path`, hashing what it already holds.
    fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut reader = File::open(path)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            len += n as u64;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            hasher,
            len,
        })
    }

    fn restart(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.hasher = Sha256::new();
        self.len = 0;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Flushes to disk; returns the length and the SHA-256.
    fn finish(self) -> io::Result<(u64, String)> {
        self.file.sync_all()?;
        Ok((self.len, hex(&self.hasher.finalize())))
    }
}

fn part_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(".part");
    PathBuf::from(name)
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Size and SHA-256 of a file, read in blocks.
pub fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hex(&hasher.finalize())))
}

fn fetch_from_hub(
    model: &RemoteModel,
    cache: &Path,
    dir: &Path,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let revision = options.revision.as_deref().unwrap_or(DEFAULT_REVISION);
    let hub = Hub::new(options);
    let info = hub
        .revision_info(model, revision, options)
        .map_err(|e| match e {
            Ok(cause) => FetchError::Unavailable(by_hand_instructions(
                model, cache, revision, options, &cause,
            )),
            Err(e) => e,
        })?;
    let api = api_url(&options.endpoint, model, revision);
    let planned = plan(model, revision, &info, &api)?;
    fs::create_dir_all(dir).map_err(|source| FetchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // Every file from the one commit the API named (the branch may move meanwhile).
    let commit = info.sha.filter(|s| is_hex(s, 40));
    let pinned = commit.as_deref().unwrap_or(revision);
    let mut files = Vec::new();
    let mut transferred = Vec::new();
    for p in &planned {
        let target = dir.join(p.name);
        if !options.force && target.is_file() {
            match check_existing(&target, p) {
                Ok(record) => {
                    files.push(record);
                    continue;
                }
                Err(why) => eprintln!("{}: {why}; downloading it again", target.display()),
            }
        }
        let url = resolve_url(&options.endpoint, model, pinned, p.name);
        files.push(hub.download(model, &url, p, dir, options)?);
        transferred.push(p.name.to_string());
    }
    // A weights file of another revision would be read instead of (or beside) this one.
    let weights = planned.last().map(|p| p.name);
    for other in WEIGHTS.into_iter().filter(|w| Some(*w) != weights) {
        for path in [dir.join(other), part_path(&dir.join(other))] {
            if path.exists() {
                fs::remove_file(&path).map_err(|source| FetchError::Io {
                    path: path.clone(),
                    source,
                })?;
                eprintln!(
                    "removed {} (not in {} at {revision})",
                    path.display(),
                    model.repo_id()
                );
            }
        }
    }
    let record = FetchRecord {
        repo: model.repo_id(),
        revision: Some(revision.to_string()),
        commit,
        source: options.endpoint.trim_end_matches('/').to_string(),
        files,
    };
    record.write(dir)?;
    Ok(Fetched {
        dir: dir.to_path_buf(),
        record,
        transferred,
    })
}

/// A file already in place, checked against what the Hub lists.
fn check_existing(path: &Path, planned: &Planned) -> Result<FileRecord, String> {
    let on_disk = fs::metadata(path).map_err(|e| e.to_string())?.len();
    if let Some(size) = planned.size
        && size != on_disk
    {
        return Err(format!("{on_disk} bytes, the Hub lists {size}"));
    }
    let (size, sha256) = hash_file(path).map_err(|e| e.to_string())?;
    if let Some(expected) = &planned.sha256
        && *expected != sha256
    {
        return Err(format!("sha256 {sha256}, the Hub lists {expected}"));
    }
    check_content(path, planned.name).map_err(|e| e.to_string())?;
    Ok(FileRecord {
        name: planned.name.to_string(),
        size,
        sha256,
        checked: if planned.sha256.is_some() {
            Checked::Sha256
        } else {
            Checked::Size
        },
    })
}

/// The message for a machine that cannot download: what failed, the exact files of the
/// revision with their URLs, and where to put them.
fn by_hand_instructions(
    model: &RemoteModel,
    cache: &Path,
    revision: &str,
    options: &FetchOptions,
    cause: &str,
) -> String {
    let repo = model.repo_id();
    let dir = model.local_dir(cache);
    let endpoint = options.endpoint.trim_end_matches('/');
    let url = |file: &str| resolve_url(endpoint, model, revision, file);
    let mut text = format!(
        "cannot download {repo} (revision {revision}) from {endpoint}: {cause}\n\
         On a machine with network, download these files of {repo} at {revision}:\n"
    );
    for file in model.files {
        let _ = writeln!(text, "  {}", url(file));
    }
    let _ = writeln!(
        text,
        "  {}\n    (or, if the revision has no {SAFETENSORS}: {})",
        url(SAFETENSORS),
        url(PYTORCH_BIN)
    );
    let _ = writeln!(text, "and put them by hand on this machine, as:");
    for file in model.files {
        let _ = writeln!(text, "  {}", dir.join(file).display());
    }
    let _ = writeln!(
        text,
        "  {}  (or {})",
        dir.join(SAFETENSORS).display(),
        dir.join(PYTORCH_BIN).display()
    );
    let revision_arg = if options.revision.is_some() {
        format!(" --revision {revision}")
    } else {
        String::new()
    };
    let _ = write!(
        text,
        "then check them with\n  host-trainer fetch {repo}{revision_arg} --cache {c} --from {c}\n\
         (or run `host-trainer fetch` on the networked machine and copy its folder here: \
         `--from COPY` checks each file against the fetch.json it wrote)",
        c = cache.display()
    );
    text
}

// ---------------------------------------------------------------------------------------
// Copies made by hand

/// A copy of a model found under a `--from` folder.
struct FoundCopy {
    dir: PathBuf,
    record: Option<FetchRecord>,
    revision: Option<String>,
    commit: Option<String>,
}

/// Finds the copy of `model` under `from`: `from/owner--name/` (a `fetch` folder), `from`
/// itself when its `fetch.json` names the model, or the Hugging Face cache's
/// `from/[hub/]models--owner--name/snapshots/COMMIT/`.
fn locate_copy(
    model: &RemoteModel,
    from: &Path,
    revision: Option<&str>,
) -> Result<FoundCopy, FetchError> {
    let repo = model.repo_id();
    let ours = model.local_dir(from);
    let mut looked = vec![ours.display().to_string()];
    if ours.is_dir() {
        let record = FetchRecord::read(&ours)?;
        return Ok(FoundCopy {
            dir: ours,
            revision: record.as_ref().and_then(|r| r.revision.clone()),
            commit: record.as_ref().and_then(|r| r.commit.clone()),
            record,
        });
    }
    if let Some(record) = FetchRecord::read(from)?
        && record.repo == repo
    {
        return Ok(FoundCopy {
            dir: from.to_path_buf(),
            revision: record.revision.clone(),
            commit: record.commit.clone(),
            record: Some(record),
        });
    }
    looked.push(from.join(RECORD_FILE).display().to_string());
    let hf_name = format!("models--{}--{}", model.owner, model.name);
    for root in [from.join(&hf_name), from.join("hub").join(&hf_name)] {
        looked.push(root.join("snapshots").display().to_string());
        let snapshots = root.join("snapshots");
        if !snapshots.is_dir() {
            continue;
        }
        let wanted = revision.unwrap_or(DEFAULT_REVISION);
        let commit = if is_hex(wanted, 40) {
            Some(wanted.to_string())
        } else {
            fs::read_to_string(root.join("refs").join(wanted))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let commit = match commit {
            Some(commit) => commit,
            None => {
                // No ref for the revision: take the only snapshot there is, if one.
                let names: Vec<String> = fs::read_dir(&snapshots)
                    .map_err(|source| FetchError::Io {
                        path: snapshots.clone(),
                        source,
                    })?
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                match names.as_slice() {
                    [only] if revision.is_none() => only.clone(),
                    _ => {
                        return Err(FetchError::CopyIncomplete {
                            repo,
                            from: root.join("refs").join(wanted),
                            missing: format!(
                                "the commit of revision `{wanted}` (snapshots there: {})",
                                names.join(", ")
                            ),
                        });
                    }
                }
            }
        };
        return Ok(FoundCopy {
            dir: snapshots.join(&commit),
            record: None,
            revision: revision.map(str::to_string),
            commit: Some(commit),
        });
    }
    Err(FetchError::CopyNotFound {
        repo,
        from: from.to_path_buf(),
        looked: looked.join(", "),
        dir_name: format!("{}--{}", model.owner, model.name),
    })
}

fn fetch_from_folder(
    model: &RemoteModel,
    from: &Path,
    dir: &Path,
    options: &FetchOptions,
) -> Result<Fetched, FetchError> {
    let copy = locate_copy(model, from, options.revision.as_deref())?;
    let record_path = copy.dir.join(RECORD_FILE);
    if let Some(record) = &copy.record {
        check_record_names(model, record, &record_path, options)?;
    }
    let weights = complete_copy_weights(model, &copy)?;
    fs::create_dir_all(dir).map_err(|source| FetchError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let in_place = match (copy.dir.canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    let mut files = Vec::new();
    let mut transferred = Vec::new();
    for name in model.files.iter().copied().chain([weights]) {
        let expected = copy.record.as_ref().and_then(|r| r.file(name));
        let source = copy.dir.join(name);
        files.push(take_copy(
            &source,
            dir,
            name,
            expected,
            &record_path,
            in_place,
        )?);
        if !in_place {
            transferred.push(name.to_string());
        }
    }
    drop_other_weights(dir, weights, in_place)?;
    if copy.record.is_none() {
        check_unrecorded_checkpoint(&copy.dir, dir, weights, in_place)?;
    }
    let record = FetchRecord {
        repo: model.repo_id(),
        revision: copy.revision.or_else(|| options.revision.clone()),
        commit: copy.commit,
        source: match &copy.record {
            Some(r) => format!("{} (copied from {})", r.source, copy.dir.display()),
            None => format!("copied by hand from {}", copy.dir.display()),
        },
        files,
    };
    record.write(dir)?;
    Ok(Fetched {
        dir: dir.to_path_buf(),
        record,
        transferred,
    })
}

/// A copy's `fetch.json` must name the model asked for, at the revision asked for.
fn check_record_names(
    model: &RemoteModel,
    record: &FetchRecord,
    record_path: &Path,
    options: &FetchOptions,
) -> Result<(), FetchError> {
    let found = format!(
        "{} at revision {}",
        record.repo,
        record.revision.as_deref().unwrap_or("unknown")
    );
    let revision_ok = options
        .revision
        .as_deref()
        .is_none_or(|asked| record.revision.as_deref() == Some(asked));
    if record.repo != model.repo_id() || !revision_ok {
        return Err(FetchError::CopyOtherRevision {
            record: record_path.to_path_buf(),
            found,
            asked: format!(
                "{} at revision {}",
                model.repo_id(),
                options.revision.as_deref().unwrap_or("any")
            ),
        });
    }
    Ok(())
}

/// The copy's weights file (the recorded one, else the one present), once every file
/// the model needs is there; else every missing one, named.
fn complete_copy_weights(
    model: &RemoteModel,
    copy: &FoundCopy,
) -> Result<&'static str, FetchError> {
    let weights = match &copy.record {
        Some(record) => record.weights(),
        None => weights_in(&copy.dir),
    };
    let mut missing: Vec<&str> = model
        .files
        .iter()
        .copied()
        .filter(|f| !copy.dir.join(f).is_file())
        .collect();
    match weights {
        Some(w) if copy.dir.join(w).is_file() => {}
        Some(w) => missing.push(w),
        None => missing.push(EITHER_WEIGHTS),
    }
    match (weights, missing.is_empty()) {
        (Some(w), true) => Ok(w),
        _ => Err(FetchError::CopyIncomplete {
            repo: model.repo_id(),
            from: copy.dir.clone(),
            missing: missing.join(", "),
        }),
    }
}

/// The other weights file left in `dir` would be read instead of, or beside, the one
/// checked: removed, or (copying in place, where it is the user's) warned about.
fn drop_other_weights(dir: &Path, weights: &str, in_place: bool) -> Result<(), FetchError> {
    for other in WEIGHTS.into_iter().filter(|w| *w != weights) {
        let path = dir.join(other);
        if path.exists() {
            if in_place {
                eprintln!(
                    "warning: {} is not the weights file checked ({weights}); remove it",
                    path.display()
                );
            } else {
                fs::remove_file(&path).map_err(|source| FetchError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(())
}

/// Nothing vouches for a copy without a record: read it as `encoders import` will, and
/// take back its weights if they do not read.
fn check_unrecorded_checkpoint(
    copy_dir: &Path,
    dir: &Path,
    weights: &str,
    in_place: bool,
) -> Result<(), FetchError> {
    if let Err(e) = crate::encoders::EncoderCheckpoint::open(dir) {
        if !in_place {
            let _ = fs::remove_file(dir.join(weights));
        }
        return Err(FetchError::Incomplete {
            path: copy_dir.join(weights),
            kind: "checkpoint",
            reason: e.to_string(),
        });
    }
    Ok(())
}

/// Checks `source` (against `expected` from the copy's record, when there is one; its
/// structure in any case) and puts it in `dir` (hard link, else copy, through `.part`).
fn take_copy(
    source: &Path,
    dir: &Path,
    name: &'static str,
    expected: Option<&FileRecord>,
    record_path: &Path,
    in_place: bool,
) -> Result<FileRecord, FetchError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| FetchError::Io { path, source }
    };
    let target = dir.join(name);
    let work = if in_place {
        source.to_path_buf()
    } else {
        // Resolve links (the HF cache's snapshots are symlinks into blobs/).
        let real = source.canonicalize().map_err(io_error(source))?;
        let part = part_path(&target);
        if part.exists() {
            fs::remove_file(&part).map_err(io_error(&part))?;
        }
        if fs::hard_link(&real, &part).is_err() {
            fs::copy(&real, &part).map_err(io_error(&part))?;
        }
        part
    };
    let discard = |work: &Path| {
        if !in_place {
            let _ = fs::remove_file(work);
        }
    };
    let (size, sha256) = hash_file(&work).map_err(io_error(&work))?;
    if let Some(expected) = expected {
        let mismatch = if size != expected.size {
            Some(("size", expected.size.to_string(), size.to_string()))
        } else if sha256 != expected.sha256 {
            Some(("sha256", expected.sha256.clone(), sha256.clone()))
        } else {
            None
        };
        if let Some((what, expected, actual)) = mismatch {
            discard(&work);
            return Err(FetchError::CopyMismatch {
                file: source.to_path_buf(),
                record: record_path.to_path_buf(),
                what,
                expected,
                actual,
            });
        }
    }
    if let Err(e) = check_content(&work, name) {
        discard(&work);
        return Err(match e {
            FetchError::Incomplete { kind, reason, .. } => FetchError::Incomplete {
                path: source.to_path_buf(),
                kind,
                reason,
            },
            other => other,
        });
    }
    if !in_place {
        fs::rename(&work, &target).map_err(io_error(&target))?;
    }
    Ok(FileRecord {
        name: name.to_string(),
        size,
        sha256,
        checked: expected.map_or(Checked::Structure, |e| e.checked),
    })
}

// ---------------------------------------------------------------------------------------
// Structure checks

/// Checks that `path` is a complete file of the kind its `name` says: a safetensors file
/// whose header and length agree, a `pytorch_model.bin` that is a readable zip holding a
/// `data.pkl` (or a legacy torch pickle), JSON that parses.
pub fn check_content(path: &Path, name: &str) -> Result<(), FetchError> {
    let mut head = [0u8; 24];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head[..n].starts_with(b"version https://git-lfs") {
        return Err(FetchError::Incomplete {
            path: path.to_path_buf(),
            kind: "file",
            reason: "it is a git-lfs pointer, not the file itself (run `git lfs pull` in the \
                     clone, or download the file)"
                .to_string(),
        });
    }
    let (kind, result) = if name == SAFETENSORS || name.ends_with(".safetensors") {
        ("safetensors file", check_safetensors(path))
    } else if name == PYTORCH_BIN {
        ("PyTorch checkpoint", check_torch(path))
    } else if name.ends_with(".json") {
        ("JSON file", check_json(path))
    } else {
        return Ok(());
    };
    result.map_err(|reason| FetchError::Incomplete {
        path: path.to_path_buf(),
        kind,
        reason,
    })
}

fn check_json(path: &Path) -> Result<(), String> {
    let text = fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice::<serde_json::Value>(&text)
        .map(|_| ())
        .map_err(|e| format!("it does not parse ({e})"))
}

fn check_safetensors(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 8];
    file.read_exact(&mut head)
        .map_err(|_| format!("{len} bytes, shorter than its 8-byte header length"))?;
    let header_len = u64::from_le_bytes(head);
    if header_len > 100_000_000 || 8 + header_len > len {
        return Err(format!(
            "its header claims {header_len} bytes, the file has {len}"
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(|e| e.to_string())?;
    let entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format!("its header does not parse ({e})"))?;
    let mut end = 0u64;
    for (tensor, entry) in &entries {
        if tensor == "__metadata__" {
            continue;
        }
        let offsets = entry
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .and_then(|o| match o.as_slice() {
                [a, b] => Some((a.as_u64()?, b.as_u64()?)),
                _ => None,
            })
            .ok_or_else(|| format!("tensor {tensor} has no valid data_offsets"))?;
        if offsets.0 > offsets.1 {
            return Err(format!("tensor {tensor} ends before it starts"));
        }
        end = end.max(offsets.1);
    }
    let expected = 8 + header_len + end;
    if expected != len {
        return Err(format!(
            "its header describes {expected} bytes, the file has {len}"
        ));
    }
    Ok(())
}

/// The first bytes of a legacy (pre-zip) `torch.save` file: pickle protocol 2, then the
/// magic number 0x1950a86a20f9469cfc6c as a 10-byte long.
const LEGACY_TORCH_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

fn check_torch(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut head = [0u8; 14];
    let n = file.read(&mut head).map_err(|e| e.to_string())?;
    if n == head.len() && head == LEGACY_TORCH_MAGIC {
        // The legacy format has no index to check; the loader reads it whole.
        return Ok(());
    }
    if n < 4 || head[..4] != *b"PK\x03\x04" {
        return Err("neither a zip (torch >= 1.6) nor a legacy torch pickle".to_string());
    }
    let archive = zip::ZipArchive::new(file)
        .map_err(|e| format!("its zip directory cannot be read ({e}): truncated?"))?;
    let has_pickle = archive
        .file_names()
        .filter_map(Result::ok)
        .any(|n| n == "data.pkl" || n.ends_with("/data.pkl"));
    if !has_pickle {
        return Err("the zip holds no data.pkl".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_port() -> String {
        // Bind, note the port, close: nothing listens there for a moment.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}")
    }

    fn safetensors_bytes(values: usize) -> Vec<u8> {
        let data: Vec<u8> = (0..values * 4).map(|i| i as u8).collect();
        let view =
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![values], &data)
                .unwrap();
        safetensors::serialize([("w", view)], None).unwrap()
    }

    fn torch_zip_bytes() -> Vec<u8> {
        let mut out = io::Cursor::new(Vec::new());
        let mut zip = zip::ZipWriter::new(&mut out);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", stored).unwrap();
        zip.write_all(b"\x80\x02}q\x00.").unwrap();
        zip.start_file("archive/data/0", stored).unwrap();
        zip.write_all(&[7u8; 4096]).unwrap();
        zip.finish().unwrap();
        out.into_inner()
    }

    #[test]
    fn either_weights_file_satisfies_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("config.json"), b"{}").unwrap();
        fs::write(d.join("preprocessor_config.json"), b"{}").unwrap();
        assert_eq!(HUBERT_BASE.missing_files(d), [EITHER_WEIGHTS]);
        fs::write(d.join(PYTORCH_BIN), b"").unwrap();
        assert_eq!(
            HUBERT_BASE.missing_files(d),
            [EITHER_WEIGHTS],
            "empty counts as missing"
        );
        fs::write(d.join(PYTORCH_BIN), b"x").unwrap();
        assert!(HUBERT_BASE.missing_files(d).is_empty());
        assert_eq!(weights_in(d), Some(PYTORCH_BIN));
        fs::write(d.join(SAFETENSORS), b"x").unwrap();
        assert_eq!(weights_in(d), Some(SAFETENSORS), "safetensors preferred");
        fs::remove_file(d.join("config.json")).unwrap();
        assert_eq!(HUBERT_BASE.missing_files(d), ["config.json"]);
    }

    #[test]
    fn revisions_are_encoded_as_one_segment() {
        assert_eq!(encode_segment("refs/pr/2"), "refs%2Fpr%2F2");
        assert_eq!(encode_segment("v1.0_a-b~"), "v1.0_a-b~");
        assert_eq!(
            api_url("http://h/", &HUBERT_BASE, "refs/pr/2"),
            "http://h/api/models/facebook/hubert-base-ls960/revision/refs%2Fpr%2F2?blobs=true"
        );
        assert_eq!(
            resolve_url("http://h", &HUBERT_BASE, "refs/pr/2", "model.safetensors"),
            "http://h/facebook/hubert-base-ls960/resolve/refs%2Fpr%2F2/model.safetensors"
        );
    }

    #[test]
    fn plan_prefers_safetensors_and_falls_back_to_the_bin() {
        let sha = "ab".repeat(32);
        let info: RevisionInfo = serde_json::from_value(serde_json::json!({
            "sha": "0123456789012345678901234567890123456789",
            "siblings": [
                {"rfilename": "config.json", "size": 2},
                {"rfilename": "preprocessor_config.json", "size": 3},
                {"rfilename": "pytorch_model.bin", "size": 10, "lfs": {"sha256": sha, "size": 10}},
            ]
        }))
        .unwrap();
        let plan_main = plan(&HUBERT_BASE, "main", &info, "u").unwrap();
        assert_eq!(plan_main.len(), 3);
        assert_eq!(
            plan_main[2],
            Planned {
                name: PYTORCH_BIN,
                size: Some(10),
                sha256: Some(sha.clone())
            }
        );
        assert_eq!(plan_main[0].sha256, None);
        let mut info = info;
        info.siblings.push(Sibling {
            rfilename: SAFETENSORS.into(),
            size: Some(12),
            lfs: None,
        });
        assert_eq!(
            plan(&HUBERT_BASE, "x", &info, "u").unwrap()[2].name,
            SAFETENSORS
        );
        info.siblings.retain(|s| !s.rfilename.contains("model"));
        let err = plan(&HUBERT_BASE, "x", &info, "u").unwrap_err().to_string();
        assert!(
            err.contains(EITHER_WEIGHTS) && err.contains("config.json"),
            "{err}"
        );
        info.siblings.clear();
        let err = plan(&BERT_BASE, "x", &info, "u").unwrap_err().to_string();
        assert!(err.contains("has no config.json"), "{err}");
    }

    #[test]
    fn unreachable_hub_gives_by_hand_instructions() {
        let cache = tempfile::tempdir().unwrap();
        let endpoint = closed_port();
        let options = FetchOptions {
            endpoint: endpoint.clone(),
            revision: Some("refs/pr/2".into()),
            attempts: 1,
            ..FetchOptions::default()
        };
        let err = fetch(&HUBERT_BASE, cache.path(), &options).unwrap_err();
        assert!(matches!(err, FetchError::Unavailable(_)), "{err:?}");
        let text = err.to_string();
        let dir = HUBERT_BASE.local_dir(cache.path());
        for file in [
            "config.json",
            "preprocessor_config.json",
            SAFETENSORS,
            PYTORCH_BIN,
        ] {
            assert!(
                text.contains(&dir.join(file).display().to_string()),
                "{text}"
            );
            let url = format!("{endpoint}/facebook/hubert-base-ls960/resolve/refs%2Fpr%2F2/{file}");
            assert!(text.contains(&url), "{url} not in {text}");
        }
        assert!(text.contains("--revision refs/pr/2"), "{text}");
        assert!(
            text.contains(&format!("--from {}", cache.path().display())),
            "{text}"
        );
        assert!(
            !text.contains("python") && !text.contains("save_pretrained"),
            "{text}"
        );
        assert!(!dir.join(RECORD_FILE).exists());
    }

    #[test]
    fn structure_checks_catch_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join(SAFETENSORS);
        let bytes = safetensors_bytes(100);
        fs::write(&st, &bytes).unwrap();
        check_content(&st, SAFETENSORS).unwrap();
        fs::write(&st, &bytes[..bytes.len() - 1]).unwrap();
        let err = check_content(&st, SAFETENSORS).unwrap_err().to_string();
        assert!(err.contains("not a complete safetensors file"), "{err}");
        fs::write(&st, [bytes.as_slice(), b"x"].concat()).unwrap();
        assert!(check_content(&st, SAFETENSORS).is_err(), "trailing bytes");

        let bin = dir.path().join(PYTORCH_BIN);
        let zip = torch_zip_bytes();
        fs::write(&bin, &zip).unwrap();
        check_content(&bin, PYTORCH_BIN).unwrap();
        fs::write(&bin, &zip[..zip.len() - 30]).unwrap();
        let err = check_content(&bin, PYTORCH_BIN).unwrap_err().to_string();
        assert!(err.contains("not a complete PyTorch checkpoint"), "{err}");
        fs::write(&bin, b"not a checkpoint at all").unwrap();
        assert!(check_content(&bin, PYTORCH_BIN).is_err());
        let mut legacy = LEGACY_TORCH_MAGIC.to_vec();
        legacy.extend_from_slice(b"rest");
        fs::write(&bin, legacy).unwrap();
        check_content(&bin, PYTORCH_BIN).unwrap();

        fs::write(
            &bin,
            b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n",
        )
        .unwrap();
        let err = check_content(&bin, PYTORCH_BIN).unwrap_err().to_string();
        assert!(err.contains("git-lfs pointer"), "{err}");

        let json = dir.path().join("config.json");
        fs::write(&json, br#"{"a": 1"#).unwrap();
        assert!(check_content(&json, "config.json").is_err());
        fs::write(&json, br#"{"a": 1}"#).unwrap();
        check_content(&json, "config.json").unwrap();
    }

    #[test]
    fn a_part_resumes_with_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.part");
        fs::write(&path, b"hello ").unwrap();
        let mut part = Partial::open(&path).unwrap();
        assert_eq!(part.len, 6);
        part.write(b"world").unwrap();
        let (len, sha) = part.finish().unwrap();
        assert_eq!(len, 11);
        assert_eq!(sha, hex(&Sha256::digest(b"hello world")));
        assert_eq!(fs::read(&path).unwrap(), b"hello world");
        let mut part = Partial::open(&path).unwrap();
        part.restart().unwrap();
        part.write(b"x").unwrap();
        assert_eq!(part.finish().unwrap().1, hex(&Sha256::digest(b"x")));
        assert_eq!(fs::read(&path).unwrap(), b"x");
    }

    #[test]
    fn by_hand_folder_is_checked_in_place_and_recorded() {
        let cache = tempfile::tempdir().unwrap();
        let dir = BERT_BASE.local_dir(cache.path());
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.json"), b"{}").unwrap();
        fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
        fs::write(dir.join(SAFETENSORS), safetensors_bytes(8)).unwrap();
        let options = FetchOptions {
            endpoint: closed_port(),
            from: Some(cache.path().to_path_buf()),
            ..FetchOptions::default()
        };
        let fetched = fetch(&BERT_BASE, cache.path(), &options).unwrap();
        assert!(fetched.transferred.is_empty());
        assert_eq!(fetched.record.weights(), Some(SAFETENSORS));
        assert!(
            fetched
                .record
                .files
                .iter()
                .all(|f| f.checked == Checked::Structure)
        );
        assert_eq!(FetchRecord::read(&dir).unwrap().unwrap(), fetched.record);
        // The record now lets a plain fetch through without the network.
        let plain = FetchOptions {
            endpoint: closed_port(),
            attempts: 1,
            ..FetchOptions::default()
        };
        fetch(&BERT_BASE, cache.path(), &plain).unwrap();
        // A changed file sends it back to the (unreachable) Hub.
        fs::write(dir.join("tokenizer.json"), b"{ }").unwrap();
        let err = fetch(&BERT_BASE, cache.path(), &plain).unwrap_err();
        assert!(matches!(err, FetchError::Unavailable(_)), "{err}");
    }
}
