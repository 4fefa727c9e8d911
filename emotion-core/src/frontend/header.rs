//! Reading and checking a WAV header: the one RIFF chunk walk, and the one set of checks,
//! behind every WAV the project reads (a clip on the host or the board, a file or a pipe
//! the board listens to), so that all of them accept and refuse the same files.
//!
//! [`read_header`] reads front to back from any reader (a pipe cannot seek) up to the
//! first byte of sample data, and checks everything the header alone can tell: the
//! encoding, the rate and channels (within [`super::limits`]), and, when the input's length
//! is known (a file), that the data chunk is all there. Nothing is allocated from a size
//! the input claims: the `fmt ` chunk is bounded and other chunks are skipped by reading.
//! A data size of 0 or `0xFFFFFFFF` (what streaming writers put) means "to the end".
//! A partial frame at the end of the data is dropped by every reader.
//!
//! hound decodes clip samples. It walks chunks less carefully (it ignores the pad byte
//! after odd-sized chunks and reads only 4 bytes of a `fact` chunk), so it is handed
//! [`WavHeader::hound_prefix`], a minimal header built from the `fmt ` chunk found here,
//! followed by the data; hound's own checks of that prefix are part of the verdict here.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::error::AudioError;
use super::limits::{
    MAX_CHANNELS, MAX_FMT_LEN, MAX_HEADER_BYTES, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE,
};

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

/// How the samples are laid out, from a checked `fmt ` chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Valid bits per sample.
    pub bits: u16,
    /// Integer or float.
    pub format: SampleFormat,
    /// Bytes per sample in the data.
    pub container: u16,
}

impl WavFormat {
    /// Bytes per frame (all channels).
    pub fn block_align(&self) -> usize {
        usize::from(self.channels) * usize::from(self.container)
    }

    /// For people: "24414 Hz, 1 ch, 16-bit" or "48000 Hz, 2 ch, 32-bit float".
    pub fn describe(&self) -> String {
        let float = match self.format {
            SampleFormat::Int => "",
            SampleFormat::Float => " float",
        };
        format!(
            "{} Hz, {} ch, {}-bit{float}",
            self.sample_rate, self.channels, self.bits
        )
    }
}

/// A checked WAV header: the format, and where the data is.
#[derive(Debug, Clone)]
pub struct WavHeader {
    /// How the samples are laid out.
    pub format: WavFormat,
    /// Offset of the first byte of sample data from the start of the input.
    pub data_offset: u64,
    /// Bytes of sample data: the data chunk's size, or for a size left open the rest of
    /// the input when its length is known; `None`: read until the input ends.
    pub data_len: Option<u64>,
    /// The `fmt ` chunk's body.
    fmt: Vec<u8>,
}

impl WavHeader {
    /// Whole frames in the data, when its length is known.
    pub fn frames(&self) -> Option<u64> {
        let block = self.format.block_align() as u64;
        self.data_len.map(|len| len / block)
    }

    /// What the header says, as [`probe_wav`] reports it (0 frames when open-ended).
    pub fn info(&self) -> WavInfo {
        let frames = self.frames().unwrap_or(0);
        WavInfo {
            sample_rate: self.format.sample_rate,
            channels: self.format.channels,
            bits: self.format.bits,
            format: self.format.format,
            frames,
            duration_seconds: frames as f64 / f64::from(self.format.sample_rate),
        }
    }

    /// A minimal RIFF/WAVE header (the part of our `fmt ` chunk hound reads, then a `data`
    /// chunk header of the whole frames of `data_len`) that, followed by the data, is a
    /// WAV stream hound reads exactly as we understood the input.
    pub(crate) fn hound_prefix(&self) -> Vec<u8> {
        let block = self.format.block_align() as u64;
        let whole = self.data_len.unwrap_or(0) / block * block;
        // Over 4 GiB only with an open size; the duration limit refuses that long before.
        let data_len = u32::try_from(whole).unwrap_or((u32::MAX as u64 / block * block) as u32);
        hound_prefix(&self.fmt, data_len)
    }
}

/// Reads only the header of the WAV file at `path` and checks it.
///
/// Fails, like decoding would, on a missing file, an empty or corrupt header, an
/// unsupported encoding, rate or channel count, no samples, or a data chunk longer than
/// the file. It does not read the samples, so it cannot see NaNs in float files.
pub fn probe_wav(path: impl AsRef<Path>) -> Result<WavInfo, AudioError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let (mut reader, total_len) = open_file(path, &name)?;
    Ok(read_header(&mut reader, Some(total_len), &name)?.info())
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

/// Reads and checks a WAV header from the reader's position up to the first byte of
/// sample data, where it leaves the reader. `total_len` is the input's length in bytes
/// when known (a file), `None` for a pipe; `name` is used in errors.
pub fn read_header<R: Read>(
    reader: &mut R,
    total_len: Option<u64>,
    name: &str,
) -> Result<WavHeader, AudioError> {
    let corrupt = |reason: String| AudioError::CorruptHeader {
        name: name.to_owned(),
        reason,
    };
    let unsupported = |found: &str| AudioError::UnsupportedEncoding {
        name: name.to_owned(),
        found: found.to_owned(),
    };
    if total_len == Some(0) {
        return Err(AudioError::Empty {
            name: name.to_owned(),
            reason: "the file is zero bytes long",
        });
    }

    let mut riff = [0u8; 12];
    read_exact(reader, &mut riff, name, "the RIFF header")?;
    match &riff[0..4] {
        b"RIFF" => {}
        b"RF64" => return Err(unsupported("RF64 (a WAV over 4 GiB)")),
        b"RIFX" => return Err(unsupported("big-endian WAV (RIFX)")),
        other => {
            return Err(corrupt(format!(
                "it starts with {:?}, not \"RIFF\" (raw PCM needs a WAV header: record with \
                 `arecord -t wav` or convert with `sox`)",
                String::from_utf8_lossy(other)
            )));
        }
    }
    if &riff[8..12] != b"WAVE" {
        return Err(corrupt(format!(
            "the RIFF form type is {:?}, not \"WAVE\"",
            String::from_utf8_lossy(&riff[8..12])
        )));
    }

    // Walk the chunks until the data chunk; `fmt ` must come before it.
    let mut offset: u64 = 12;
    let mut skipped: u64 = 0;
    let mut fmt: Option<Vec<u8>> = None;
    let stated_len = loop {
        let mut chunk = [0u8; 8];
        read_exact(
            reader,
            &mut chunk,
            name,
            "a chunk header (no data chunk found)",
        )?;
        offset += 8;
        let id = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        // Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
        let padded = u64::from(len) + u64::from(len & 1);
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
                skip(reader, padded - u64::from(len), name, "the fmt chunk")?;
                fmt = Some(body);
            }
            _ => {
                skipped += padded + 8;
                if skipped > MAX_HEADER_BYTES {
                    return Err(corrupt(format!(
                        "more than {} MiB of other chunks before the data chunk \
                         (chunk {:?} claims {len} bytes)",
                        MAX_HEADER_BYTES >> 20,
                        String::from_utf8_lossy(&id)
                    )));
                }
                skip(reader, padded, name, "a chunk before the data")?;
            }
        }
        offset += padded;
    };
    let Some(fmt) = fmt else {
        return Err(corrupt(
            "the data chunk comes before any fmt chunk".to_owned(),
        ));
    };
    let format = FmtChunk::parse(&fmt, name)?.check(name)?;

    let data_len = match (stated_len, total_len) {
        // Left open by a streaming writer: to the end.
        (0 | u32::MAX, None) => None,
        (0 | u32::MAX, Some(total)) => Some(total.saturating_sub(offset)),
        (len, total) => {
            let available = total.map(|total| total.saturating_sub(offset));
            if let Some(available) = available.filter(|&a| u64::from(len) > a) {
                return Err(AudioError::TruncatedData {
                    name: name.to_owned(),
                    claimed_bytes: u64::from(len),
                    available_bytes: available,
                });
            }
            Some(u64::from(len))
        }
    };
    let header = WavHeader {
        format,
        data_offset: offset,
        data_len,
        fmt,
    };
    if header.frames() == Some(0) {
        return Err(AudioError::Empty {
            name: name.to_owned(),
            reason: "the data chunk holds no samples",
        });
    }
    // Let hound check the header it will decode now, so every reader agrees.
    if let Err(error) = hound::WavReader::new(io::Cursor::new(header.hound_prefix())) {
        return Err(corrupt(format!("hound rejects it: {error}")));
    }
    Ok(header)
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

    /// Checks that we can decode this format and says what it is.
    fn check(&self, name: &str) -> Result<WavFormat, AudioError> {
        let corrupt = |reason: String| AudioError::CorruptHeader {
            name: name.to_owned(),
            reason,
        };
        let unsupported = |found: String| AudioError::UnsupportedEncoding {
            name: name.to_owned(),
            found,
        };
        let channels = self.channels;
        if channels == 0 {
            return Err(corrupt("the fmt chunk says zero channels".to_owned()));
        }
        if channels > MAX_CHANNELS {
            return Err(AudioError::TooManyChannels {
                name: name.to_owned(),
                channels,
            });
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
        if self.block_align == 0 || !self.block_align.is_multiple_of(channels) {
            return Err(corrupt(format!(
                "a block of {} bytes cannot hold {channels} channels",
                self.block_align
            )));
        }
        let container = self.block_align / channels;
        if u32::from(bits) > u32::from(container) * 8 || bits == 0 {
            return Err(corrupt(format!(
                "{bits} bits per sample do not fit a block of {} bytes for {channels} channels",
                self.block_align
            )));
        }
        if !is_supported(format, container, bits) {
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
        Ok(WavFormat {
            sample_rate: self.sample_rate,
            channels,
            bits,
            format,
            container,
        })
    }
}

/// A minimal WAV header for hound: RIFF, WAVE, the part of the `fmt ` chunk body `fmt`
/// that hound reads, and a `data` chunk header of `data_len` bytes.
fn hound_prefix(fmt: &[u8], data_len: u32) -> Vec<u8> {
    // hound insists on exact fmt sizes (16, 18 or 40 for PCM; 16 or 18 for float;
    // 40 for extensible). The first 16 bytes say everything for plain PCM and float,
    // and the first 40 for extensible; extra bytes (e.g. a nonzero cbSize) are not ours
    // to care about.
    let fmt_len = if le_u16(fmt, 0) == Some(WAVE_FORMAT_EXTENSIBLE) {
        40
    } else {
        16
    };
    let fmt = &fmt[..fmt_len.min(fmt.len())];
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

/// The error for an input that ends inside `what`.
fn cut_short(name: &str, what: &str) -> AudioError {
    AudioError::CorruptHeader {
        name: name.to_owned(),
        reason: format!("it ends inside {what}; the header is cut short"),
    }
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
            cut_short(name, what)
        } else {
            AudioError::Io {
                name: name.to_owned(),
                source,
            }
        }
    })
}

/// Skips `len` bytes by reading them (a pipe cannot seek).
fn skip<R: Read>(reader: &mut R, len: u64, name: &str, what: &str) -> Result<(), AudioError> {
    let copied = io::copy(&mut reader.by_ref().take(len), &mut io::sink()).map_err(|source| {
        AudioError::Io {
            name: name.to_owned(),
            source,
        }
    })?;
    if copied < len {
        return Err(cut_short(name, what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::error::AudioErrorKind;
    use crate::frontend::test_wav::{RawWav, write_int_wav};

    /// The header of `bytes`, read as a file (`known`) or as a pipe.
    fn header(bytes: &[u8], known: bool) -> Result<WavHeader, AudioError> {
        let total = known.then_some(bytes.len() as u64);
        read_header(&mut io::Cursor::new(bytes), total, "t.wav")
    }

    fn kind(bytes: &[u8], known: bool) -> Option<AudioErrorKind> {
        header(bytes, known).err().map(|e| e.kind())
    }

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
        let header = read_header(
            &mut io::Cursor::new(&bytes),
            Some(bytes.len() as u64),
            "nan.wav",
        )
        .expect("header is fine");
        assert_eq!(header.frames(), Some(8));
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
        let error = read_header(
            &mut io::Cursor::new(&bytes),
            Some(bytes.len() as u64),
            "rate.wav",
        )
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

    #[test]
    fn the_limits_hold_for_files_and_pipes_alike() {
        let rate = |r| RawWav::pcm16(r, &[1, 2]).to_bytes();
        let channels = |c| RawWav::pcm(16_000, c, 16, vec![0; 2 * usize::from(c)]).to_bytes();
        for known in [true, false] {
            assert_eq!(
                kind(&rate(7_999), known),
                Some(AudioErrorKind::UnsupportedSampleRate)
            );
            assert_eq!(kind(&rate(8_000), known), None);
            assert_eq!(kind(&rate(384_000), known), None);
            assert_eq!(
                kind(&rate(384_001), known),
                Some(AudioErrorKind::UnsupportedSampleRate)
            );
            assert_eq!(kind(&channels(64), known), None);
            assert_eq!(
                kind(&channels(65), known),
                Some(AudioErrorKind::TooManyChannels)
            );
        }
    }

    #[test]
    fn an_open_size_is_the_rest_of_a_file_or_of_a_pipe() {
        for open in [0, u32::MAX] {
            let wav = RawWav {
                claimed_data_len: Some(open),
                ..RawWav::pcm16(16_000, &[1, 2, 3])
            };
            let bytes = wav.to_bytes();
            assert_eq!(header(&bytes, true).expect("file").frames(), Some(3));
            assert_eq!(header(&bytes, false).expect("pipe").data_len, None);
            // With nothing after the header, a file has no samples.
            let empty = RawWav {
                claimed_data_len: Some(open),
                ..RawWav::pcm16(16_000, &[])
            };
            assert_eq!(kind(&empty.to_bytes(), true), Some(AudioErrorKind::Empty));
        }
    }

    #[test]
    fn a_partial_last_frame_is_dropped_and_less_than_a_frame_is_empty() {
        // Stereo 16-bit, 6 bytes: one whole frame and half of the next.
        let wav = RawWav::pcm(16_000, 2, 16, vec![1, 0, 2, 0, 3, 0]);
        for known in [true, false] {
            let h = header(&wav.to_bytes(), known).expect("one frame");
            assert_eq!((h.data_len, h.frames()), (Some(6), Some(1)));
        }
        let wav = RawWav::pcm(16_000, 2, 16, vec![1, 0]);
        assert_eq!(kind(&wav.to_bytes(), false), Some(AudioErrorKind::Empty));
    }

    #[test]
    fn only_a_known_length_can_show_truncation() {
        let wav = RawWav {
            claimed_data_len: Some(1000),
            ..RawWav::pcm16(16_000, &[1, 2])
        };
        let bytes = wav.to_bytes();
        assert_eq!(kind(&bytes, true), Some(AudioErrorKind::TruncatedData));
        assert_eq!(header(&bytes, false).expect("pipe").data_len, Some(1000));
    }

    #[test]
    fn odd_chunks_are_skipped_with_their_pad_byte_by_reading() {
        let mut wav = RawWav::pcm16(16_000, &[1, 2]);
        wav.extra_chunks = vec![(*b"LIST", b"abc".to_vec()), (*b"fact", vec![2, 0, 0, 0])];
        let bytes = wav.to_bytes();
        // 12 + fmt 24 + LIST 8+4 + fact 8+4 + data header 8.
        assert_eq!(header(&bytes, false).expect("walks").data_offset, 68);
        // More than the limit of other chunks before the data: refused, not read.
        let mut big = RawWav::pcm16(16_000, &[1, 2]);
        big.extra_chunks = vec![(*b"junk", vec![0; 16])];
        let mut bytes = big.to_bytes();
        bytes[40..44].copy_from_slice(&(MAX_HEADER_BYTES as u32).to_le_bytes());
        let error = header(&bytes, false).expect_err("too much");
        assert!(error.to_string().contains("16 MiB"), "{error}");
    }

    #[test]
    fn headers_that_no_reader_here_takes_are_refused() {
        let good = RawWav::pcm16(16_000, &[1, 2]).to_bytes();
        let with = |at: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[at..at + bytes.len()].copy_from_slice(bytes);
            b
        };
        let cases = [
            (
                with(0, b"RF64"),
                AudioErrorKind::UnsupportedEncoding,
                "RF64",
            ),
            (
                with(0, b"RIFX"),
                AudioErrorKind::UnsupportedEncoding,
                "RIFX",
            ),
            (
                with(0, b"OggS"),
                AudioErrorKind::CorruptHeader,
                "arecord -t wav",
            ),
            // nBlockAlign 3 for two channels.
            (
                with(22, &[2, 0, 0x80, 0x3E, 0, 0, 0, 0, 0, 0, 3, 0]),
                AudioErrorKind::CorruptHeader,
                "block of 3 bytes",
            ),
            (
                good[..36].to_vec(),
                AudioErrorKind::CorruptHeader,
                "no data chunk",
            ),
            (
                good[..30].to_vec(),
                AudioErrorKind::CorruptHeader,
                "cut short",
            ),
        ];
        for (bytes, expected, words) in cases {
            for known in [true, false] {
                let error = header(&bytes, known).expect_err(words);
                assert_eq!(error.kind(), expected, "{error}");
                assert!(error.to_string().contains(words), "{error}");
            }
        }
    }
}
