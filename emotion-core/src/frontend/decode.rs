//! Decoding WAV files and buffers into mono `f32` samples at their own sample rate.
//!
//! The header is read and checked first ([`super::header`]), including the duration
//! limit, so nothing is allocated for a file that is too long or claims more data than
//! it has. hound then decodes the samples; integers are scaled to `[-1, 1)` by dividing by
//! `2^(bits-1)`, and channels are averaged into one (both in `f64`, rounded once to `f32`).
//! (32-bit integers within 2^-25 of full scale round up to exactly 1.0 in `f32`, as they
//! do in soundfile/librosa.)

use std::io::{Cursor, Read};
use std::path::Path;

use super::error::AudioError;
use super::header::{SampleFormat, WavHeader, open_file, read_header};

/// A decoded WAV file: mono samples at the file's own rate, plus what the file was.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    /// Mono samples (channels averaged), nominally in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// The file's sample rate in Hz.
    pub sample_rate: u32,
    /// The number of channels in the file (before mixing to mono).
    pub channels: u16,
    /// Valid bits per sample in the file.
    pub bits: u16,
    /// Integer or float samples in the file.
    pub format: SampleFormat,
}

impl DecodedAudio {
    /// Duration in seconds.
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Decodes the WAV file at `path` to mono, refusing audio longer than `max_seconds`.
pub fn decode_file(path: impl AsRef<Path>, max_seconds: f32) -> Result<DecodedAudio, AudioError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let (reader, total_len) = open_file(path, &name)?;
    decode_reader(reader, total_len, &name, max_seconds)
}

/// Decodes an in-memory WAV file to mono, refusing audio longer than `max_seconds`.
/// `name` identifies the data in error messages.
pub fn decode_bytes(
    bytes: &[u8],
    name: &str,
    max_seconds: f32,
) -> Result<DecodedAudio, AudioError> {
    decode_reader(Cursor::new(bytes), bytes.len() as u64, name, max_seconds)
}

/// Fails with [`AudioError::TooLong`] unless `seconds <= limit` (a NaN limit refuses all).
pub(crate) fn check_duration(name: &str, seconds: f64, limit: f32) -> Result<(), AudioError> {
    if seconds <= f64::from(limit) {
        Ok(())
    } else {
        Err(AudioError::TooLong {
            name: name.to_owned(),
            seconds,
            limit,
        })
    }
}

fn decode_reader<R: Read>(
    mut reader: R,
    total_len: u64,
    name: &str,
    max_seconds: f32,
) -> Result<DecodedAudio, AudioError> {
    let header = read_header(&mut reader, Some(total_len), name)?;
    let info = header.info();
    check_duration(name, info.duration_seconds, max_seconds)?;
    // The header leaves the reader at the first byte of data; hound reads the whole
    // frames of it.
    let data = reader.take(info.frames * header.format.block_align() as u64);
    let prefix = header.hound_prefix();
    let stream = Cursor::new(prefix.as_slice()).chain(data);
    let mut wav = hound::WavReader::new(stream).map_err(|error| AudioError::CorruptHeader {
        name: name.to_owned(),
        reason: format!("hound rejects it: {error}"),
    })?;

    let samples = match info.format {
        SampleFormat::Int => {
            // Exact: a power of two, and every sample fits in f64's 53-bit mantissa.
            let scale = 1.0 / 2f64.powi(i32::from(info.bits) - 1);
            let values = wav
                .samples::<i32>()
                .map(|s| s.map(|v| f64::from(v) * scale));
            mix_down(values, &header, name)?
        }
        SampleFormat::Float => {
            let values = wav.samples::<f32>().map(|s| s.map(f64::from));
            mix_down(values, &header, name)?
        }
    };
    Ok(DecodedAudio {
        samples,
        sample_rate: info.sample_rate,
        channels: info.channels,
        bits: info.bits,
        format: info.format,
    })
}

/// Averages interleaved samples into mono, stopping at the first non-finite sample.
fn mix_down(
    values: impl Iterator<Item = hound::Result<f64>>,
    header: &WavHeader,
    name: &str,
) -> Result<Vec<f32>, AudioError> {
    let channels = usize::from(header.format.channels);
    // The header check guarantees the file holds this many frames, and the duration
    // check bounds them, so this allocation is backed by real data.
    let frames = usize::try_from(header.frames().unwrap_or(0)).unwrap_or(0);
    let mut mono = Vec::with_capacity(frames);
    let mut sum = 0.0f64;
    let mut in_frame = 0usize;
    for (index, value) in values.enumerate() {
        let value = value.map_err(|error| hound_sample_error(error, header, index, name))?;
        if !value.is_finite() {
            return Err(AudioError::NonFinite {
                name: name.to_owned(),
                index: index / channels,
                value: value as f32,
            });
        }
        sum += value;
        in_frame += 1;
        if in_frame == channels {
            mono.push((sum / channels as f64) as f32);
            sum = 0.0;
            in_frame = 0;
        }
    }
    Ok(mono)
}

/// Maps an error hound reports while reading sample number `index` (interleaved).
///
/// The header check has made sure the data is all there, so these should not happen
/// unless the file changes while it is read.
fn hound_sample_error(
    error: hound::Error,
    header: &WavHeader,
    index: usize,
    name: &str,
) -> AudioError {
    match error {
        hound::Error::IoError(_) => {
            let bytes_per_sample = u64::from(header.format.container);
            AudioError::TruncatedData {
                name: name.to_owned(),
                claimed_bytes: header.data_len.unwrap_or(0),
                available_bytes: (index as u64).saturating_mul(bytes_per_sample),
            }
        }
        other => AudioError::UnsupportedEncoding {
            name: name.to_owned(),
            found: format!(
                "{}-bit {:?} samples that hound cannot decode ({other})",
                header.format.bits, header.format.format
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::error::AudioErrorKind;
    use crate::frontend::test_wav::{RawWav, write_float_wav, write_int_wav};

    const NO_LIMIT: f32 = 60.0;

    /// Integer test values spanning the range of `bits`, including both extremes.
    fn int_values(bits: u16) -> Vec<i32> {
        let max = ((1i64 << (bits - 1)) - 1) as i32;
        let min = (-(1i64 << (bits - 1))) as i32;
        vec![0, 1, -1, max, min, max / 2, min / 3, 12, -100]
    }

    fn decode_written(write: impl FnOnce(&Path)) -> DecodedAudio {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("clip.wav");
        write(&path);
        decode_file(&path, NO_LIMIT).expect("decodes")
    }

    #[test]
    fn integer_mono_round_trips_scaled_by_two_to_the_bits_minus_one() {
        for bits in [8u16, 16, 24, 32] {
            let values = int_values(bits);
            let audio = decode_written(|p| write_int_wav(p, 22_050, 1, bits, &values));
            assert_eq!(
                (audio.sample_rate, audio.channels, audio.bits, audio.format),
                (22_050, 1, bits, SampleFormat::Int)
            );
            let scale = 2f64.powi(i32::from(bits) - 1);
            let expected: Vec<f32> = values
                .iter()
                .map(|&v| (f64::from(v) / scale) as f32)
                .collect();
            assert_eq!(audio.samples, expected, "{bits}-bit");
            assert_eq!(audio.samples[4], -1.0, "{bits}-bit minimum is exactly -1");
            if bits <= 24 {
                assert!(audio.samples[3] < 1.0, "{bits}-bit maximum stays below 1");
            } else {
                // (2^31 - 1) / 2^31 needs 31 mantissa bits; in f32 it rounds to 1.0.
                assert_eq!(audio.samples[3], 1.0);
            }
        }
    }

    #[test]
    fn eight_bit_is_unsigned_on_disk_but_centred_when_decoded() {
        let audio = decode_written(|p| write_int_wav(p, 8_000, 1, 8, &[0, 127, -128, 64]));
        assert_eq!(audio.samples, vec![0.0, 127.0 / 128.0, -1.0, 0.5]);
    }

    #[test]
    fn float_mono_round_trips_exactly() {
        let values = vec![0.0f32, 0.25, -0.5, 1.0, -1.0, 1.5, 1e-8, -0.333_333_34];
        let audio = decode_written(|p| write_float_wav(p, 48_000, 1, &values));
        assert_eq!(
            (audio.sample_rate, audio.channels, audio.bits, audio.format),
            (48_000, 1, 32, SampleFormat::Float)
        );
        assert_eq!(audio.samples, values);
    }

    #[test]
    fn plain_float_format_tag_three_decodes() {
        let values = [0.5f32, -0.25, 0.125];
        let audio = decode_bytes(
            &RawWav::float32(16_000, &values).to_bytes(),
            "f.wav",
            NO_LIMIT,
        )
        .expect("decodes");
        assert_eq!(audio.samples, values);
    }

    #[test]
    fn stereo_is_averaged_to_mono() {
        for bits in [8u16, 16, 24, 32] {
            let full = 1i64 << (bits - 1);
            let half = (full / 2) as i32;
            let quarter = (full / 4) as i32;
            // Frames: (half, -half), (half, 0), (quarter, half), (-full, -full).
            let min = -full as i32;
            let interleaved = [half, -half, half, 0, quarter, half, min, min];
            let audio = decode_written(|p| write_int_wav(p, 16_000, 2, bits, &interleaved));
            assert_eq!(audio.channels, 2);
            assert_eq!(audio.samples, vec![0.0, 0.25, 0.375, -1.0], "{bits}-bit");
        }
        let audio = decode_written(|p| write_float_wav(p, 16_000, 2, &[0.5, 0.25, -1.0, 0.0]));
        assert_eq!(audio.samples, vec![0.375, -0.5]);
    }

    #[test]
    fn four_channels_are_averaged_to_mono() {
        // 16-bit, 4 channels: hound writes WAVE_FORMAT_EXTENSIBLE.
        let frames = [
            [16384, 0, 0, 0],
            [8192, 8192, 8192, 8192],
            [-32768, 32767, -32768, 32767],
        ];
        let interleaved: Vec<i32> = frames.iter().flatten().copied().collect();
        let audio = decode_written(|p| write_int_wav(p, 44_100, 4, 16, &interleaved));
        assert_eq!(audio.channels, 4);
        assert_eq!(audio.samples, vec![0.125, 0.25, -1.0 / 65_536.0]);

        let floats = [0.1f32, 0.2, 0.3, 0.4, -1.0, -1.0, 1.0, 1.0];
        let audio = decode_written(|p| write_float_wav(p, 44_100, 4, &floats));
        let sum: f64 = floats[..4].iter().map(|&x| f64::from(x)).sum();
        assert_eq!(audio.samples, vec![(sum / 4.0) as f32, 0.0]);
    }

    #[test]
    fn extensible_24_bit_in_4_byte_containers_decodes() {
        let values: [i32; 3] = [0x40_0000, -0x80_0000, 1];
        let data = values
            .iter()
            .flat_map(|v| v.to_le_bytes()) // the top byte is padding
            .collect();
        let wav = RawWav {
            format_tag: 0xFFFE,
            extensible: Some((1, 24)),
            ..RawWav::pcm(16_000, 1, 32, data)
        };
        let audio = decode_bytes(&wav.to_bytes(), "ext24.wav", NO_LIMIT).expect("decodes");
        assert_eq!(audio.bits, 24);
        assert_eq!(audio.samples, vec![0.5, -1.0, 1.0 / 8_388_608.0]);
    }

    #[test]
    fn chunks_before_data_are_skipped_including_odd_sized_ones() {
        // hound alone misreads this file: it ignores the pad byte after the odd LIST
        // chunk and reads only 4 bytes of a 12-byte fact chunk.
        let mut wav = RawWav::pcm16(16_000, &[100, -200, 300]);
        wav.extra_chunks = vec![
            (*b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00".to_vec()),
            (*b"fact", vec![3, 0, 0, 0, 9, 9, 9, 9, 9, 9, 9, 9]),
        ];
        assert!(hound::WavReader::new(Cursor::new(wav.to_bytes())).is_err());
        let audio = decode_bytes(&wav.to_bytes(), "chunks.wav", NO_LIMIT).expect("decodes");
        let expected: Vec<f32> = [100.0f32, -200.0, 300.0]
            .iter()
            .map(|v| v / 32768.0)
            .collect();
        assert_eq!(audio.samples, expected);
    }

    #[test]
    fn bytes_after_the_data_chunk_are_ignored() {
        let mut bytes = RawWav::pcm16(16_000, &[1, 2]).to_bytes();
        bytes.extend_from_slice(b"LIST\x04\x00\x00\x00abcd");
        let audio = decode_bytes(&bytes, "trailer.wav", NO_LIMIT).expect("decodes");
        assert_eq!(audio.samples.len(), 2);
    }

    // --- Bad input: one test per kind ---

    fn kind_of_bytes(bytes: &[u8]) -> AudioErrorKind {
        let error = decode_bytes(bytes, "bad.wav", NO_LIMIT).expect_err("must fail");
        assert_eq!(error.name(), "bad.wav");
        eprintln!("{:?}: {error}", error.kind());
        error.kind()
    }

    #[test]
    fn zero_byte_file_is_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("empty.wav");
        std::fs::write(&path, b"").expect("write");
        let error = decode_file(&path, NO_LIMIT).expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::Empty);
        assert!(error.to_string().contains("empty.wav"), "{error}");
    }

    #[test]
    fn data_chunk_without_samples_is_empty() {
        assert_eq!(
            kind_of_bytes(&RawWav::pcm16(16_000, &[]).to_bytes()),
            AudioErrorKind::Empty
        );
    }

    #[test]
    fn partial_riff_header_is_corrupt() {
        let full = RawWav::pcm16(16_000, &[1, 2, 3]).to_bytes();
        for len in [1, 4, 8, 11, 12, 20, 30, 43] {
            assert_eq!(
                kind_of_bytes(&full[..len]),
                AudioErrorKind::CorruptHeader,
                "{len} bytes"
            );
        }
    }

    #[test]
    fn random_garbage_is_corrupt() {
        // A fixed xorshift stream, so the test is reproducible.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        assert_eq!(kind_of_bytes(&garbage), AudioErrorKind::CorruptHeader);
        // Garbage after a valid RIFF/WAVE preamble: chunk sizes are random too.
        let mut riff_garbage = b"RIFF\xff\xff\xff\xffWAVE".to_vec();
        riff_garbage.extend_from_slice(&garbage);
        assert_eq!(kind_of_bytes(&riff_garbage), AudioErrorKind::CorruptHeader);
    }

    #[test]
    fn a_law_mu_law_and_adpcm_are_unsupported_encodings() {
        for tag in [6u16, 7, 2, 0x11, 0x55] {
            let wav = RawWav {
                format_tag: tag,
                ..RawWav::pcm(8_000, 1, 8, vec![0; 16])
            };
            assert_eq!(
                kind_of_bytes(&wav.to_bytes()),
                AudioErrorKind::UnsupportedEncoding,
                "tag {tag}"
            );
        }
        let wav = RawWav {
            format_tag: 0xFFFE,
            extensible: Some((6, 8)),
            ..RawWav::pcm(8_000, 1, 8, vec![0; 16])
        };
        let error = decode_bytes(&wav.to_bytes(), "alaw.wav", NO_LIMIT).expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::UnsupportedEncoding);
        assert!(error.to_string().contains("A-law"), "{error}");
    }

    #[test]
    fn float64_and_12_bit_are_unsupported_encodings() {
        let float64 = RawWav {
            format_tag: 3,
            ..RawWav::pcm(16_000, 1, 64, vec![0; 64])
        };
        let error = decode_bytes(&float64.to_bytes(), "f64.wav", NO_LIMIT).expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::UnsupportedEncoding);
        assert!(error.to_string().contains("64-bit float"), "{error}");

        let twelve = RawWav {
            block_align: Some(2),
            ..RawWav::pcm(16_000, 1, 12, vec![0; 64])
        };
        assert_eq!(
            kind_of_bytes(&twelve.to_bytes()),
            AudioErrorKind::UnsupportedEncoding
        );
        let twelve_extensible = RawWav {
            format_tag: 0xFFFE,
            extensible: Some((1, 12)),
            ..RawWav::pcm(16_000, 1, 16, vec![0; 64])
        };
        assert_eq!(
            kind_of_bytes(&twelve_extensible.to_bytes()),
            AudioErrorKind::UnsupportedEncoding
        );
    }

    #[test]
    fn zero_and_absurd_sample_rates_are_unsupported() {
        for rate in [0u32, 1, 7_999, 384_001, u32::MAX] {
            let wav = RawWav::pcm16(rate, &[1, 2, 3]);
            assert_eq!(
                kind_of_bytes(&wav.to_bytes()),
                AudioErrorKind::UnsupportedSampleRate,
                "{rate} Hz"
            );
        }
    }

    #[test]
    fn zero_channels_is_corrupt() {
        let wav = RawWav {
            block_align: Some(2),
            ..RawWav::pcm(16_000, 0, 16, vec![0; 8])
        };
        assert_eq!(
            kind_of_bytes(&wav.to_bytes()),
            AudioErrorKind::CorruptHeader
        );
    }

    #[test]
    fn truncated_data_chunk_is_reported_not_shortened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cut.wav");
        write_int_wav(&path, 16_000, 1, 16, &vec![1000; 16_000]);
        let bytes = std::fs::read(&path).expect("read");
        // hound writes a 44-byte header: data starts at 44 and holds 32 000 bytes.
        std::fs::write(&path, &bytes[..bytes.len() - 1001]).expect("write");
        let error = decode_file(&path, NO_LIMIT).expect_err("must fail");
        eprintln!("{error}");
        match error {
            AudioError::TruncatedData {
                claimed_bytes,
                available_bytes,
                ..
            } => assert_eq!((claimed_bytes, available_bytes), (32_000, 30_999)),
            other => panic!("expected TruncatedData, got {other:?}"),
        }
    }

    #[test]
    fn nan_and_infinity_in_float_wavs_are_non_finite() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut values = vec![0.1f32; 10];
            values[7] = bad;
            values[9] = f32::NAN;
            let error = decode_bytes(
                &RawWav::float32(16_000, &values).to_bytes(),
                "nan.wav",
                NO_LIMIT,
            )
            .expect_err("must fail");
            match &error {
                AudioError::NonFinite { index, .. } => assert_eq!(*index, 7, "{bad}"),
                other => panic!("expected NonFinite, got {other:?}"),
            }
        }
        // In stereo the index counts frames.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stereo-nan.wav");
        write_float_wav(&path, 16_000, 2, &[0.0, 0.0, 0.0, 0.0, 0.0, f32::INFINITY]);
        match decode_file(&path, NO_LIMIT) {
            Err(AudioError::NonFinite { index, value, .. }) => {
                assert_eq!((index, value), (2, f32::INFINITY));
            }
            other => panic!("expected NonFinite, got {other:?}"),
        }
    }

    #[test]
    fn longer_than_the_limit_is_too_long() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("two-seconds.wav");
        write_int_wav(&path, 8_000, 1, 16, &vec![0; 16_000]);
        match decode_file(&path, 1.0) {
            Err(AudioError::TooLong { seconds, limit, .. }) => {
                assert_eq!((seconds, limit), (2.0, 1.0))
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert!(
            decode_file(&path, 2.0).is_ok(),
            "exactly at the limit is fine"
        );
        assert_eq!(
            decode_file(&path, f32::NAN).expect_err("NaN limit").kind(),
            AudioErrorKind::TooLong
        );
    }

    #[test]
    fn gigantic_claimed_data_fails_fast_without_allocating_it() {
        // 4 GiB of claimed 8-bit mono at 8 kHz: 6 days, in a 46-byte file.
        let wav = RawWav {
            claimed_data_len: Some(u32::MAX - 1),
            ..RawWav::pcm(8_000, 1, 8, vec![128, 128])
        };
        let bytes = wav.to_bytes();
        let started = std::time::Instant::now();
        let kind = kind_of_bytes(&bytes);
        assert!(
            matches!(
                kind,
                AudioErrorKind::TruncatedData | AudioErrorKind::TooLong
            ),
            "{kind:?}"
        );
        // Even with no duration limit it must not allocate gigabytes.
        let error = decode_bytes(&bytes, "huge.wav", f32::INFINITY).expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::TruncatedData);
        assert!(started.elapsed().as_secs_f64() < 1.0);
    }

    #[test]
    fn missing_file_is_io() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("no-such-file.wav");
        let error = decode_file(&path, NO_LIMIT).expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::Io);
        assert!(error.to_string().contains("no-such-file.wav"), "{error}");
        // A directory is not a WAV file either.
        assert_eq!(
            decode_file(dir.path(), NO_LIMIT).expect_err("dir").kind(),
            AudioErrorKind::Io
        );
    }
}
