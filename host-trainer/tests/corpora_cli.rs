//! `host-trainer data scan` on small corpora laid out as RAVDESS, CREMA-D, SAVEE and
//! EmoDB downloads are (tiny generated WAVs under the real folder and file names, with
//! each corpus's quirks), and on a CSV list: every file found with the right label,
//! speaker and sentence, each quirk named in a warning, the corpus detected.

mod common;

use std::path::{Path, PathBuf};

use emotion_core::Emotion;
use host_trainer::data::manifest::CorpusManifest;

use common::{host_trainer, text};

/// A 50 ms 16-bit mono tone at 16 kHz.
fn write_wav(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..800 {
        writer.write_sample(((i % 40) * 200) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

fn write_file(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// One utterance the test laid out: where, and what the scan must read from it.
struct Expected {
    id: String,
    speaker: String,
    label: &'static str,
    text: String,
}

/// What `data scan` printed, and the manifest it wrote.
struct Scanned {
    stdout: String,
    stderr: String,
    manifest: CorpusManifest,
}

fn scan(dir: &Path, extra: &[&str]) -> Scanned {
    let out_dir = tempfile::tempdir().unwrap();
    let manifest = out_dir.path().join("manifest.csv");
    let mut args = vec![
        "data".to_string(),
        "scan".into(),
        dir.display().to_string(),
        "--out".into(),
        manifest.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let out = host_trainer(&args);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{args:?}\n{stdout}\n{stderr}");
    Scanned {
        manifest: CorpusManifest::read_csv(&manifest).unwrap(),
        stdout,
        stderr,
    }
}

/// Every expected utterance is in the manifest with its labels, and nothing else is.
fn assert_found(scanned: &Scanned, corpus: &str, expected: &[Expected]) {
    let manifest = &scanned.manifest;
    for e in expected {
        let entry = manifest
            .get(&e.id)
            .unwrap_or_else(|| panic!("{} missing\n{}", e.id, scanned.stderr));
        assert_eq!(entry.corpus, corpus, "{}", e.id);
        assert_eq!(entry.speaker, e.speaker, "{}", e.id);
        assert_eq!(entry.label, e.label, "{}", e.id);
        assert_eq!(entry.word, e.text, "{}", e.id);
        assert_eq!(entry.transcript, e.text, "{}", e.id);
        assert_eq!(Some(entry.emotion), Emotion::from_code(e.label), "{}", e.id);
        assert_eq!(entry.sample_rate, 16_000);
        assert!((entry.duration_s - 0.05).abs() < 1e-6);
    }
    assert_eq!(manifest.len(), expected.len(), "{}", scanned.stderr);
}

/// A warning line names `file` and says `reason`.
fn assert_warned(stderr: &str, file: &str, reason: &str) {
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning:") && l.contains(file) && l.contains(reason)),
        "no warning naming {file} with '{reason}':\n{stderr}"
    );
}

const RAVDESS_LABELS: [&str; 8] = [
    "neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise",
];
const RAVDESS_STATEMENTS: [&str; 2] = [
    "kids are talking by the door",
    "dogs are sitting by the door",
];

/// Three actors' speech, all 60 files each (neutral has no strong intensity), as the
/// Zenodo zip unpacks; the song zip, video files, a second copy of the speech zip's
/// first actor, a stray name.
fn ravdess(root: &Path) -> Vec<Expected> {
    let mut expected = Vec::new();
    for actor in [1u8, 2, 24] {
        for emotion in 1..=8u8 {
            for intensity in 1..=2u8 {
                if emotion == 1 && intensity == 2 {
                    continue;
                }
                for statement in 1..=2u8 {
                    for repetition in 1..=2u8 {
                        let stem = format!(
                            "03-01-{emotion:02}-{intensity:02}-{statement:02}-{repetition:02}-{actor:02}"
                        );
                        write_wav(
                            &root
                                .join("Audio_Speech_Actors_01-24")
                                .join(format!("Actor_{actor:02}"))
                                .join(format!("{stem}.wav")),
                        );
                        if emotion != 2 {
                            expected.push(Expected {
                                id: format!("ravdess_{stem}"),
                                speaker: format!("ravdess-{actor:02}"),
                                label: RAVDESS_LABELS[usize::from(emotion - 1)],
                                text: RAVDESS_STATEMENTS[usize::from(statement - 1)].into(),
                            });
                        }
                    }
                }
            }
        }
    }
    let song = root.join("Audio_Song_Actors_01-24/Actor_01/03-02-03-01-01-01-01.wav");
    write_wav(&song);
    write_file(
        &root.join("Video_Speech_Actor_01/Actor_01/01-01-03-01-01-01-01.mp4"),
        b"not really a video",
    );
    write_file(
        &root.join("Video_Speech_Actor_01/Actor_01/02-01-03-01-01-01-01.mp4"),
        b"not really a video",
    );
    write_wav(&root.join("extracted/01-01-04-01-01-01-01.wav"));
    write_wav(&root.join("Audio_Speech_Actors_01-24 copy/Actor_01/03-01-03-01-01-01-01.wav"));
    write_wav(&root.join("Audio_Speech_Actors_01-24/Actor_01/03-01-03-01-01-01-01 (1).wav"));
    write_file(&root.join("README.md"), b"RAVDESS");
    expected
}

#[test]
fn ravdess_speech_is_read_and_video_song_duplicates_and_calm_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let expected = ravdess(dir.path());
    let scanned = scan(dir.path(), &[]);
    assert!(scanned.stdout.contains("(ravdess)"), "{}", scanned.stdout);
    assert_found(&scanned, "ravdess", &expected);
    let stderr = &scanned.stderr;
    assert_warned(stderr, "03-02-03-01-01-01-01.wav", "song");
    assert_warned(stderr, "01-01-03-01-01-01-01.mp4", "video");
    assert_warned(stderr, "02-01-03-01-01-01-01.mp4", "video");
    assert_warned(stderr, "extracted/01-01-04-01-01-01-01.wav", "audio-video");
    assert_warned(
        stderr,
        "copy/Actor_01/03-01-03-01-01-01-01.wav",
        "duplicate",
    );
    assert_warned(stderr, "01 (1).wav", "seven two-digit fields");
    assert_warned(stderr, "calm", "left out 24 utterance(s)");
    // 8 angry files per actor (2 intensities × 2 statements × 2 repetitions).
    assert!(
        scanned.stdout.contains("| angry | 8 | 8 | 8 | 24 |"),
        "{}",
        scanned.stdout
    );

    // A label map brings calm in as neutral.
    let map = dir.path().join("map.txt");
    std::fs::write(
        &map,
        "calm = neutral  # RAVDESS's calm is low-arousal neutral\n",
    )
    .unwrap();
    let mapped = scan(
        dir.path(),
        &["--corpus", "ravdess", "--label-map", map.to_str().unwrap()],
    );
    assert_eq!(mapped.manifest.len(), expected.len() + 24);
    let calm = mapped.manifest.get("ravdess_03-01-02-02-01-01-24").unwrap();
    assert_eq!(
        (calm.label.as_str(), calm.emotion),
        ("calm", Emotion::Neutral)
    );
    assert_eq!(calm.intensity, "strong");
    assert!(!mapped.stderr.contains("left out"), "{}", mapped.stderr);
}

const CREMA_SENTENCES: [(&str, &str); 12] = [
    ("IEO", "it's eleven o'clock"),
    ("TIE", "that is exactly what happened"),
    ("IOM", "i'm on my way to the meeting"),
    ("IWW", "i wonder what this is about"),
    ("TAI", "the airplane is almost full"),
    ("MTI", "maybe tomorrow it will be cold"),
    ("IWL", "i would like a new alarm clock"),
    ("ITH", "i think i have a doctor's appointment"),
    ("DFA", "don't forget a jacket"),
    ("ITS", "i think i've seen this before"),
    ("TSI", "the surface is slick"),
    ("WSI", "we'll stop in a couple of minutes"),
];
const CREMA_EMOTIONS: [(&str, &str); 6] = [
    ("ANG", "angry"),
    ("DIS", "disgust"),
    ("FEA", "fear"),
    ("HAP", "happy"),
    ("NEU", "neutral"),
    ("SAD", "sad"),
];

/// Three actors as the repository lays them out: every sentence in every emotion
/// (unspecified intensity), IEO also at LO/MD/HI; MP3 and Flash copies; the
/// demographics file lacking one actor; one WAV too short to have a header.
fn crema_d(root: &Path) -> Vec<Expected> {
    let mut expected = Vec::new();
    for actor in ["1001", "1002", "1091"] {
        for (code, sentence) in CREMA_SENTENCES {
            for (emotion, label) in CREMA_EMOTIONS {
                let mut levels = vec!["XX"];
                if code == "IEO" && emotion != "NEU" {
                    levels.extend(["LO", "MD", "HI"]);
                }
                for level in levels {
                    let stem = format!("{actor}_{code}_{emotion}_{level}");
                    write_wav(&root.join("AudioWAV").join(format!("{stem}.wav")));
                    expected.push(Expected {
                        id: format!("crema-d_{stem}"),
                        speaker: format!("crema-d-{actor}"),
                        label,
                        text: sentence.into(),
                    });
                }
            }
        }
    }
    write_file(&root.join("AudioMP3/1001_DFA_ANG_XX.mp3"), b"ID3");
    write_file(&root.join("VideoFlash/1001_DFA_ANG_XX.flv"), b"FLV");
    write_file(&root.join("AudioWAV/1076_MTI_SAD_XX.wav"), b"RIFF\0\0");
    write_file(
        &root.join("AudioWAV/1003_WSI_SAD_XX.wav"),
        b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n",
    );
    write_wav(&root.join("AudioWAV/1001_DFA_CAL_XX.wav"));
    write_file(
        &root.join("VideoDemographics.csv"),
        b"ActorID,Age,Sex,Race,Ethnicity\n1001,51,Male,Caucasian,Not Hispanic\n1002,21,Female,Caucasian,Not Hispanic\n",
    );
    expected
}

#[test]
fn crema_d_is_read_with_its_sentences_and_its_copies_and_demographics_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let expected = crema_d(dir.path());
    let scanned = scan(dir.path(), &[]);
    assert!(scanned.stdout.contains("(crema-d)"), "{}", scanned.stdout);
    assert_found(&scanned, "crema-d", &expected);
    let stderr = &scanned.stderr;
    assert_warned(stderr, "1001_DFA_ANG_XX.mp3", "not a WAV");
    assert_warned(stderr, "1001_DFA_ANG_XX.flv", "video");
    assert_warned(stderr, "1076_MTI_SAD_XX.wav", "skipped");
    assert_warned(stderr, "1003_WSI_SAD_XX.wav", "git lfs pull");
    assert_warned(
        stderr,
        "1001_DFA_CAL_XX.wav",
        "'CAL' is not an emotion code",
    );
    assert_warned(
        stderr,
        "VideoDemographics.csv",
        "actor 1091 has recordings but no row",
    );
    assert!(
        scanned
            .stdout
            .contains("the 3 speakers kept: 1 female, 1 male"),
        "{}",
        scanned.stdout
    );
    let hi = scanned.manifest.get("crema-d_1002_IEO_HAP_HI").unwrap();
    assert_eq!(hi.intensity, "high");
}

const SAVEE_SPEAKERS: [&str; 4] = ["DC", "JE", "JK", "KL"];
const SAVEE_PREFIXES: [(&str, &str, u32); 7] = [
    ("a", "angry", 15),
    ("d", "disgust", 15),
    ("f", "fear", 15),
    ("h", "happy", 15),
    ("n", "neutral", 30),
    ("sa", "sad", 15),
    ("su", "surprise", 15),
];

/// The whole of SAVEE's audio (4 speakers × 120 files) in `AudioData/<speaker>/`, the
/// video beside it, a stray name.
fn savee(root: &Path) -> Vec<Expected> {
    let mut expected = Vec::new();
    for speaker in SAVEE_SPEAKERS {
        for (prefix, label, count) in SAVEE_PREFIXES {
            for n in 1..=count {
                let code = format!("{prefix}{n:02}");
                write_wav(
                    &root
                        .join("AudioData")
                        .join(speaker)
                        .join(format!("{code}.wav")),
                );
                expected.push(Expected {
                    id: format!("savee_{speaker}_{code}"),
                    speaker: format!("savee-{speaker}"),
                    label,
                    text: String::new(),
                });
            }
        }
    }
    write_file(&root.join("AVData/DC/a01.avi"), b"AVI");
    write_wav(&root.join("AudioData/DC/a16.wav"));
    write_file(&root.join("AudioData/DC/info.txt"), b"Surrey");
    expected
}

#[test]
fn savee_is_read_with_the_speaker_from_its_folder() {
    let dir = tempfile::tempdir().unwrap();
    let expected = savee(dir.path());
    assert_eq!(expected.len(), 480);
    let scanned = scan(dir.path(), &[]);
    assert!(scanned.stdout.contains("(savee)"), "{}", scanned.stdout);
    assert_found(&scanned, "savee", &expected);
    assert_warned(&scanned.stderr, "AVData/DC/a01.avi", "video");
    assert_warned(
        &scanned.stderr,
        "AudioData/DC/a16.wav",
        "sentence number 01..15",
    );
    assert!(
        scanned
            .stdout
            .contains("| pleasant surprise | 15 | 15 | 15 | 15 | 60 |"),
        "{}",
        scanned.stdout
    );
}

const EMODB_SPEAKERS: [&str; 10] = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"];
const EMODB_EMOTIONS: [(char, &str); 7] = [
    ('W', "angry"),
    ('L', "boredom"),
    ('E', "disgust"),
    ('A', "fear"),
    ('F', "happy"),
    ('T', "sad"),
    ('N', "neutral"),
];

/// Every speaker saying two texts in every emotion (`wav/` as the site's zip has it),
/// a second version of one, and names from another corpus.
fn emodb(root: &Path) -> Vec<Expected> {
    let texts = [
        ("a01", "der lappen liegt auf dem eisschrank"),
        (
            "b10",
            "die wird auf dem platz sein, wo wir sie immer hinlegen",
        ),
    ];
    let mut expected = Vec::new();
    for speaker in EMODB_SPEAKERS {
        for (code, sentence) in texts {
            for (letter, label) in EMODB_EMOTIONS {
                let mut versions = vec!['a'];
                if speaker == "03" && letter == 'F' {
                    versions.push('b');
                }
                for version in versions {
                    let stem = format!("{speaker}{code}{letter}{version}");
                    write_wav(&root.join("wav").join(format!("{stem}.wav")));
                    if label != "boredom" {
                        expected.push(Expected {
                            id: format!("emodb_{stem}"),
                            speaker: format!("emodb-{speaker}"),
                            label,
                            text: sentence.into(),
                        });
                    }
                }
            }
        }
    }
    write_wav(&root.join("wav/03a03Fa.wav"));
    write_file(&root.join("lablaut/03a01Fa.lab"), b"labels");
    expected
}

#[test]
fn emodb_is_read_and_boredom_left_out_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let expected = emodb(dir.path());
    let scanned = scan(dir.path(), &[]);
    assert!(scanned.stdout.contains("(emodb)"), "{}", scanned.stdout);
    assert_found(&scanned, "emodb", &expected);
    assert_warned(
        &scanned.stderr,
        "03a03Fa.wav",
        "'a03' is not one of the 10 text codes",
    );
    assert_warned(&scanned.stderr, "boredom", "left out 20 utterance(s)");
    assert!(scanned.manifest.get("emodb_03a01Fb").is_some());
}

#[test]
fn a_csv_list_reads_any_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_wav(&root.join("clips/s1/one.wav"));
    write_wav(&root.join("clips/s2/one.wav"));
    write_wav(&root.join("clips/s2/two.wav"));
    write_file(
        &root.join("mine.csv"),
        b"path,speaker,label,transcript\n\
          clips/s1/one.wav,s1,Happy,what a day\n\
          clips/s2/one.wav,s2,sad,\n\
          clips/s2/two.wav,s2,contempt,oh please\n\
          clips/s2/gone.wav,s2,sad,\n\
          clips/s2/one.wav,s2,sad,\n",
    );
    let scanned = scan(&root.join("mine.csv"), &[]);
    assert!(scanned.stdout.contains("(csv)"), "{}", scanned.stdout);
    let expected = [
        Expected {
            id: "mine_clips_s1_one".into(),
            speaker: "mine-s1".into(),
            label: "happy",
            text: "what a day".into(),
        },
        Expected {
            id: "mine_clips_s2_one".into(),
            speaker: "mine-s2".into(),
            label: "sad",
            text: String::new(),
        },
    ];
    assert_found(&scanned, "csv", &expected);
    assert_warned(&scanned.stderr, "gone.wav", "skipped");
    assert_warned(&scanned.stderr, "clips/s2/one.wav", "duplicate");
    assert_warned(&scanned.stderr, "contempt", "no emotion has that name");
}

#[test]
fn undetectable_folders_and_wrong_corpora_fail_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    write_wav(&dir.path().join("some/recording.wav"));
    let out = host_trainer(&[
        "data",
        "scan",
        dir.path().to_str().unwrap(),
        "--out",
        "/dev/null",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot tell which corpus")
            && text(&out.stderr).contains("--corpus"),
        "{}",
        text(&out.stderr)
    );

    // RAVDESS names read as EmoDB: every file named, nothing kept.
    let ravdess_dir = tempfile::tempdir().unwrap();
    write_wav(&ravdess_dir.path().join("Actor_01/03-01-05-01-02-01-01.wav"));
    let out = host_trainer(&[
        "data",
        "scan",
        ravdess_dir.path().to_str().unwrap(),
        "--corpus",
        "emodb",
        "--out",
        "/dev/null",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("03-01-05-01-02-01-01.wav"), "{stderr}");
    assert!(stderr.contains("no emodb utterances kept"), "{stderr}");

    let out = host_trainer(&["data", "scan", "--corpus", "iemocap"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("crema-d"),
        "{}",
        text(&out.stderr)
    );

    let list = PathBuf::from(dir.path()).join("list.csv");
    write_file(&list, b"file,emotion\na.wav,sad\n");
    let out = host_trainer(&["data", "scan", list.to_str().unwrap(), "--out", "/dev/null"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no 'path' column"),
        "{}",
        text(&out.stderr)
    );

    let map = dir.path().join("map.txt");
    write_file(&map, b"calm neutral\n");
    let out = host_trainer(&[
        "data",
        "scan",
        ravdess_dir.path().to_str().unwrap(),
        "--label-map",
        map.to_str().unwrap(),
        "--out",
        "/dev/null",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 1"),
        "{}",
        text(&out.stderr)
    );
}
