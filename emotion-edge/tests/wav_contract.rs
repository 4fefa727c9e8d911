//! One WAV contract: a file that `classify` (the front-end's clip decoder) accepts,
//! `listen --source FILE` (the streaming reader) accepts too, with the same samples, and
//! a file one refuses the other refuses for the same reason.

use std::time::{Duration, Instant};

use emotion_core::frontend::{AudioErrorKind, decode_bytes, probe_wav};
use emotion_edge::audio::{Pace, ReadOutcome, SourceError, SourceSpec, open};

/// A WAV file byte by byte, so that any header can be written.
#[derive(Clone)]
struct Wav {
    tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    /// `(sub-format tag, valid bits)`: written as WAVE_FORMAT_EXTENSIBLE.
    extensible: Option<(u16, u16)>,
    /// Chunks before `data` (odd bodies get their pad byte).
    chunks: Vec<([u8; 4], Vec<u8>)>,
    /// The data chunk's size field; `None` for the real size.
    claimed: Option<u32>,
    data: Vec<u8>,
    /// Leave the data chunk out (the file ends after the other chunks).
    no_data_chunk: bool,
}

impl Wav {
    /// 16-bit PCM, `frames` frames of a ramp, at `rate` with `channels`.
    fn pcm16(rate: u32, channels: u16, frames: usize) -> Self {
        let data = (0..frames * usize::from(channels))
            .flat_map(|i| ((i as i16).wrapping_mul(97)).to_le_bytes())
            .collect();
        Wav {
            tag: 1,
            channels,
            rate,
            bits: 16,
            extensible: None,
            chunks: Vec::new(),
            claimed: None,
            data,
            no_data_chunk: false,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let block = self.channels * self.bits.div_ceil(8);
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&self.tag.to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.rate.to_le_bytes());
        fmt.extend_from_slice(&(self.rate.wrapping_mul(u32::from(block))).to_le_bytes());
        fmt.extend_from_slice(&block.to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if let Some((sub, valid)) = self.extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&valid.to_le_bytes());
            fmt.extend_from_slice(&0u32.to_le_bytes());
            fmt.extend_from_slice(&sub.to_le_bytes());
            fmt.extend_from_slice(&[
                0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]);
        }
        let mut body = b"WAVE".to_vec();
        let mut chunk = |id: &[u8; 4], data: &[u8], len: u32, pad: bool| {
            body.extend_from_slice(id);
            body.extend_from_slice(&len.to_le_bytes());
            body.extend_from_slice(data);
            if pad && data.len() % 2 == 1 {
                body.push(0);
            }
        };
        chunk(b"fmt ", &fmt, fmt.len() as u32, true);
        for (id, data) in &self.chunks {
            chunk(id, data, data.len() as u32, true);
        }
        if !self.no_data_chunk {
            let len = self.claimed.unwrap_or(self.data.len() as u32);
            chunk(b"data", &self.data, len, false);
        }
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }
}

/// The cases: every limit on both sides, and the header shapes that tripped one reader
/// and not the other.
fn cases() -> Vec<(&'static str, Wav, Option<AudioErrorKind>)> {
    use AudioErrorKind::*;
    let base = Wav::pcm16(16_000, 1, 400);
    let with = |f: &dyn Fn(&mut Wav)| {
        let mut w = base.clone();
        f(&mut w);
        w
    };
    vec![
        ("plain", base.clone(), None),
        (
            "7 kHz",
            Wav::pcm16(7_000, 1, 70),
            Some(UnsupportedSampleRate),
        ),
        ("8 kHz", Wav::pcm16(8_000, 1, 80), None),
        ("384 kHz", Wav::pcm16(384_000, 1, 3_840), None),
        (
            "400 kHz",
            Wav::pcm16(400_000, 1, 4_000),
            Some(UnsupportedSampleRate),
        ),
        ("64 channels", Wav::pcm16(16_000, 64, 20), None),
        (
            "65 channels",
            Wav::pcm16(16_000, 65, 20),
            Some(TooManyChannels),
        ),
        (
            "extensible 24 in 32",
            with(&|w| {
                w.tag = 0xFFFE;
                w.bits = 32;
                w.extensible = Some((1, 24));
                w.data = (0..100i32)
                    .flat_map(|i| (i * 40_000).to_le_bytes())
                    .collect();
            }),
            None,
        ),
        (
            "extensible float stereo",
            with(&|w| {
                w.tag = 0xFFFE;
                w.bits = 32;
                w.channels = 2;
                w.extensible = Some((3, 32));
                w.data = (0..100)
                    .flat_map(|i| (i as f32 / 100.0).to_le_bytes())
                    .collect();
            }),
            None,
        ),
        (
            "extensible A-law",
            with(&|w| {
                w.tag = 0xFFFE;
                w.bits = 8;
                w.extensible = Some((6, 8));
            }),
            Some(UnsupportedEncoding),
        ),
        (
            "odd chunks padded",
            with(&|w| {
                w.chunks = vec![
                    (*b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00".to_vec()),
                    (*b"fact", vec![3, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9]),
                    (*b"junk", vec![1, 2, 3]),
                ];
            }),
            None,
        ),
        (
            "missing data chunk",
            with(&|w| w.no_data_chunk = true),
            Some(CorruptHeader),
        ),
        ("open size 0", with(&|w| w.claimed = Some(0)), None),
        ("open size max", with(&|w| w.claimed = Some(u32::MAX)), None),
        (
            "truncated",
            with(&|w| w.claimed = Some(10_000)),
            Some(TruncatedData),
        ),
        (
            "partial last frame",
            with(&|w| {
                w.channels = 2;
                w.data.truncate(402);
            }),
            None,
        ),
        (
            "less than a frame",
            with(&|w| {
                w.channels = 2;
                w.data.truncate(2);
            }),
            Some(Empty),
        ),
        ("no samples", with(&|w| w.data.clear()), Some(Empty)),
        ("12-bit", with(&|w| w.bits = 12), Some(UnsupportedEncoding)),
        ("ADPCM", with(&|w| w.tag = 2), Some(UnsupportedEncoding)),
        (
            "zero channels",
            with(&|w| w.channels = 0),
            Some(CorruptHeader),
        ),
    ]
}

/// What `listen --source FILE` makes of `path`: its mono samples, or why not.
fn listen_verdict(path: &std::path::Path) -> Result<Vec<f32>, AudioErrorKind> {
    let spec = SourceSpec::File {
        path: path.to_owned(),
        pace: Pace::Fast,
    };
    let mut capture = match open(&spec, 1.0) {
        Ok(capture) => capture,
        Err(SourceError::Wav(error)) => return Err(error.kind()),
        Err(other) => panic!("{}: {other}", path.display()),
    };
    let mut out = Vec::new();
    let start = Instant::now();
    loop {
        match capture.read(&mut out, Duration::from_millis(20)) {
            Ok(ReadOutcome::Ended) => return Ok(out),
            Ok(ReadOutcome::Samples(_)) => {}
            Err(error) => panic!("{}: {error}", path.display()),
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never ended");
    }
}

#[test]
fn classify_and_listen_take_and_refuse_the_same_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, wav, expected) in cases() {
        let bytes = wav.bytes();
        let path = dir.path().join(format!("{}.wav", name.replace(' ', "-")));
        std::fs::write(&path, &bytes).expect("write");

        let clip = decode_bytes(&bytes, name, f32::INFINITY);
        assert_eq!(
            clip.as_ref().err().map(|e| e.kind()),
            expected,
            "{name}: classify says {clip:?}"
        );
        assert_eq!(
            probe_wav(&path).err().map(|e| e.kind()),
            expected,
            "{name}: probe"
        );
        let listened = listen_verdict(&path);
        assert_eq!(listened.as_ref().err().copied(), expected, "{name}: listen");
        if let (Ok(clip), Ok(listened)) = (clip, listened) {
            assert_eq!(listened, clip.samples, "{name}: the same samples");
        }
    }
}
