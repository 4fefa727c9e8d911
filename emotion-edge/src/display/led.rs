//! An RGB LED on three PWM channels: one fixed colour per emotion, brighter the more
//! confident the model is.
//!
//! Each emotion has the colour of the shared table ([`super::color`], the same one the
//! kiosk page uses).
//!
//! Brightness is perceptual: a confidence at or below chance (1/7) shows at
//! [`FLOOR`], and rises linearly to full at confidence 1. Each channel's level
//! (colour × brightness, in `[0, 1]`) is then gamma-corrected (`level^2.2`) because an
//! LED's light is linear in duty but the eye is not. `idle` turns the LED off: a dim
//! steady white would read as a low-confidence "neutral".

use embedded_hal::pwm::SetDutyCycle;
use emotion_core::Emotion;

use super::{Display, DisplayError, Reading};
pub use super::{Rgb, color};

/// Chance level for seven classes: confidences at or below it show at [`FLOOR`].
pub const CHANCE: f32 = 1.0 / Emotion::COUNT as f32;
/// Perceived brightness at or below chance: dim but still visibly the colour.
pub const FLOOR: f32 = 0.2;
/// Exponent from perceived level to duty (the sRGB-like display gamma).
pub const GAMMA: f32 = 2.2;

/// Perceived brightness in `[FLOOR, 1]` for a confidence; NaN shows at the floor.
pub fn brightness(confidence: f32) -> f32 {
    let c = if confidence.is_finite() {
        confidence.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if c <= CHANCE {
        FLOOR
    } else {
        FLOOR + (1.0 - FLOOR) * (c - CHANCE) / (1.0 - CHANCE)
    }
}

/// The duty (out of `max`) that makes one channel glow at `level` of its colour
/// value, before any common-anode inversion.
pub fn channel_duty(value: u8, brightness: f32, max: u16) -> u16 {
    let level = (f32::from(value) / 255.0 * brightness.clamp(0.0, 1.0)).clamp(0.0, 1.0);
    let duty = (level.powf(GAMMA) * f32::from(max)).round();
    // In range by construction; the clamp keeps a NaN from becoming full on.
    duty.clamp(0.0, f32::from(max)) as u16
}

/// An RGB LED driven by three [`SetDutyCycle`] channels.
pub struct RgbLed<R, G, B> {
    red: R,
    green: G,
    blue: B,
    common_anode: bool,
}

impl<R, G, B> RgbLed<R, G, B>
where
    R: SetDutyCycle,
    G: SetDutyCycle,
    B: SetDutyCycle,
{
    /// Wraps three channels. With `common_anode` the LED lights when the pin is low,
    /// so every duty is inverted (`max - duty`). Touches no pin.
    pub fn new(red: R, green: G, blue: B, common_anode: bool) -> Self {
        RgbLed {
            red,
            green,
            blue,
            common_anode,
        }
    }

    /// Shows `rgb` at a perceived `brightness` in `[0, 1]`; channels are set red,
    /// green, blue, each reading its own `max_duty_cycle` first.
    pub fn set(&mut self, rgb: Rgb, brightness: f32) -> Result<(), DisplayError> {
        let anode = self.common_anode;
        set_channel(&mut self.red, "red", rgb.r, brightness, anode)?;
        set_channel(&mut self.green, "green", rgb.g, brightness, anode)?;
        set_channel(&mut self.blue, "blue", rgb.b, brightness, anode)
    }

    /// Turns all three channels off (full duty on a common-anode LED).
    pub fn off(&mut self) -> Result<(), DisplayError> {
        self.set(Rgb::new(0, 0, 0), 0.0)
    }

    /// Gives the channels back.
    pub fn release(self) -> (R, G, B) {
        (self.red, self.green, self.blue)
    }
}

fn set_channel<P: SetDutyCycle>(
    pin: &mut P,
    name: &str,
    value: u8,
    brightness: f32,
    common_anode: bool,
) -> Result<(), DisplayError> {
    let max = pin.max_duty_cycle();
    let duty = channel_duty(value, brightness, max);
    let duty = if common_anode { max - duty } else { duty };
    pin.set_duty_cycle(duty).map_err(|err| DisplayError {
        display: "led",
        detail: format!("setting the {name} channel's duty to {duty}/{max} failed: {err:?}"),
    })
}

impl<R, G, B> Display for RgbLed<R, G, B>
where
    R: SetDutyCycle,
    G: SetDutyCycle,
    B: SetDutyCycle,
{
    fn name(&self) -> &'static str {
        "led"
    }

    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        self.set(color(reading.emotion), brightness(reading.confidence))
    }

    fn idle(&mut self, _message: &str) -> Result<(), DisplayError> {
        self.off()
    }
}

#[cfg(test)]
mod tests {
    use std::io::ErrorKind;
    use std::time::Duration;

    use embedded_hal_mock::eh1::MockError;
    use embedded_hal_mock::eh1::pwm::{Mock, Transaction as T};

    use super::*;

    fn reading(emotion: Emotion, confidence: f32) -> Reading {
        let mut probabilities = [(1.0 - confidence) / 6.0; Emotion::COUNT];
        probabilities[emotion.index()] = confidence;
        Reading {
            emotion,
            confidence,
            probabilities,
            keyword: None,
            keyword_source: emotion_core::KeywordSource::None,
            speech_seconds: 1.0,
            latency: Duration::from_millis(100),
        }
    }

    /// One channel's expected transactions: `max_duty_cycle`, then the duty.
    fn channel(max: u16, duties: &[u16]) -> Vec<T> {
        duties
            .iter()
            .flat_map(|&d| [T::max_duty_cycle(max), T::set_duty_cycle(d)])
            .collect()
    }

    fn make_led(
        red: &[T],
        green: &[T],
        blue: &[T],
        common_anode: bool,
    ) -> (RgbLed<Mock, Mock, Mock>, [Mock; 3]) {
        let (r, g, b) = (Mock::new(red), Mock::new(green), Mock::new(blue));
        let handles = [r.clone(), g.clone(), b.clone()];
        (RgbLed::new(r, g, b, common_anode), handles)
    }

    fn done(mut handles: [Mock; 3]) {
        for h in &mut handles {
            h.done();
        }
    }

    #[test]
    fn brightness_has_a_floor_at_chance_and_is_full_at_certainty() {
        assert_eq!(brightness(0.0), FLOOR);
        assert_eq!(brightness(CHANCE), FLOOR);
        assert_eq!(brightness(f32::NAN), FLOOR);
        assert_eq!(brightness(1.0), 1.0);
        assert_eq!(brightness(2.0), 1.0);
        assert!((brightness(0.5) - 0.533_333_3).abs() < 1e-6);
    }

    // Expected duties below are worked out by hand (Python) from the table:
    // round(max * (value/255 * brightness)^2.2).
    #[test]
    fn led_duty_per_channel_for_emotions_and_confidences() {
        // Angry, certain: full red only.
        let (mut led, h) = make_led(
            &channel(1000, &[1000]),
            &channel(1000, &[0]),
            &channel(1000, &[0]),
            false,
        );
        led.show(&reading(Emotion::Angry, 1.0)).unwrap();
        done(h);

        // Sad at 0.5: brightness 0.53333; green (40/255*0.53333)^2.2 * 65535 = 279.26,
        // blue 0.53333^2.2 * 65535 = 16438.8.
        let (mut led, h) = make_led(
            &channel(65535, &[0]),
            &channel(65535, &[279]),
            &channel(65535, &[16439]),
            false,
        );
        led.show(&reading(Emotion::Sad, 0.5)).unwrap();
        done(h);

        // Happy below chance: floor 0.2; red 0.2^2.2 * 1000 = 28.99, green
        // (190/255*0.2)^2.2 * 1000 = 15.18.
        let (mut led, h) = make_led(
            &channel(1000, &[29]),
            &channel(1000, &[15]),
            &channel(1000, &[0]),
            false,
        );
        led.show(&reading(Emotion::Happy, 0.1)).unwrap();
        done(h);

        // Neutral, certain: (150/255)^2.2 * 255 = 79.35 on every channel.
        let (mut led, h) = make_led(
            &channel(255, &[79]),
            &channel(255, &[79]),
            &channel(255, &[79]),
            false,
        );
        led.show(&reading(Emotion::Neutral, 1.0)).unwrap();
        done(h);
    }

    #[test]
    fn led_common_anode_inverts_every_duty() {
        // Fear at 0.9: brightness 0.90667; red (140/255*0.90667)^2.2 * 1000 = 215.5
        // → 216, blue 0.90667^2.2 * 1000 = 806.09 → 806; inverted out of 1000.
        let (mut led, h) = make_led(
            &channel(1000, &[784]),
            &channel(1000, &[1000]),
            &channel(1000, &[194]),
            true,
        );
        led.show(&reading(Emotion::Fear, 0.9)).unwrap();
        done(h);

        // Idle turns a common-anode LED off by driving every pin high.
        let (mut led, h) = make_led(
            &channel(1000, &[1000]),
            &channel(1000, &[1000]),
            &channel(1000, &[1000]),
            true,
        );
        led.idle("listening").unwrap();
        done(h);
    }

    #[test]
    fn led_idle_turns_off() {
        let (mut led, h) = make_led(
            &channel(1000, &[0]),
            &channel(1000, &[0]),
            &channel(1000, &[0]),
            false,
        );
        led.idle("listening").unwrap();
        assert_eq!(led.name(), "led");
        led.prompt(Some("back")).unwrap();
        done(h);
    }

    #[test]
    fn led_pwm_error_becomes_display_error_and_stops() {
        // Green fails: blue is never touched.
        let (mut led, h) = make_led(
            &channel(1000, &[1000]),
            &[
                T::max_duty_cycle(1000),
                T::set_duty_cycle(0).with_error(MockError::Io(ErrorKind::PermissionDenied)),
            ],
            &[],
            false,
        );
        let err = led.show(&reading(Emotion::Angry, 1.0)).unwrap_err();
        assert_eq!(err.display, "led");
        assert!(err.detail.contains("green"), "{err}");
        assert!(err.detail.contains("PermissionDenied"), "{err}");
        done(h);
    }
}
