//! The microphone through cpal (feature `mic`).
//!
//! The device's own default input configuration is used as it is (rate, sample format,
//! channels): the ring mixes to mono and the stream resampler converts the rate, so no
//! device is refused for offering 44.1 kHz stereo i32. The data callback only writes
//! into the [`CaptureWriter`]; the error callback (which may allocate) records a lost
//! device in the shared state, and [`Capture::read`](super::Capture::read) turns that
//! into `SourceError::Lost` for the caller to retry.

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};

use super::device::{DeviceInfo, SourceError, ring_capacity};
use super::ring::{CaptureReader, CaptureState, CaptureWriter, capture_ring};

/// How long to wait for the backend to set a stream up.
const BUILD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A running input stream; dropping it stops capture.
pub(crate) struct MicStream {
    _stream: cpal::Stream,
}

/// What [`open`] hands to `Capture`.
pub(crate) struct OpenedMic {
    pub reader: CaptureReader,
    pub stream: MicStream,
    pub description: String,
    pub sample_rate: u32,
    pub device: String,
}

/// Lists the host's input devices with their default configurations.
pub(crate) fn list_devices() -> Result<Vec<DeviceInfo>, SourceError> {
    let host = host()?;
    let default_id = host.default_input_device().and_then(|d| d.id().ok());
    let devices = host.input_devices().map_err(|error| {
        SourceError::NoDevice(format!(
            "cannot list the input devices: {error} (is ALSA set up, and are you in the \
             `audio` group?)"
        ))
    })?;
    Ok(devices
        .map(|device| {
            let id = device.id().ok();
            DeviceInfo {
                name: device_name(&device),
                id: id.as_ref().map(|i| i.id().to_owned()).unwrap_or_default(),
                default_config: match device.default_input_config() {
                    Ok(config) => describe_config(&config),
                    Err(error) => format!("no default input config: {error}"),
                },
                is_default: id.is_some() && id == default_id,
            }
        })
        .collect())
}

/// Opens `wanted` (or the default input) in its default configuration and starts it.
pub(crate) fn open(wanted: Option<&str>, ring_seconds: f32) -> Result<OpenedMic, SourceError> {
    let host = host()?;
    let device = find_device(&host, wanted)?;
    let label = device_label(&device);
    let device_error = |message: String| SourceError::Device {
        device: format!("'{label}'"),
        message,
    };
    let config = device
        .default_input_config()
        .map_err(|error| device_error(hint(&error)))?;
    let sample_rate = config.sample_rate();
    let channels = config.channels();
    let format = config.sample_format();
    let (writer, reader) = capture_ring(ring_capacity(ring_seconds, sample_rate), channels);
    let state = std::sync::Arc::clone(writer.state());
    let stream_config = config.config();
    let stream = match format {
        SampleFormat::I8 => build::<i8>(&device, stream_config, writer, state),
        SampleFormat::I16 => build::<i16>(&device, stream_config, writer, state),
        SampleFormat::I24 => build::<cpal::I24>(&device, stream_config, writer, state),
        SampleFormat::I32 => build::<i32>(&device, stream_config, writer, state),
        SampleFormat::I64 => build::<i64>(&device, stream_config, writer, state),
        SampleFormat::U8 => build::<u8>(&device, stream_config, writer, state),
        SampleFormat::U16 => build::<u16>(&device, stream_config, writer, state),
        SampleFormat::U24 => build::<cpal::U24>(&device, stream_config, writer, state),
        SampleFormat::U32 => build::<u32>(&device, stream_config, writer, state),
        SampleFormat::U64 => build::<u64>(&device, stream_config, writer, state),
        SampleFormat::F32 => build::<f32>(&device, stream_config, writer, state),
        SampleFormat::F64 => build::<f64>(&device, stream_config, writer, state),
        other => {
            return Err(device_error(format!(
                "its default input format {other} is not audio samples emotion-edge can use; \
                 pick another device"
            )));
        }
    }
    .map_err(|error| device_error(hint(&error)))?;
    stream.play().map_err(|error| device_error(hint(&error)))?;
    Ok(OpenedMic {
        reader,
        stream: MicStream { _stream: stream },
        description: format!("microphone '{label}' ({})", describe_config(&config)),
        sample_rate,
        device: format!("'{label}'"),
    })
}

/// The audio host (ALSA on Linux; the first of cpal's hosts that starts).
///
/// Not `cpal::default_host()`: it panics when ALSA cannot start, e.g. when its
/// configuration does not parse (a broken `~/.asoundrc` or `/etc/asound.conf`), and a
/// board's program must say what is wrong instead.
fn host() -> Result<cpal::Host, SourceError> {
    let mut failures = Vec::new();
    for id in cpal::available_hosts() {
        match cpal::host_from_id(id) {
            Ok(host) => return Ok(host),
            Err(error) => failures.push(format!("{}: {error}", id.name())),
        }
    }
    Err(SourceError::AudioSystem(if failures.is_empty() {
        "cpal offers no audio host on this system".to_owned()
    } else {
        format!(
            "{}; check ALSA's configuration (/etc/asound.conf, ~/.asoundrc, and \
             ALSA_CONFIG_PATH if set): `arecord -L` shows what ALSA itself complains about",
            failures.join("; ")
        )
    }))
}

/// Builds the input stream for sample type `T`. The data callback converts and pushes
/// without allocating; the error callback records a lost device.
fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut writer: CaptureWriter,
    state: std::sync::Arc<CaptureState>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f64: FromSample<T>,
{
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], _info: &cpal::InputCallbackInfo| {
            writer.write_with(data, |s| s.to_sample::<f64>());
        },
        move |error: cpal::Error| match error.kind() {
            // Glitches and reroutes: capture goes on.
            cpal::ErrorKind::Xrun
            | cpal::ErrorKind::DeviceChanged
            | cpal::ErrorKind::RealtimeDenied => {}
            _ => state.fail(error.to_string()),
        },
        Some(BUILD_TIMEOUT),
    )
}

/// Finds the device to open: the default input, or the first input device whose name or
/// id contains `wanted` (case-insensitive; an exact match wins), or a PCM name the
/// backend knows without listing it (ALSA's `hw:1,0`, `plughw:CARD=Device`).
fn find_device(host: &cpal::Host, wanted: Option<&str>) -> Result<cpal::Device, SourceError> {
    let Some(wanted) = wanted.map(str::trim).filter(|w| !w.is_empty()) else {
        return host.default_input_device().ok_or_else(|| {
            SourceError::NoDevice(
                "there is no default input device; plug in a microphone, check \
                 `arecord -l`, or name one with --device"
                    .to_owned(),
            )
        });
    };
    let needle = wanted.to_lowercase();
    let mut names = Vec::new();
    let mut partial = None;
    if let Ok(devices) = host.input_devices() {
        for device in devices {
            let name = device_name(&device);
            let id = device.id().map(|i| i.id().to_owned()).unwrap_or_default();
            let (lname, lid) = (name.to_lowercase(), id.to_lowercase());
            if lname == needle || lid == needle {
                return Ok(device);
            }
            if partial.is_none() && (lname.contains(&needle) || lid.contains(&needle)) {
                partial = Some(device);
            } else {
                names.push(if id.is_empty() || id == name {
                    name
                } else {
                    format!("{name} ({id})")
                });
            }
        }
    }
    if let Some(device) = partial {
        return Ok(device);
    }
    if let Some(device) = host.device_by_id(&cpal::DeviceId::new(host.id(), wanted)) {
        return Ok(device);
    }
    let available = if names.is_empty() {
        "none found".to_owned()
    } else {
        names.join(", ")
    };
    Err(SourceError::NoDevice(format!(
        "no input device matches '{wanted}'; available: {available}"
    )))
}

/// The device's name (cpal's `Display` for a device fails, and would panic in
/// `to_string`, when the device is gone; this never does).
fn device_name(device: &cpal::Device) -> String {
    match device.description() {
        Ok(description) => description.name().to_owned(),
        Err(_) => device
            .id()
            .map(|i| i.id().to_owned())
            .unwrap_or_else(|_| "unknown device".to_owned()),
    }
}

/// The name to show: the id when it is short and specific (`hw:1,0`), else the name.
fn device_label(device: &cpal::Device) -> String {
    match device.id() {
        Ok(id) if !id.id().is_empty() && id.id().len() <= 32 => id.id().to_owned(),
        _ => device_name(device),
    }
}

fn describe_config(config: &cpal::SupportedStreamConfig) -> String {
    format!(
        "{} Hz, {} ch, {}",
        config.sample_rate(),
        config.channels(),
        config.sample_format()
    )
}

/// A cpal error with a hint for the usual causes on a Pi.
fn hint(error: &cpal::Error) -> String {
    let what = match error.kind() {
        cpal::ErrorKind::DeviceBusy => {
            "; another program is using it (close it, or use a \
                                        `dsnoop`/`plughw` PCM)"
        }
        cpal::ErrorKind::PermissionDenied => "; add the user to the `audio` group",
        cpal::ErrorKind::DeviceNotAvailable => "; is it plugged in? (`arecord -l`)",
        cpal::ErrorKind::UnsupportedConfig => "; try its `plughw:` PCM, which converts",
        _ => "",
    };
    format!("{error}{what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_device_that_does_not_exist_names_the_problem() {
        match open(Some("no-such-device-xyzzy"), 1.0) {
            Err(SourceError::NoDevice(message)) => {
                assert!(message.contains("no-such-device-xyzzy"), "{message}")
            }
            Err(SourceError::Device { .. } | SourceError::AudioSystem(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
            Ok(_) => panic!("a device called no-such-device-xyzzy opened"),
        }
    }

    #[test]
    fn listing_devices_does_not_panic() {
        // Machines without sound cards list none or fail cleanly.
        let _ = list_devices();
    }
}
