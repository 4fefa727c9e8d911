//! emotion-edge: the board's program. It links `models` (the front-end shared with the
//! host) and never burn, plotters or hf-hub.
//!
//! - [`inspect`]: run the shared front-end over WAV files and describe what it saw.
//!
//! Classification, the microphone loop and the displays arrive with the model bundle.

pub mod inspect;
