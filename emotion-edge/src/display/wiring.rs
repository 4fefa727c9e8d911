//! How the OLED and the LED are wired: plain data that a board profile, the command line
//! or a test describes, whether or not this build can drive them (`hardware` feature).

use serde::{Deserialize, Serialize};

/// The SSD1306's usual I2C address (0x3D with its address jumper moved).
pub const DEFAULT_OLED_ADDRESS: u8 = 0x3C;
/// The LED's PWM frequency, far above visible flicker.
pub const DEFAULT_LED_FREQUENCY_HZ: u32 = 1000;

/// Which displays are wired, and how. Absent parts are not opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardwareDisplays {
    /// The SSD1306 OLED, if any.
    #[serde(default)]
    pub oled: Option<OledWiring>,
    /// The RGB LED, if any.
    #[serde(default)]
    pub led: Option<LedWiring>,
}

/// An SSD1306 on an I2C bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OledWiring {
    /// The `N` of `/dev/i2c-N` (1 on the Pi's header pins 3 and 5).
    #[serde(default = "default_i2c_bus")]
    pub bus: u32,
    /// 0x3C, or 0x3D with the module's address jumper moved.
    #[serde(default = "default_oled_address")]
    pub address: u8,
}

impl Default for OledWiring {
    fn default() -> Self {
        OledWiring {
            bus: default_i2c_bus(),
            address: default_oled_address(),
        }
    }
}

impl HardwareDisplays {
    /// Whether nothing is wired.
    pub fn is_empty(&self) -> bool {
        self.oled.is_none() && self.led.is_none()
    }
}

fn default_i2c_bus() -> u32 {
    1
}

fn default_oled_address() -> u8 {
    DEFAULT_OLED_ADDRESS
}

/// One PWM output: `pwmchip{chip}/pwm{channel}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PwmPin {
    /// The `N` of `pwmchipN`.
    pub chip: u32,
    /// The `M` of `pwmM`.
    pub channel: u32,
}

impl std::str::FromStr for PwmPin {
    type Err = String;

    /// `CHIP:CHANNEL`, e.g. `0:1`.
    fn from_str(text: &str) -> Result<Self, String> {
        text.split_once(':')
            .and_then(|(c, m)| {
                Some(PwmPin {
                    chip: c.trim().parse().ok()?,
                    channel: m.trim().parse().ok()?,
                })
            })
            .ok_or_else(|| format!("an LED output is CHIP:CHANNEL, got `{text}`"))
    }
}

/// An RGB LED on three PWM outputs (they may sit on different chips: the Pi's
/// `pwm-2chan` overlay gives only two channels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedWiring {
    /// Red channel.
    pub red: PwmPin,
    /// Green channel.
    pub green: PwmPin,
    /// Blue channel.
    pub blue: PwmPin,
    /// The LED's common leg goes to 3.3 V, so a channel lights when its pin is low.
    #[serde(default)]
    pub common_anode: bool,
    /// PWM frequency; 1 kHz is far above visible flicker.
    #[serde(default = "default_frequency")]
    pub frequency_hz: u32,
}

fn default_frequency() -> u32 {
    DEFAULT_LED_FREQUENCY_HZ
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwm_pins_read_as_chip_colon_channel() {
        assert_eq!(
            "0:1".parse(),
            Ok(PwmPin {
                chip: 0,
                channel: 1
            })
        );
        assert_eq!(
            " 2 : 3".parse(),
            Ok(PwmPin {
                chip: 2,
                channel: 3
            })
        );
        for bad in ["0", "0:x", ":1", ""] {
            let error = bad.parse::<PwmPin>().unwrap_err();
            assert!(error.contains("CHIP:CHANNEL"), "{error}");
        }
    }
}
