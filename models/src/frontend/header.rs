//! Reading and checking a WAV file's header, without touching its samples.
//!
//! This walks the RIFF chunks up to the `data` chunk, reads the `fmt ` chunk, and checks
//! everything that can be checked from the header alone: the encoding, the sample rate,
//! and whether the file really holds as much data as its header promises. It is what
//! [`probe_wav`] runs (cheap enough to scan a whole corpus) and the first stage of
//! decoding, so that a bad header is rejected before anything is allocated for samples.
//!
//! hound does the actual sample decoding. It walks chunks less carefully than we do (it
//! ignores the pad byte after odd-sized chunks and reads only 4 bytes of a `fact` chunk),
//! so instead of letting hound parse the file again, the header stage hands it a
//! minimal header built from the `fmt ` chunk found here, followed by the data chunk.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::error::AudioError;

/// The lowest sample rate the front-end accepts, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// The highest sample rate the front-end accepts, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// The largest `fmt ` chunk we accept (the largest standard one is 40 bytes).
const MAX_FMT_LEN: u32 = 1024;

const WAVE_FORMAT_PCM: u16 = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Bytes 2..16 of every `KSDATAFORMAT_SUBTYPE_*` GUID derived from a format tag.
const SUBFORMAT_GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];

/// How the samples of a WAV file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SampleFormat {
    /// Signed integer PCM (8-bit WAV data is unsigned on disk; the decoder hides that).
    Int,
    /// IEEE 754 floating point.
    Float,
}

/// Whether the front-end decodes `bits`-bit samples of `format` in `container`-byte
/// containers (8/16/24/32-bit integer, 24-bit in 4 bytes, 32-bit float).
pub fn is_supported(format: SampleFormat, container: u16, bits: u16) -> bool {
    matches!(
        (format, container, bits),
        (SampleFormat::Int, 1, 8)
            | (SampleFormat::Int, 2, 16)
            | (SampleFormat::Int, 3, 24)
            | (SampleFormat::Int, 4, 24)
            | (SampleFormat::Int, 4, 32)
            | (SampleFormat::Float, 4, 32)
    )
}

/// What a WAV header says about the audio, as returned by [`probe_wav`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavInfo {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Number of interleaved channels.
    pub channels: u16,
    /// Valid bits per sample (8, 16, 24 or 32).
    pub bits: u16,
    /// Integer or float samples.
    pub format: SampleFormat,
    /// Number of frames (samples per channel) in the data chunk.
    pub frames: u64,
    /// `frames / sample_rate`, in seconds.
    pub duration_seconds: f64,
}

/// A checked WAV header: what it says, and where the data is.
#[derive(Debug, Clone)]
pub(crate) struct WavHeader {
    /// What the header says about the audio.
    pub info: WavInfo,
    /// Bytes per frame (all channels), from the `fmt ` chunk.
    pub block_align: u16,
    /// Offset of the first byte of sample data in the file.
    pub data_offset: u64,
    /// Length of the data chunk in bytes, as the header claims (and the file holds).
    pub data_len: u32,
    /// A minimal RIFF/WAVE header (the `fmt ` chunk we read, then the `data` chunk header)
    /// that, followed by the data chunk's bytes, is a WAV stream hound reads exactly as we
    /// understood the file.
    pub hound_prefix: Vec<u8>,
}

/// Reads only the header of the WAV file at `path` and checks it.
///
/// Fails, like decoding would, on a missing file, an empty or corrupt header, an
/// unsupported encoding or sample rate, no samples, or a data chunk longer than the file.
/// It does not read the samples, so it cannot see NaNs in float files.
pub fn probe_wav(path: impl AsRef<Path>) -> Result<WavInfo, AudioError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let (mut reader, total_len) = open_file(path, &name)?;
    Ok(read_header(&mut reader, total_len, &name)?.info)
}

/// Opens `path` for buffered reading and returns it with its length in bytes.
pub(crate) fn open_file(path: &Path, name: &str) -> Result<(BufReader<File>, u64), AudioError> {
    let io_error = |source| AudioError::Io {
        name: name.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let total_len = file.metadata().map_err(io_error)?.len();
    Ok((BufReader::new(file), total_len))
}

/// Reads and checks the header of a WAV stream of `total_len` bytes that starts at the
/// reader's current position. Leaves the reader somewhere inside the file.
pub(crate) fn read_header<R: Read + Seek>(
    reader: &mut R,
    total_len: u64,
    name: &str,
) -> Result<WavHeader, AudioError> {
    if total_len == 0 {
        return Err(AudioError::Empty {
            name: name.to_owned(),
            reason: "the file is zero bytes long",
        });
    }
    let corrupt = |reason: String| AudioError::CorruptHeader {
        name: name.to_owned(),
        reason,
    };

    let mut riff = [0u8; 12];
    read_exact(reader, &mut riff, name, "the RIFF header")?;
    if &riff[0..4] != b"RIFF" {
        return Err(corrupt(format!(
            "it starts with {:?}, not \"RIFF\"",
            String::from_utf8_lossy(&riff[0..4])
        )));
    }
    if &riff[8..12] != b"WAVE" {
        return Err(corrupt(format!(
            "the RIFF form type is {:?}, not \"WAVE\"",
            String::from_utf8_lossy(&riff[8..12])
        )));
    }

    // Walk the chunks until the data chunk; `fmt ` must come before it.
    let mut offset: u64 = 12;
    let mut fmt: Option<Vec<u8>> = None;
    let data_len = loop {
        let mut chunk = [0u8; 8];
        read_exact(
            reader,
            &mut chunk,
            name,
            "a chunk header (no data chunk found)",
        )?;
        let id = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        offset += 8;
        match &id {
            b"data" => break len,
            b"fmt " => {
                if fmt.is_some() {
                    return Err(corrupt("it has two fmt chunks".to_owned()));
                }
                if !(16..=MAX_FMT_LEN).contains(&len) {
                    return Err(corrupt(format!(
                        "the fmt chunk is {len} bytes long (expected 16 to {MAX_FMT_LEN})"
                    )));
                }
                let mut body = vec![0u8; len as usize];
                read_exact(reader, &mut body, name, "the fmt chunk")?;
                fmt = Some(body);
            }
            _ => skip(reader, u64::from(len), name)?,
        }
        // Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
        let pad = u64::from(len & 1);
        if pad == 1 {
            skip(reader, pad, name)?;
        }
        offset += u64::from(len) + pad;
    };
    let data_offset = offset;
    let Some(fmt) = fmt else {
        return Err(corrupt(
            "the data chunk comes before any fmt chunk".to_owned(),
        ));
    };

    let fmt = FmtChunk::parse(&fmt, name)?;
    let info_without_length = fmt.check(name)?;

    if data_len == 0 {
        return Err(AudioError::Empty {
            name: name.to_owned(),
            reason: "the data chunk holds no samples",
        });
    }
    let available = total_len.saturating_sub(data_offset);
    if u64::from(data_len) > available {
        return Err(AudioError::TruncatedData {
            name: name.to_owned(),
            claimed_bytes: u64::from(data_len),
            available_bytes: available,
        });
    }

    let frames = u64::from(data_len) / u64::from(fmt.block_align);
    let info = WavInfo {
        frames,
        duration_seconds: frames as f64 / f64::from(fmt.sample_rate),
        ..info_without_length
    };
    let hound_prefix = fmt.hound_prefix(data_len);
    // Let hound check the header it will decode now, so probing and decoding agree.
    if let Err(error) = hound::WavReader::new(io::Cursor::new(&hound_prefix)) {
        return Err(corrupt(format!("hound rejects it: {error}")));
    }
    Ok(WavHeader {
        info,
        block_align: fmt.block_align,
        data_offset,
        data_len,
        hound_prefix,
    })
}

/// The fields of a `fmt ` chunk that matter to us.
struct FmtChunk<'a> {
    /// The raw chunk body.
    raw: &'a [u8],
    format_tag: u16,
    channels: u16,
    sample_rate: u32,
    block_align: u16,
    bits_per_sample: u16,
}

impl<'a> FmtChunk<'a> {
    /// Reads the fixed 16-byte part of a `fmt ` chunk body (at least 16 bytes long).
    fn parse(raw: &'a [u8], name: &str) -> Result<Self, AudioError> {
        let (Some(tag), Some(channels), Some(rate), Some(block_align), Some(bits)) = (
            le_u16(raw, 0),
            le_u16(raw, 2),
            le_u32(raw, 4),
            le_u16(raw, 12),
            le_u16(raw, 14),
        ) else {
            return Err(AudioError::CorruptHeader {
                name: name.to_owned(),
                reason: "the fmt chunk is shorter than 16 bytes".to_owned(),
            });
        };
        Ok(FmtChunk {
            raw,
            format_tag: tag,
            channels,
            sample_rate: rate,
            block_align,
            bits_per_sample: bits,
        })
    }

    /// Checks that we can decode this format and returns what it says (with zero length).
    fn check(&self, name: &str) -> Result<WavInfo, AudioError> {
        let corrupt = |reason: String| AudioError::CorruptHeader {
            name: name.to_owned(),
            reason,
        };
        let unsupported = |found: String| AudioError::UnsupportedEncoding {
            name: name.to_owned(),
            found,
        };
        if self.channels == 0 {
            return Err(corrupt("the fmt chunk says zero channels".to_owned()));
        }

        // WAVE_FORMAT_EXTENSIBLE names the real format in its sub-format GUID and may
        // store fewer valid bits than the container holds.
        let (tag, bits) = if self.format_tag == WAVE_FORMAT_EXTENSIBLE {
            let (Some(valid_bits), Some(guid)) = (le_u16(self.raw, 18), self.raw.get(24..40))
            else {
                return Err(corrupt(format!(
                    "the WAVE_FORMAT_EXTENSIBLE fmt chunk is {} bytes long (expected 40)",
                    self.raw.len()
                )));
            };
            if guid[2..] != SUBFORMAT_GUID_TAIL {
                return Err(unsupported(
                    "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID".to_owned(),
                ));
            }
            let tag = u16::from_le_bytes([guid[0], guid[1]]);
            (
                tag,
                if valid_bits > 0 {
                    valid_bits
                } else {
                    self.bits_per_sample
                },
            )
        } else {
            (self.format_tag, self.bits_per_sample)
        };

        let format = match tag {
            WAVE_FORMAT_PCM => SampleFormat::Int,
            WAVE_FORMAT_IEEE_FLOAT => SampleFormat::Float,
            other => return Err(unsupported(describe_format_tag(other))),
        };
        let container = self.block_align / self.channels;
        if u32::from(bits) > u32::from(container) * 8 || bits == 0 {
            return Err(corrupt(format!(
                "{bits} bits per sample do not fit a block of {} bytes for {} channels",
                self.block_align, self.channels
            )));
        }
        let supported = is_supported(format, container, bits);
        if !supported {
            let kind = match format {
                SampleFormat::Int => "integer PCM",
                SampleFormat::Float => "float",
            };
            return Err(unsupported(format!(
                "{bits}-bit {kind} in {container}-byte containers"
            )));
        }
        if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&self.sample_rate) {
            return Err(AudioError::UnsupportedSampleRate {
                name: name.to_owned(),
                rate: self.sample_rate,
            });
        }
        Ok(WavInfo {
            sample_rate: self.sample_rate,
            channels: self.channels,
            bits,
            format,
            frames: 0,
            duration_seconds: 0.0,
        })
    }

    /// A minimal WAV header for hound: RIFF, WAVE, the part of our `fmt ` chunk that hound
    /// reads, and a `data` chunk header of `data_len` bytes.
    fn hound_prefix(&self, data_len: u32) -> Vec<u8> {
        // hound insists on exact fmt sizes (16, 18 or 40 for PCM; 16 or 18 for float;
        // 40 for extensible). The first 16 bytes say everything for plain PCM and float,
        // and the first 40 for extensible; extra bytes (e.g. a nonzero cbSize) are not ours
        // to care about.
        let fmt_len = if self.format_tag == WAVE_FORMAT_EXTENSIBLE {
            40
        } else {
            16
        };
        let fmt = &self.raw[..fmt_len.min(self.raw.len())];
        let mut prefix = Vec::with_capacity(28 + fmt.len());
        prefix.extend_from_slice(b"RIFF");
        // hound ignores the RIFF size; give a plausible one anyway.
        let riff_len = 20u32
            .saturating_add(fmt.len() as u32)
            .saturating_add(data_len);
        prefix.extend_from_slice(&riff_len.to_le_bytes());
        prefix.extend_from_slice(b"WAVE");
        prefix.extend_from_slice(b"fmt ");
        prefix.extend_from_slice(&(fmt.len() as u32).to_le_bytes());
        prefix.extend_from_slice(fmt);
        prefix.extend_from_slice(b"data");
        prefix.extend_from_slice(&data_len.to_le_bytes());
        prefix
    }
}

/// Names a non-PCM format tag for an error message.
fn describe_format_tag(tag: u16) -> String {
    let what = match tag {
        0x0002 => "Microsoft ADPCM",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MPEG layer 3 (MP3)",
        _ => "an unknown compressed format",
    };
    format!("{what} (format tag 0x{tag:04X})")
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let b = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// `read_exact`, with running out of bytes reported as a cut-short header.
fn read_exact<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    name: &str,
    what: &str,
) -> Result<(), AudioError> {
    reader.read_exact(buf).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            AudioError::CorruptHeader {
                name: name.to_owned(),
                reason: format!("the file ends inside {what}; the header is cut short"),
            }
        } else {
            AudioError::Io {
                name: name.to_owned(),
                source,
            }
        }
    })
}

/// Skips `len` bytes. Seeking past the end is not an error here; the next read notices.
fn skip<R: Seek>(reader: &mut R, len: u64, name: &str) -> Result<(), AudioError> {
    let io_error = |source| AudioError::Io {
        name: name.to_owned(),
        source,
    };
    // `len` is at most u32::MAX + 1, so it always fits an i64.
    let len = i64::try_from(len).map_err(|_| io_error(io::ErrorKind::InvalidInput.into()))?;
    reader.seek(SeekFrom::Current(len)).map_err(io_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::error::AudioErrorKind;
    use crate::frontend::test_wav::{RawWav, write_int_wav};

    #[test]
    fn probe_reads_what_the_header_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stereo24.wav");
        write_int_wav(&path, 24_414, 2, 24, &vec![0; 2 * 48_828]);
        let info = probe_wav(&path).expect("probes");
        assert_eq!(
            info,
            WavInfo {
                sample_rate: 24_414,
                channels: 2,
                bits: 24,
                format: SampleFormat::Int,
                frames: 48_828,
                duration_seconds: 2.0,
            }
        );
    }

    #[test]
    fn probe_does_not_read_the_samples() {
        // NaNs in the data are only found by decoding; the probe stops at the header.
        let wav = RawWav::float32(16_000, &[f32::NAN; 8]);
        let bytes = wav.to_bytes();
        let header = read_header(&mut io::Cursor::new(&bytes), bytes.len() as u64, "nan.wav")
            .expect("header is fine");
        assert_eq!(header.info.frames, 8);
        assert_eq!(header.data_offset, 44);
    }

    #[test]
    fn probe_fails_like_decoding_on_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("empty.wav", Vec::new(), AudioErrorKind::Empty),
            (
                "garbage.wav",
                b"not a wav file at all".to_vec(),
                AudioErrorKind::CorruptHeader,
            ),
            (
                "rate.wav",
                RawWav::pcm16(0, &[1]).to_bytes(),
                AudioErrorKind::UnsupportedSampleRate,
            ),
            (
                "cut.wav",
                RawWav {
                    claimed_data_len: Some(1000),
                    ..RawWav::pcm16(16_000, &[1, 2])
                }
                .to_bytes(),
                AudioErrorKind::TruncatedData,
            ),
        ];
        for (name, bytes, kind) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            assert_eq!(probe_wav(&path).expect_err(name).kind(), kind, "{name}");
        }
        let missing = dir.path().join("missing.wav");
        assert_eq!(
            probe_wav(&missing).expect_err("missing").kind(),
            AudioErrorKind::Io
        );
    }

    #[test]
    fn inconsistent_byte_rate_is_corrupt_as_hound_says() {
        let mut bytes = RawWav::pcm16(16_000, &[1, 2]).to_bytes();
        bytes[28..32].copy_from_slice(&12_345u32.to_le_bytes()); // nAvgBytesPerSec
        let error = read_header(&mut io::Cursor::new(&bytes), bytes.len() as u64, "rate.wav")
            .expect_err("must fail");
        assert_eq!(error.kind(), AudioErrorKind::CorruptHeader);
        assert!(error.to_string().contains("hound"), "{error}");
    }

    #[test]
    fn describes_compressed_formats_by_name() {
        assert_eq!(describe_format_tag(6), "A-law (format tag 0x0006)");
        assert_eq!(describe_format_tag(7), "µ-law (format tag 0x0007)");
        assert_eq!(
            describe_format_tag(0x1234),
            "an unknown compressed format (format tag 0x1234)"
        );
    }
}
