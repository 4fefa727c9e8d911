//! Test helpers shared by the front-end's unit tests: WAV files written with hound,
//! hand-built WAV bytes for headers hound would never write, and test signals.

use std::path::{Path, PathBuf};

/// A WAV file built byte by byte, so tests can write any header, good or bad.
///
/// `RawWav::pcm(..)` gives a consistent plain-PCM header; change fields to break it.
#[derive(Debug, Clone)]
pub struct RawWav {
    /// `wFormatTag` (1 PCM, 3 float, 6 A-law, 0xFFFE extensible, ...).
    pub format_tag: u16,
    /// `nChannels`.
    pub channels: u16,
    /// `nSamplesPerSec`.
    pub sample_rate: u32,
    /// `wBitsPerSample` (the container size for extensible).
    pub bits: u16,
    /// `nBlockAlign`; `None` computes `channels * bits / 8`.
    pub block_align: Option<u16>,
    /// For `format_tag` 0xFFFE: the sub-format tag and `wValidBitsPerSample`.
    pub extensible: Option<(u16, u16)>,
    /// Chunks written between `fmt ` and `data` (id, body); odd bodies get a pad byte.
    pub extra_chunks: Vec<([u8; 4], Vec<u8>)>,
    /// The data chunk's length field; `None` writes the real length of `data`.
    pub claimed_data_len: Option<u32>,
    /// The bytes of the data chunk.
    pub data: Vec<u8>,
}

impl RawWav {
    /// A plain PCM header (16-byte fmt chunk) with the given data bytes.
    pub fn pcm(sample_rate: u32, channels: u16, bits: u16, data: Vec<u8>) -> Self {
        RawWav {
            format_tag: 1,
            channels,
            sample_rate,
            bits,
            block_align: None,
            extensible: None,
            extra_chunks: Vec::new(),
            claimed_data_len: None,
            data,
        }
    }

    /// 16-bit mono PCM holding `samples`.
    pub fn pcm16(sample_rate: u32, samples: &[i16]) -> Self {
        let data = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        Self::pcm(sample_rate, 1, 16, data)
    }

    /// 32-bit float mono with format tag 3 (not extensible) holding `samples`.
    pub fn float32(sample_rate: u32, samples: &[f32]) -> Self {
        let data = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        RawWav {
            format_tag: 3,
            ..Self::pcm(sample_rate, 1, 32, data)
        }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let block_align = self
            .block_align
            .unwrap_or(self.channels.wrapping_mul(self.bits / 8));
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&self.format_tag.to_le_bytes());
        fmt.extend_from_slice(&self.channels.to_le_bytes());
        fmt.extend_from_slice(&self.sample_rate.to_le_bytes());
        let byte_rate = self.sample_rate.wrapping_mul(u32::from(block_align));
        fmt.extend_from_slice(&byte_rate.to_le_bytes());
        fmt.extend_from_slice(&block_align.to_le_bytes());
        fmt.extend_from_slice(&self.bits.to_le_bytes());
        if let Some((sub_tag, valid_bits)) = self.extensible {
            fmt.extend_from_slice(&22u16.to_le_bytes());
            fmt.extend_from_slice(&valid_bits.to_le_bytes());
            fmt.extend_from_slice(&0u32.to_le_bytes()); // channel mask
            fmt.extend_from_slice(&sub_tag.to_le_bytes());
            fmt.extend_from_slice(&[
                0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
            ]);
        }

        let mut body = Vec::new();
        body.extend_from_slice(b"WAVE");
        push_chunk(&mut body, b"fmt ", &fmt, fmt.len() as u32);
        for (id, chunk) in &self.extra_chunks {
            push_chunk(&mut body, id, chunk, chunk.len() as u32);
        }
        let data_len = self.claimed_data_len.unwrap_or(self.data.len() as u32);
        push_chunk(&mut body, b"data", &self.data, data_len);

        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }
}

fn push_chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8], len_field: u32) {
    out.extend_from_slice(id);
    out.extend_from_slice(&len_field.to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 && id != b"data" {
        out.push(0);
    }
}

/// Writes interleaved integer samples with hound (8, 16, 24 or 32 bits).
pub fn write_int_wav(path: &Path, sample_rate: u32, channels: u16, bits: u16, samples: &[i32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for &s in samples {
        writer.write_sample(s).expect("write sample");
    }
    writer.finalize().expect("finalize wav");
}

/// Writes interleaved 32-bit float samples with hound (WAVE_FORMAT_EXTENSIBLE).
pub fn write_float_wav(path: &Path, sample_rate: u32, channels: u16, samples: &[f32]) {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).expect("create wav");
    for &s in samples {
        writer.write_sample(s).expect("write sample");
    }
    writer.finalize().expect("finalize wav");
}

/// A 16-bit mono WAV of a 440 Hz tone, `seconds` long, in `dir`; returns its path.
pub fn write_tone_wav(dir: &Path, name: &str, sample_rate: u32, seconds: f64) -> PathBuf {
    let path = dir.join(name);
    let samples: Vec<i32> = sine(440.0, sample_rate, seconds, 0.5)
        .iter()
        .map(|&x| (x * 32767.0).round() as i32)
        .collect();
    write_int_wav(&path, sample_rate, 1, 16, &samples);
    path
}

/// A sine of `freq` Hz and amplitude `amplitude`, `seconds` long at `rate`.
pub fn sine(freq: f64, rate: u32, seconds: f64, amplitude: f64) -> Vec<f32> {
    let n = (seconds * f64::from(rate)).round() as usize;
    (0..n)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
                as f32
        })
        .collect()
}
