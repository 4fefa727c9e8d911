//! Audio in for `listen`: sources (microphone, file, stdin) and the lock-free ring the
//! capture side writes into. (Streaming resampling to the bundle's rate is the
//! front-end's: `emotion_core::frontend::StreamResampler`.)
//!
//! - [`source`]: open a [`SourceSpec`] as a [`Capture`] and read mono samples from it.
//! - [`device`]: what sources share with the microphone: devices, errors, ring sizes.
//! - [`ring`]: the capture ring (real-time safe writer, polling reader).
//! - [`wav`]: the streaming WAV reader behind file and stdin sources.

pub mod device;
#[cfg(feature = "mic")]
mod mic;
pub mod ring;
pub mod source;
pub mod wav;

pub use device::{DeviceInfo, SourceError};
pub use ring::{CaptureReader, CaptureSample, CaptureState, CaptureWriter, capture_ring};
pub use source::{Capture, Pace, ReadOutcome, SourceSpec, list_devices, open, open_stream};
