//! `host-trainer fetch` against a small emulation of the Hugging Face Hub on 127.0.0.1:
//! the API's revision listing (`?blobs=true`, sizes and LFS SHA-256) and `resolve` with
//! HTTP ranges. Nothing here leaves the loopback.
//!
//! The emulated `facebook/hubert-base-ls960` is published as the real one: `main` has only
//! `pytorch_model.bin` (and a `tf_model.h5` nobody wants), `refs/pr/2` adds
//! `model.safetensors`. `google-bert/bert-base-uncased` has both weights files on `main`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use host_trainer::encoders::fetch::{
    BERT_BASE, FetchError, FetchOptions, FetchRecord, HUBERT_BASE, PYTORCH_BIN, RECORD_FILE,
    SAFETENSORS, fetch, hash_file,
};
use sha2::{Digest, Sha256};

const MAIN_COMMIT: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const PR_COMMIT: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const BERT_COMMIT: &str = "cccccccccccccccccccccccccccccccccccccccc";

// ---------------------------------------------------------------------------------------
// Fixtures

/// A file of a committed tiny checkpoint written by transformers (`save_pretrained`, both
/// formats): real `pytorch_model.bin` / `model.safetensors` the loader reads.
fn fixture(model: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/conformance")
        .join(model)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A zip shaped as `torch.save` writes one (`archive/data.pkl`), whose pickle is an empty
/// dict: complete as a zip, but no checkpoint.
fn tensorless_torch_zip() -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", stored).unwrap();
    zip.write_all(b"\x80\x02}q\x00.").unwrap();
    zip.finish().unwrap();
    out.into_inner()
}

#[derive(Clone)]
struct FakeFile {
    name: &'static str,
    bytes: Vec<u8>,
    lfs: bool,
}

impl FakeFile {
    fn git(name: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            name,
            bytes,
            lfs: false,
        }
    }
    fn lfs(name: &'static str, bytes: Vec<u8>) -> Self {
        Self {
            name,
            bytes,
            lfs: true,
        }
    }
}

#[derive(Clone)]
struct FakeRevision {
    name: &'static str,
    commit: &'static str,
    files: Vec<FakeFile>,
}

#[derive(Clone)]
struct FakeRepo {
    id: &'static str,
    revisions: Vec<FakeRevision>,
}

/// The two repositories, published as the real ones are.
fn hub_repos() -> Vec<FakeRepo> {
    let hubert_main = vec![
        FakeFile::git("config.json", fixture("hubert-tiny", "config.json")),
        FakeFile::git(
            "preprocessor_config.json",
            br#"{"sampling_rate": 16000, "do_normalize": true}"#.to_vec(),
        ),
        FakeFile::lfs(PYTORCH_BIN, fixture("hubert-tiny", PYTORCH_BIN)),
        FakeFile::lfs("tf_model.h5", vec![1u8; 5000]),
    ];
    let mut hubert_pr = hubert_main.clone();
    hubert_pr.push(FakeFile::lfs(
        SAFETENSORS,
        fixture("hubert-tiny", SAFETENSORS),
    ));
    let bert_main = vec![
        FakeFile::git("config.json", fixture("bert-tiny", "config.json")),
        FakeFile::git("tokenizer.json", fixture("bert-tiny", "tokenizer.json")),
        FakeFile::lfs(SAFETENSORS, fixture("bert-tiny", SAFETENSORS)),
        FakeFile::lfs(PYTORCH_BIN, fixture("bert-tiny", PYTORCH_BIN)),
    ];
    vec![
        FakeRepo {
            id: "facebook/hubert-base-ls960",
            revisions: vec![
                FakeRevision {
                    name: "main",
                    commit: MAIN_COMMIT,
                    files: hubert_main,
                },
                FakeRevision {
                    name: "refs/pr/2",
                    commit: PR_COMMIT,
                    files: hubert_pr,
                },
            ],
        },
        FakeRepo {
            id: "google-bert/bert-base-uncased",
            revisions: vec![FakeRevision {
                name: "main",
                commit: BERT_COMMIT,
                files: bert_main,
            }],
        },
    ]
}

fn file_of(repos: &[FakeRepo], repo: &str, revision: &str, name: &str) -> Vec<u8> {
    repos
        .iter()
        .find(|r| r.id == repo)
        .and_then(|r| r.revisions.iter().find(|v| v.name == revision))
        .and_then(|v| v.files.iter().find(|f| f.name == name))
        .map(|f| f.bytes.clone())
        .unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The emulated Hub

/// What the emulation does besides serving files.
#[derive(Clone, Default)]
struct Quirks {
    /// Cut the first whole-file GET of this file after this many bytes.
    cut: Option<(&'static str, usize)>,
    /// Publish a wrong SHA-256 for this file.
    wrong_sha: Option<&'static str>,
}

/// One request the emulation saw.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    range: Option<String>,
    authorization: Option<String>,
}

struct FakeHub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    /// Serves `repos` on 127.0.0.1 from a thread that stops when dropped, after 120 s, or
    /// after 400 connections, whichever comes first.
    fn start(repos: Vec<FakeRepo>, quirks: Quirks) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(120);
                let mut cut_done = false;
                let mut connections = 0;
                while !stop.load(Ordering::SeqCst) && Instant::now() < deadline && connections < 400
                {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections += 1;
                            let _ = serve(stream, &repos, &quirks, &seen, &mut cut_done);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => break,
                    }
                }
            })
        };
        Self {
            url,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn serve(
    stream: TcpStream,
    repos: &[FakeRepo],
    quirks: &Quirks,
    seen: &Mutex<Vec<Seen>>,
    cut_done: &mut bool,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request = read_request(&stream)?;
    seen.lock().unwrap().push(request.clone());
    let mut stream = stream;
    if let Some(rest) = request.path.strip_prefix("/api/models/") {
        serve_revision_info(&mut stream, rest, repos, quirks);
        return Ok(());
    }
    serve_resolve(&mut stream, &request, repos, quirks, cut_done)
}

/// The request line's path and the headers the emulation cares about.
fn read_request(stream: &TcpStream) -> std::io::Result<Seen> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut range, mut authorization) = (None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            match k.trim().to_ascii_lowercase().as_str() {
                "range" => range = Some(v.trim().to_string()),
                "authorization" => authorization = Some(v.trim().to_string()),
                _ => {}
            }
        }
    }
    Ok(Seen {
        path,
        range,
        authorization,
    })
}

fn not_found(stream: &mut TcpStream, what: &str) {
    respond(
        stream,
        "404 Not Found",
        &[("Content-Type", "application/json".into())],
        format!(r#"{{"error": "{what}"}}"#).as_bytes(),
    )
}

/// The revision of `repo` named by its branch or its commit.
fn find_revision<'a>(
    repos: &'a [FakeRepo],
    repo: &str,
    revision: &str,
) -> Option<&'a FakeRevision> {
    repos.iter().find(|r| r.id == repo).and_then(|r| {
        r.revisions
            .iter()
            .find(|v| v.name == revision || v.commit == revision)
    })
}

/// `/api/models/{repo}/revision/{revision}`: the commit and its files, with sizes and
/// the LFS SHA-256 (wrong where the quirks say).
fn serve_revision_info(stream: &mut TcpStream, rest: &str, repos: &[FakeRepo], quirks: &Quirks) {
    let rest = rest.split('?').next().unwrap_or("");
    let Some((repo, revision)) = rest.split_once("/revision/") else {
        not_found(stream, "Repository not found");
        return;
    };
    let Some(revision) = find_revision(repos, repo, &percent_decode(revision)) else {
        not_found(stream, "Revision Not Found");
        return;
    };
    let siblings: Vec<serde_json::Value> = revision
        .files
        .iter()
        .map(|f| {
            let mut sibling = serde_json::json!({
                "rfilename": f.name, "size": f.bytes.len(), "blobId": "0".repeat(40)
            });
            if f.lfs {
                let sha = if quirks.wrong_sha == Some(f.name) {
                    "0".repeat(64)
                } else {
                    sha256_hex(&f.bytes)
                };
                sibling["lfs"] = serde_json::json!({
                    "sha256": sha, "size": f.bytes.len(), "pointerSize": 134
                });
            }
            sibling
        })
        .collect();
    let body = serde_json::json!({ "id": repo, "sha": revision.commit, "siblings": siblings });
    respond(
        stream,
        "200 OK",
        &[("Content-Type", "application/json".into())],
        body.to_string().as_bytes(),
    );
}

/// `/{owner}/{name}/resolve/{revision}/{file}`: the whole file, or from the byte a range
/// asks; the first whole GET of the quirks' file is cut.
fn serve_resolve(
    stream: &mut TcpStream,
    request: &Seen,
    repos: &[FakeRepo],
    quirks: &Quirks,
    cut_done: &mut bool,
) -> std::io::Result<()> {
    let parts: Vec<&str> = request
        .path
        .trim_start_matches('/')
        .splitn(5, '/')
        .collect();
    let file = match parts.as_slice() {
        [owner, name, "resolve", revision, file] => {
            find_revision(repos, &format!("{owner}/{name}"), &percent_decode(revision))
                .and_then(|v| v.files.iter().find(|f| f.name == percent_decode(file)))
        }
        _ => None,
    };
    let Some(file) = file else {
        not_found(stream, "Entry not found");
        return Ok(());
    };
    let bytes = &file.bytes;
    let start = request
        .range
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|r| r.parse::<usize>().ok());
    match start {
        Some(start) if start >= bytes.len() => respond(
            stream,
            "416 Range Not Satisfiable",
            &[("Content-Range", format!("bytes */{}", bytes.len()))],
            b"",
        ),
        Some(start) => respond(
            stream,
            "206 Partial Content",
            &[(
                "Content-Range",
                format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
            )],
            &bytes[start..],
        ),
        None => match quirks.cut {
            Some((name, after)) if name == file.name && !*cut_done => {
                *cut_done = true;
                send_cut(stream, bytes, after)?;
            }
            _ => respond(stream, "200 OK", &[], bytes),
        },
    }
    Ok(())
}

/// Promises the whole file, sends its first `after` bytes, hangs up.
fn send_cut(stream: &mut TcpStream, bytes: &[u8], after: usize) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&bytes[..after])?;
    stream.flush()?;
    stream.shutdown(Shutdown::Write)?;
    // Wait for the client to hang up too, so nothing sent is lost.
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Helpers

fn host_trainer(args: &[&str], token: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_host-trainer"));
    command
        .args(args)
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_TOKEN")
        .env_remove("EMOTION_ENCODERS");
    if let Some(token) = token {
        command.env("HF_TOKEN", token);
    }
    command.output().unwrap()
}

/// Runs `host-trainer fetch EXTRA... --endpoint ENDPOINT --cache CACHE` (no token).
fn fetch_cli(endpoint: &str, cache: &str, extra: &[&str]) -> Output {
    let mut args = vec!["fetch"];
    args.extend_from_slice(extra);
    args.extend(["--endpoint", endpoint, "--cache", cache]);
    host_trainer(&args, None)
}

/// stdout and stderr, lossy UTF-8.
fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn quick(endpoint: &str) -> FetchOptions {
    FetchOptions {
        endpoint: endpoint.to_string(),
        attempts: 1,
        retry_delay: Duration::ZERO,
        ..FetchOptions::default()
    }
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn falls_back_to_the_bin_on_main_and_takes_safetensors_from_the_pr_branch() {
    let repos = hub_repos();
    let hub = FakeHub::start(repos.clone(), Quirks::default());
    let cache = tempfile::tempdir().unwrap();
    let c = s(cache.path());
    let out = host_trainer(
        &["fetch", "--endpoint", &hub.url, "--cache", c],
        Some("hf_test_token"),
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let hubert = HUBERT_BASE.local_dir(cache.path());
    check_main_fetched_with_the_bin(&repos, cache.path(), &stdout);
    check_main_requests(&hub);

    // Again: checked against fetch.json, nothing asked of the Hub.
    let before = hub.seen().len();
    let out = fetch_cli(&hub.url, c, &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(hub.seen().len(), before, "{:?}", hub.paths());

    check_pr_branch_takes_safetensors(&hub, c, &hubert, before);
    check_revision_errors(&hub, c);
}

/// HuBERT from `main` has only the .bin (and imports), BERT its safetensors; both
/// recorded as SHA-256 checked.
fn check_main_fetched_with_the_bin(repos: &[FakeRepo], cache: &Path, stdout: &str) {
    let hubert = HUBERT_BASE.local_dir(cache);
    let bert = BERT_BASE.local_dir(cache);
    assert_eq!(
        list(&hubert),
        [
            "config.json",
            RECORD_FILE,
            "preprocessor_config.json",
            PYTORCH_BIN
        ]
    );
    let main_bin = file_of(repos, "facebook/hubert-base-ls960", "main", PYTORCH_BIN);
    assert_eq!(std::fs::read(hubert.join(PYTORCH_BIN)).unwrap(), main_bin);
    assert_eq!(
        list(&bert),
        ["config.json", RECORD_FILE, SAFETENSORS, "tokenizer.json"]
    );
    // What `demo --encoders` checks is satisfied by the .bin alone, and it imports.
    assert!(HUBERT_BASE.missing_files(&hubert).is_empty());
    let checkpoint = host_trainer::encoders::EncoderCheckpoint::open(&hubert).unwrap();
    assert!(checkpoint.weights_path().ends_with(PYTORCH_BIN));

    let record = FetchRecord::read(&hubert).unwrap().unwrap();
    assert_eq!(record.revision.as_deref(), Some("main"));
    assert_eq!(record.commit.as_deref(), Some(MAIN_COMMIT));
    let bin = record.file(PYTORCH_BIN).unwrap();
    assert_eq!(bin.sha256, sha256_hex(&main_bin));
    assert_eq!(bin.checked, host_trainer::encoders::fetch::Checked::Sha256);
    assert!(
        stdout.contains("pytorch_model.bin (sha256 checked)"),
        "{stdout}"
    );
}

/// The API asked for `main`, the files pinned to its commit, the unwanted ones never
/// asked for, the token sent with every request.
fn check_main_requests(hub: &FakeHub) {
    let seen = hub.seen();
    let paths = hub.paths();
    assert!(
        paths.contains(&"/api/models/facebook/hubert-base-ls960/revision/main?blobs=true".into()),
        "{paths:?}"
    );
    assert!(paths.contains(&format!(
        "/facebook/hubert-base-ls960/resolve/{MAIN_COMMIT}/pytorch_model.bin"
    )));
    assert!(
        !paths.iter().any(|p| p.ends_with("tf_model.h5")),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p.contains("bert-base-uncased/resolve") && p.ends_with(PYTORCH_BIN)),
        "{paths:?}"
    );
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some("Bearer hf_test_token")),
        "{seen:?}"
    );
}

/// The pull-request branch: only its safetensors downloaded, the .bin of main removed.
fn check_pr_branch_takes_safetensors(hub: &FakeHub, c: &str, hubert: &Path, before: usize) {
    let out = fetch_cli(
        &hub.url,
        c,
        &["facebook/hubert-base-ls960", "--revision", "refs/pr/2"],
    );
    assert!(out.status.success(), "{:?}", text(&out));
    let paths = hub.paths()[before..].to_vec();
    assert_eq!(
        paths[0],
        "/api/models/facebook/hubert-base-ls960/revision/refs%2Fpr%2F2?blobs=true"
    );
    assert_eq!(
        paths[1..],
        [format!(
            "/facebook/hubert-base-ls960/resolve/{PR_COMMIT}/model.safetensors"
        )],
        "config files that match are not downloaded again"
    );
    assert_eq!(
        list(hubert),
        [
            "config.json",
            RECORD_FILE,
            SAFETENSORS,
            "preprocessor_config.json"
        ]
    );
    let record = FetchRecord::read(hubert).unwrap().unwrap();
    assert_eq!(record.revision.as_deref(), Some("refs/pr/2"));
    assert_eq!(record.weights(), Some(SAFETENSORS));
}

/// A revision that does not exist, and --revision without the model named.
fn check_revision_errors(hub: &FakeHub, c: &str) {
    let out = fetch_cli(
        &hub.url,
        c,
        &["facebook/hubert-base-ls960", "--revision", "refs/pr/9"],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("has no revision `refs/pr/9`"), "{stderr}");
    let out = fetch_cli(&hub.url, c, &["--revision", "refs/pr/2"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("host-trainer fetch facebook/hubert-base-ls960 --revision refs/pr/2"),
        "{stderr}"
    );
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let repos = hub_repos();
    let bin = file_of(&repos, "facebook/hubert-base-ls960", "main", PYTORCH_BIN);
    let cut = 100_000;
    assert!(bin.len() > 2 * cut);

    // Across runs: the first run stops at the cut and keeps the part.
    let hub = FakeHub::start(
        repos.clone(),
        Quirks {
            cut: Some((PYTORCH_BIN, cut)),
            ..Quirks::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let dir = HUBERT_BASE.local_dir(cache.path());
    let err = fetch(&HUBERT_BASE, cache.path(), &quick(&hub.url)).unwrap_err();
    assert!(matches!(err, FetchError::Interrupted { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("run the same command again to resume"),
        "{err}"
    );
    let part = dir.join(format!("{PYTORCH_BIN}.part"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), cut as u64);
    assert!(!dir.join(PYTORCH_BIN).exists());

    let fetched = fetch(&HUBERT_BASE, cache.path(), &quick(&hub.url)).unwrap();
    assert_eq!(fetched.transferred, [PYTORCH_BIN]);
    let ranged: Vec<Seen> = hub
        .seen()
        .into_iter()
        .filter(|s| s.range.is_some())
        .collect();
    assert_eq!(ranged.len(), 1, "{ranged:?}");
    assert_eq!(
        ranged[0].range.as_deref(),
        Some(format!("bytes={cut}-").as_str())
    );
    assert!(ranged[0].path.ends_with(PYTORCH_BIN));
    assert_eq!(std::fs::read(dir.join(PYTORCH_BIN)).unwrap(), bin);
    assert!(!part.exists());
    drop(hub);

    // Within one run: the command line tries again from where it stopped.
    let hub = FakeHub::start(
        repos,
        Quirks {
            cut: Some((PYTORCH_BIN, cut)),
            ..Quirks::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let out = fetch_cli(&hub.url, s(cache.path()), &["facebook/hubert-base-ls960"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("trying again from byte {cut}")),
        "{stderr}"
    );
    assert!(
        hub.seen()
            .iter()
            .any(|s| s.range.as_deref() == Some(format!("bytes={cut}-").as_str())),
        "{:?}",
        hub.seen()
    );
    let (size, sha) = hash_file(&HUBERT_BASE.local_dir(cache.path()).join(PYTORCH_BIN)).unwrap();
    assert_eq!((size, sha), (bin.len() as u64, sha256_hex(&bin)));
}

#[test]
fn a_file_whose_checksum_differs_is_refused_and_deleted() {
    let hub = FakeHub::start(
        hub_repos(),
        Quirks {
            wrong_sha: Some(SAFETENSORS),
            ..Quirks::default()
        },
    );
    let cache = tempfile::tempdir().unwrap();
    let out = fetch_cli(
        &hub.url,
        s(cache.path()),
        &["google-bert/bert-base-uncased"],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("its sha256 is") && stderr.contains(&"0".repeat(64)),
        "{stderr}"
    );
    assert!(stderr.contains("was deleted"), "{stderr}");
    let dir = BERT_BASE.local_dir(cache.path());
    let left = list(&dir);
    assert!(
        !left.iter().any(|f| f.starts_with(SAFETENSORS)) && !left.contains(&RECORD_FILE.into()),
        "{left:?}"
    );
}

#[test]
fn from_a_folder_checks_the_copy() {
    // The machine with network.
    let online = tempfile::tempdir().unwrap();
    {
        let hub = FakeHub::start(hub_repos(), Quirks::default());
        let out = fetch_cli(&hub.url, s(online.path()), &[]);
        assert!(out.status.success(), "{:?}", text(&out));
    }
    let from = online.path();
    check_a_good_copy(from);

    // The copy of another revision than the one asked.
    let out = fetch_from(
        &["facebook/hubert-base-ls960", "--revision", "refs/pr/2"],
        tempfile::tempdir().unwrap().path(),
        from,
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("at revision main, not"), "{stderr}");

    let hubert_copy = HUBERT_BASE.local_dir(from);
    let bin = hubert_copy.join(PYTORCH_BIN);
    let good = std::fs::read(&bin).unwrap();
    check_a_tampered_copy(from, &bin, &good);

    // Without a record: only the structure can be checked, and a truncated .bin fails it.
    std::fs::remove_file(hubert_copy.join(RECORD_FILE)).unwrap();
    std::fs::write(&bin, &good[..good.len() - 1000]).unwrap();
    let target = tempfile::tempdir().unwrap();
    refused_without_a_record(target.path(), from, "is not a complete PyTorch checkpoint");

    // A complete zip the loader refuses (no tensor in it): refused too.
    std::fs::write(&bin, tensorless_torch_zip()).unwrap();
    refused_without_a_record(target.path(), from, "is not a complete checkpoint");

    // Complete again: accepted, and recorded as checked for structure only.
    std::fs::write(&bin, &good).unwrap();
    let out = fetch_from(&["facebook/hubert-base-ls960"], target.path(), from);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("copied by hand, structure checked"),
        "{stdout}"
    );
}

/// Runs `host-trainer fetch EXTRA... --cache CACHE --from FROM` (no token).
fn fetch_from(extra: &[&str], cache: &Path, from: &Path) -> Output {
    let mut args = vec!["fetch"];
    args.extend_from_slice(extra);
    args.extend(["--cache", s(cache), "--from", s(from)]);
    host_trainer(&args, None)
}

/// A good copy: everything checked against its fetch.json, no network.
fn check_a_good_copy(from: &Path) {
    let dead = closed_port();
    let offline = tempfile::tempdir().unwrap();
    let out = fetch_from(&["--endpoint", &dead], offline.path(), from);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for model in [HUBERT_BASE, BERT_BASE] {
        let here = model.local_dir(offline.path());
        let there = model.local_dir(from);
        let (a, b) = (
            FetchRecord::read(&here).unwrap().unwrap(),
            FetchRecord::read(&there).unwrap().unwrap(),
        );
        assert_eq!(a.files, b.files);
        assert_eq!(a.revision.as_deref(), Some("main"));
        for f in &a.files {
            assert_eq!(
                std::fs::read(here.join(&f.name)).unwrap(),
                std::fs::read(there.join(&f.name)).unwrap()
            );
        }
    }
    assert!(stdout.contains("sha256 checked"), "{stdout}");
}

/// A tampered copy (one byte of `bin` changed, same size): refused, nothing put in
/// place; the other model, intact, goes through.
fn check_a_tampered_copy(from: &Path, bin: &Path, good: &[u8]) {
    let mut bad = good.to_vec();
    bad[good.len() / 2] ^= 0xff;
    std::fs::write(bin, &bad).unwrap();
    let target = tempfile::tempdir().unwrap();
    let out = fetch_from(&[], target.path(), from);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("its sha256 is") && stderr.contains(RECORD_FILE),
        "{stderr}"
    );
    let left = list(&HUBERT_BASE.local_dir(target.path()));
    assert!(!left.iter().any(|f| f.starts_with(PYTORCH_BIN)), "{left:?}");
    assert!(
        BERT_BASE
            .local_dir(target.path())
            .join(SAFETENSORS)
            .is_file()
    );
}

/// The HuBERT copy, without a record, is refused with `reason` and its .bin not kept.
fn refused_without_a_record(target: &Path, from: &Path, reason: &str) {
    let out = fetch_from(&["facebook/hubert-base-ls960"], target, from);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains(reason), "{stderr}");
    assert!(!HUBERT_BASE.local_dir(target).join(PYTORCH_BIN).exists());
}

#[test]
fn from_the_hugging_face_cache_follows_its_links() {
    // models--owner--name/{refs/main, snapshots/COMMIT/FILE -> ../../blobs/SHA}
    let repos = hub_repos();
    let hf = tempfile::tempdir().unwrap();
    let root = hf
        .path()
        .join("hub")
        .join("models--facebook--hubert-base-ls960");
    let snapshot = root.join("snapshots").join(MAIN_COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(root.join("blobs")).unwrap();
    std::fs::create_dir_all(root.join("refs")).unwrap();
    std::fs::write(root.join("refs").join("main"), MAIN_COMMIT).unwrap();
    for name in ["config.json", "preprocessor_config.json", PYTORCH_BIN] {
        let bytes = file_of(&repos, "facebook/hubert-base-ls960", "main", name);
        let blob = sha256_hex(&bytes);
        std::fs::write(root.join("blobs").join(&blob), &bytes).unwrap();
        std::os::unix::fs::symlink(
            PathBuf::from("../../blobs").join(&blob),
            snapshot.join(name),
        )
        .unwrap();
    }
    let cache = tempfile::tempdir().unwrap();
    let options = FetchOptions {
        from: Some(hf.path().to_path_buf()),
        ..quick(&closed_port())
    };
    let fetched = fetch(&HUBERT_BASE, cache.path(), &options).unwrap();
    assert_eq!(fetched.record.commit.as_deref(), Some(MAIN_COMMIT));
    let bin = fetched.dir.join(PYTORCH_BIN);
    assert!(
        !std::fs::symlink_metadata(&bin)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        file_of(&repos, "facebook/hubert-base-ls960", "main", PYTORCH_BIN)
    );
}

#[test]
fn without_network_the_error_lists_the_files_to_put_by_hand() {
    let dead = closed_port();
    let cache = tempfile::tempdir().unwrap();
    let out = fetch_cli(&dead, s(cache.path()), &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    for (model, files) in [
        (HUBERT_BASE, ["config.json", "preprocessor_config.json"]),
        (BERT_BASE, ["config.json", "tokenizer.json"]),
    ] {
        let dir = model.local_dir(cache.path());
        for file in files.iter().chain(&[SAFETENSORS, PYTORCH_BIN]) {
            let place = dir.join(file);
            assert!(
                stderr.contains(s(&place)),
                "{} not in {stderr}",
                place.display()
            );
            let url = format!("{dead}/{}/resolve/main/{file}", model.repo_id());
            assert!(stderr.contains(&url), "{url} not in {stderr}");
        }
    }
    let check = format!("--cache {c} --from {c}", c = cache.path().display());
    assert!(stderr.contains(&check), "{stderr}");
    assert!(!stderr.contains("python"), "{stderr}");
    assert!(list(&HUBERT_BASE.local_dir(cache.path())).is_empty());

    // For a revision: its URLs, encoded.
    let out = fetch_cli(
        &dead,
        s(cache.path()),
        &["facebook/hubert-base-ls960", "--revision", "refs/pr/2"],
    );
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    let url = format!("{dead}/facebook/hubert-base-ls960/resolve/refs%2Fpr%2F2/model.safetensors");
    assert!(stderr.contains(&url), "{stderr}");
    assert!(stderr.contains("--revision refs/pr/2 --cache"), "{stderr}");
}
