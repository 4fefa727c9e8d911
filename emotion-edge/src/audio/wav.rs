//! A streaming WAV reader for files and pipes (`arecord -t wav`, `sox ... -t wav -`).
//!
//! hound needs the data length up front; a pipe does not give it: streaming writers put
//! 0 or `0xFFFFFFFF` in the size fields. The header is read by the front-end's
//! [`read_header`] (the one chunk walk and set of limits every WAV reader of the project
//! shares); then frames are decoded as they come, until the data is used up or the
//! stream ends.
//!
//! Decoding matches `emotion_core::frontend::decode`: integers are divided by `2^(bits-1)`
//! (8-bit data is unsigned on disk), 24-bit samples in 4-byte containers are read from
//! the low three bytes as hound does, and channels are averaged in `f64` by the capture
//! ring. Frames are decoded through a buffer of the size asked for, bounded by the
//! header's limits.

use emotion_core::frontend::{AudioError, SampleFormat, WavFormat, read_header};
use std::io::{self, Read};

/// Reads a WAV stream front to back: the header in [`new`](Self::new), then frames.
#[derive(Debug)]
pub struct WavStream<R> {
    reader: R,
    format: WavFormat,
    /// Data bytes still to read, or `None` to read until the end.
    remaining: Option<u64>,
    /// Raw bytes read but not yet decoded (at most one partial frame between calls).
    bytes: Vec<u8>,
    filled: usize,
    ended: bool,
    /// Frames handed out so far (for messages).
    frames_read: u64,
}

impl<R: Read> WavStream<R> {
    /// Reads and checks the header, up to the start of the sample data. `total_len` is
    /// the input's length when known (a file: then its data must all be there);
    /// `name` is used in errors.
    pub fn new(mut reader: R, name: &str, total_len: Option<u64>) -> Result<Self, AudioError> {
        let header = read_header(&mut reader, total_len, name)?;
        Ok(WavStream {
            reader,
            format: header.format,
            remaining: header.data_len,
            bytes: Vec::new(),
            filled: 0,
            ended: false,
            frames_read: 0,
        })
    }

    /// What the header says.
    pub fn format(&self) -> &WavFormat {
        &self.format
    }

    /// Reads up to `max_frames` frames and appends their interleaved samples (scaled to
    /// `[-1, 1]`) to `out`. Blocks until that many frames arrived or the data ended;
    /// returns the frames read, 0 at the end. A partial frame at the end is dropped.
    pub fn read_frames(&mut self, out: &mut Vec<f64>, max_frames: usize) -> io::Result<usize> {
        let block = self.format.block_align();
        if self.ended || max_frames == 0 || block == 0 {
            return Ok(0);
        }
        let mut want = max_frames.saturating_mul(block);
        if let Some(remaining) = self.remaining {
            let left = usize::try_from(remaining).unwrap_or(usize::MAX);
            want = want.min(left.saturating_add(self.filled));
        }
        if self.bytes.len() < want {
            self.bytes.resize(want, 0);
        }
        while self.filled < want {
            match self.reader.read(&mut self.bytes[self.filled..want]) {
                Ok(0) => {
                    self.ended = true;
                    break;
                }
                Ok(n) => {
                    self.filled += n;
                    if let Some(remaining) = self.remaining.as_mut() {
                        *remaining = remaining.saturating_sub(n as u64);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        if self.remaining == Some(0) {
            self.ended = true;
        }
        let frames = self.filled / block;
        let used = frames * block;
        out.reserve(used / usize::from(self.format.container.max(1)));
        let first = out.len();
        decode(&self.format, &self.bytes[..used], out);
        // Float data can hold NaN or infinity: not audio, and it would poison every
        // frame after it. The file front-end refuses it too (AudioError::NonFinite).
        // (Integers always decode to finite samples: no scan for them.)
        if self.format.format == SampleFormat::Float
            && let Some(at) = out[first..].iter().position(|s| !s.is_finite())
        {
            out.truncate(first);
            let frame = self.frames_read + (at / usize::from(self.format.channels)) as u64;
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "frame {frame} holds a sample that is not a finite number (NaN or infinity): not audio"
                ),
            ));
        }
        self.frames_read += frames as u64;
        self.bytes.copy_within(used..self.filled, 0);
        self.filled -= used;
        Ok(frames)
    }
}

/// Appends the samples in `bytes` (whole frames) to `out`.
fn decode(format: &WavFormat, bytes: &[u8], out: &mut Vec<f64>) {
    match (format.format, format.container, format.bits) {
        (SampleFormat::Int, 1, _) => {
            out.extend(bytes.iter().map(|&b| (f64::from(b) - 128.0) / 128.0));
        }
        (SampleFormat::Int, 2, _) => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0),
        ),
        (SampleFormat::Int, 3, _) => out.extend(
            bytes
                .chunks_exact(3)
                .map(|b| f64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) / 8_388_608.0),
        ),
        // 24 valid bits in 4 bytes: the low three bytes, as hound (and so the front-end)
        // reads them.
        (SampleFormat::Int, 4, 24) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f64::from(i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) / 8_388_608.0),
        ),
        (SampleFormat::Int, 4, _) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])) / 2_147_483_648.0),
        ),
        (SampleFormat::Float, _, _) => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        ),
        // `read_header` admits no other combination (`is_supported`).
        _ => {}
    }
}

/// Builds WAV bytes for tests: a header with the given `data_len` field, then `data`.
#[cfg(test)]
pub(crate) fn wav_bytes(
    format_tag: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data_len: u32,
    data: &[u8],
) -> Vec<u8> {
    let block_align = channels * bits.div_ceil(8);
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    v.extend_from_slice(b"WAVE");
    v.extend_from_slice(b"fmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&format_tag.to_le_bytes());
    v.extend_from_slice(&channels.to_le_bytes());
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * u32::from(block_align)).to_le_bytes());
    v.extend_from_slice(&block_align.to_le_bytes());
    v.extend_from_slice(&bits.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    v.extend_from_slice(data);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm16(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn read_all<R: Read>(stream: &mut WavStream<R>, chunk: usize) -> Vec<f64> {
        let mut out = Vec::new();
        while stream.read_frames(&mut out, chunk).expect("reads") > 0 {}
        out
    }

    #[test]
    fn open_ended_sizes_read_until_the_end() {
        let data = pcm16(&[0, 16_384, -16_384, -32_768, 1]);
        for size in [0, u32::MAX] {
            let bytes = wav_bytes(1, 1, 16_000, 16, size, &data);
            let mut stream = WavStream::new(bytes.as_slice(), "t.wav", None).expect("header");
            let out = read_all(&mut stream, 2);
            assert_eq!(out, vec![0.0, 0.5, -0.5, -1.0, 1.0 / 32_768.0]);
        }
    }

    #[test]
    fn a_stated_size_stops_the_data_and_a_partial_frame_is_dropped() {
        let data = pcm16(&[1, 2, 3, 4, 5, 6, 7]);
        // Stereo; the size covers 3 samples: one whole frame and half of the next.
        let bytes = wav_bytes(1, 2, 16_000, 16, 6, &data);
        let mut stream = WavStream::new(bytes.as_slice(), "t.wav", None).expect("header");
        assert_eq!(read_all(&mut stream, 10).len(), 2);
        // A stream cut inside a frame: the partial frame is dropped.
        let bytes = wav_bytes(1, 2, 16_000, 16, 0, &data);
        let mut stream = WavStream::new(bytes.as_slice(), "t.wav", None).expect("header");
        assert_eq!(read_all(&mut stream, 1).len(), 6);
    }

    #[test]
    fn every_supported_encoding_decodes_like_the_front_end() {
        // 8-bit unsigned.
        let bytes = wav_bytes(1, 1, 8_000, 8, 3, &[0, 128, 255]);
        let out = read_all(
            &mut WavStream::new(bytes.as_slice(), "t.wav", None).expect("u8"),
            7,
        );
        assert_eq!(out, vec![-1.0, 0.0, 127.0 / 128.0]);
        // 24-bit packed.
        let bytes = wav_bytes(1, 1, 8_000, 24, 6, &[0, 0, 0x80, 0xFF, 0xFF, 0x7F]);
        let out = read_all(
            &mut WavStream::new(bytes.as_slice(), "t.wav", None).expect("i24"),
            7,
        );
        assert_eq!(out, vec![-1.0, 8_388_607.0 / 8_388_608.0]);
        // 32-bit integer.
        let data: Vec<u8> = i32::MIN.to_le_bytes().into_iter().collect();
        let bytes = wav_bytes(1, 1, 8_000, 32, 4, &data);
        let out = read_all(
            &mut WavStream::new(bytes.as_slice(), "t.wav", None).expect("i32"),
            7,
        );
        assert_eq!(out, vec![-1.0]);
        // 32-bit float.
        let data: Vec<u8> = [0.25f32, -0.75]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let bytes = wav_bytes(3, 1, 8_000, 32, 8, &data);
        let out = read_all(
            &mut WavStream::new(bytes.as_slice(), "t.wav", None).expect("f32"),
            7,
        );
        assert_eq!(out, vec![0.25, -0.75]);
    }

    #[test]
    fn other_chunks_are_skipped_with_their_pad_byte() {
        let data = pcm16(&[100, 200]);
        let plain = wav_bytes(1, 1, 16_000, 16, 4, &data);
        // Insert a 3-byte LIST chunk (plus pad) after the fmt chunk.
        let mut bytes = plain[..36].to_vec();
        bytes.extend_from_slice(b"LIST\x03\x00\x00\x00abc\x00");
        bytes.extend_from_slice(&plain[36..]);
        let out = read_all(
            &mut WavStream::new(bytes.as_slice(), "t.wav", None).expect("header"),
            8,
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_nan_or_infinite_float_sample_is_an_error_not_audio() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let data: Vec<u8> = [0.25f32, -0.5, bad, 0.1]
                .iter()
                .flat_map(|s| s.to_le_bytes())
                .collect();
            let bytes = wav_bytes(3, 2, 16_000, 32, data.len() as u32, &data);
            let mut stream = WavStream::new(io::Cursor::new(bytes), "t.wav", None).expect("header");
            let mut out = Vec::new();
            let error = stream.read_frames(&mut out, 10).expect_err("not audio");
            assert_eq!(error.kind(), io::ErrorKind::InvalidData);
            assert!(error.to_string().contains("frame 1"), "{error}");
            assert!(out.is_empty(), "nothing of the bad chunk is handed out");
        }
    }

    #[test]
    fn bad_headers_are_errors_with_reasons() {
        let good = wav_bytes(1, 1, 16_000, 16, 0, &pcm16(&[1, 2]));
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (Vec::new(), "cut short"),
            (good[..7].to_vec(), "cut short"),
            (good[..30].to_vec(), "cut short"),
            (b"OggS\0\0\0\0WAVE".to_vec(), "not \"RIFF\""),
            (
                [&b"RIFF\0\0\0\0AVI "[..], &good[12..]].concat(),
                "not \"WAVE\"",
            ),
            (good[..36].to_vec(), "no data chunk"),
            (wav_bytes(1, 1, 4_000, 16, 0, &[]), "4000 Hz"),
            (wav_bytes(1, 1, 1_000_000, 16, 0, &[]), "1000000 Hz"),
            (wav_bytes(1, 0, 16_000, 16, 0, &[]), "zero channels"),
            (wav_bytes(1, 200, 16_000, 16, 0, &[]), "200 channels"),
            (wav_bytes(2, 1, 16_000, 16, 0, &[]), "format tag 0x0002"),
            (wav_bytes(1, 1, 16_000, 12, 0, &[]), "12-bit"),
            (wav_bytes(3, 1, 16_000, 64, 0, &[]), "64-bit float"),
        ];
        for (bytes, expected) in cases {
            let error = WavStream::new(bytes.as_slice(), "t.wav", None).expect_err(expected);
            let message = error.to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        }
        // A huge claimed fmt chunk is refused before anything is allocated for it.
        let mut bytes = good.clone();
        bytes[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        let message = WavStream::new(bytes.as_slice(), "t.wav", None)
            .expect_err("fmt")
            .to_string();
        assert!(
            message.contains("fmt chunk is 4294967295 bytes"),
            "{message}"
        );
        // A huge claimed other chunk is skipped by reading, and the end is noticed.
        let mut bytes = good[..36].to_vec();
        bytes.extend_from_slice(b"junk\xFF\xFF\xFF\x00");
        let message = WavStream::new(bytes.as_slice(), "t.wav", None)
            .expect_err("junk")
            .to_string();
        assert!(
            message.contains("cut short") || message.contains("MiB"),
            "{message}"
        );
    }
}
