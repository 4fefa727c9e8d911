//! The energy detector: a frame is voiced when its level is `threshold_db` above an
//! adaptive noise floor and above `min_level_dbfs`. The floor follows the level only
//! outside utterances (quickly down, slowly up), so it settles on the background and
//! not on speech; after an utterance cut at its maximum length it is raised to the
//! quietest frame the utterance held (a background that got louder all at once).

use super::SegmenterConfig;

/// Frame levels are clamped here (digital silence would be -inf dB).
const LEVEL_FLOOR_DB: f64 = -120.0;

/// The floor and the thresholds around it.
#[derive(Debug, Clone)]
pub(super) struct EnergyDetector {
    threshold_db: f64,
    min_level_dbfs: f64,
    /// Per-frame smoothing factors for the floor.
    fall: f64,
    rise: f64,
    /// The noise floor in dB (`None` until the first frame).
    floor_db: Option<f64>,
}

impl EnergyDetector {
    /// A detector for frames of `frame_s` seconds.
    pub(super) fn new(config: &SegmenterConfig, frame_s: f64) -> Self {
        let smoothing = |ms: f32| 1.0 - (-frame_s * 1_000.0 / f64::from(ms)).exp();
        EnergyDetector {
            threshold_db: f64::from(config.threshold_db),
            min_level_dbfs: f64::from(config.min_level_dbfs),
            fall: smoothing(config.floor_fall_ms),
            rise: smoothing(config.floor_rise_ms),
            floor_db: None,
        }
    }

    /// The current floor in dBFS (`None` before the first frame).
    pub(super) fn floor_db(&self) -> Option<f64> {
        self.floor_db
    }

    /// The level a frame must exceed to be voiced, over `floor`.
    fn threshold_over(&self, floor: f64) -> f64 {
        (floor + self.threshold_db).max(self.min_level_dbfs)
    }

    /// The level a frame must exceed to be voiced now, in dBFS.
    pub(super) fn threshold_dbfs(&self) -> f64 {
        self.threshold_over(self.floor_db.unwrap_or(LEVEL_FLOOR_DB))
    }

    /// The lowest the floor goes: a floor below it could not change the threshold.
    fn lowest(&self) -> f64 {
        self.min_level_dbfs - self.threshold_db
    }

    /// Whether a frame of `level` dB is voiced (the first frame sets the floor).
    pub(super) fn voiced(&mut self, level: f64) -> bool {
        let lowest = self.lowest();
        let floor = *self.floor_db.get_or_insert(level.max(lowest));
        level > self.threshold_over(floor)
    }

    /// Learns a frame heard outside any utterance.
    pub(super) fn learn_background(&mut self, level: f64) {
        let lowest = self.lowest();
        let floor = self.floor_db.unwrap_or(level.max(lowest));
        let alpha = if level < floor { self.fall } else { self.rise };
        self.floor_db = Some((floor + alpha * (level - floor)).max(lowest));
    }

    /// After a cut at the maximum length: a steady sound that long is background, so the
    /// floor rises to the utterance's quietest frame. Returns whether the frame of
    /// `level` is voiced against the raised floor.
    pub(super) fn raise_after_cut(&mut self, quietest_db: f64, level: f64) -> bool {
        let raised = self.floor_db.unwrap_or(quietest_db).max(quietest_db);
        self.floor_db = Some(raised);
        level > self.threshold_over(raised)
    }
}

/// A frame's mean-square level in dBFS (a full-scale sine is -3 dB), at least -120.
/// Non-finite samples count as silence.
pub(super) fn level_db(frame: &[f32]) -> f64 {
    if frame.is_empty() {
        return LEVEL_FLOOR_DB;
    }
    let energy: f64 = frame
        .iter()
        .map(|&x| {
            if x.is_finite() {
                f64::from(x) * f64::from(x)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        / frame.len() as f64;
    if energy > 0.0 {
        (10.0 * energy.log10()).max(LEVEL_FLOOR_DB)
    } else {
        LEVEL_FLOOR_DB
    }
}
