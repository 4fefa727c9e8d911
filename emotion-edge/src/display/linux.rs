//! The displays on a Raspberry Pi: the OLED on `/dev/i2c-N` (linux-embedded-hal) and
//! the LED on sysfs PWM channels (`/sys/class/pwm/pwmchipN/pwmM`), described by a
//! [`HardwareDisplays`] wiring that a board profile can carry.
//!
//! Both roots are parameters ([`open_at`], [`SysfsPwm::open`]) so tests run against a
//! fake tree in a temporary directory.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use embedded_hal::pwm::{ErrorKind, ErrorType, SetDutyCycle};
use linux_embedded_hal::I2cdev;

use super::led::RgbLed;
use super::oled::{self, OledDisplay};
pub use super::wiring::{HardwareDisplays, LedWiring, OledWiring, PwmPin};
use super::{Display, DisplayError, Reading};

/// Where Linux puts I2C character devices.
pub const DEV_ROOT: &str = "/dev";
/// Where Linux puts PWM chips.
pub const PWM_ROOT: &str = "/sys/class/pwm";
/// How long to wait for udev to hand a freshly exported PWM channel to our group.
const EXPORT_WAIT: Duration = Duration::from_secs(2);

impl HardwareDisplays {
    /// Opens every display wired (see [`open`]).
    pub fn open(&self) -> Result<Vec<Box<dyn Display>>, DisplayError> {
        open(self)
    }
}

/// Opens every display in `config` on the real system.
pub fn open(config: &HardwareDisplays) -> Result<Vec<Box<dyn Display>>, DisplayError> {
    open_at(config, Path::new(DEV_ROOT), Path::new(PWM_ROOT))
}

/// [`open`] with `/dev` and `/sys/class/pwm` replaced (for tests).
pub fn open_at(
    config: &HardwareDisplays,
    dev_root: &Path,
    pwm_root: &Path,
) -> Result<Vec<Box<dyn Display>>, DisplayError> {
    let mut displays: Vec<Box<dyn Display>> = Vec::new();
    if let Some(wiring) = &config.led {
        displays.push(Box::new(open_led(pwm_root, wiring)?));
    }
    if let Some(wiring) = &config.oled {
        displays.push(Box::new(open_oled(dev_root, wiring)?));
    }
    Ok(displays)
}

/// Opens the OLED on `{dev_root}/i2c-{bus}`, initialises and clears it.
pub fn open_oled(dev_root: &Path, wiring: &OledWiring) -> Result<I2cOled, DisplayError> {
    let error = |detail: String| DisplayError {
        display: "oled",
        detail,
    };
    let address = wiring.address;
    if address != oled::DEFAULT_ADDRESS && address != oled::ALTERNATE_ADDRESS {
        return Err(error(format!(
            "address {address:#04x} is not an SSD1306 address: use 0x3c or 0x3d"
        )));
    }
    let path = dev_root.join(format!("i2c-{}", wiring.bus));
    if !path.exists() {
        return Err(error(format!(
            "{} not found: enable I2C with `sudo raspi-config nonint do_i2c 0` and reboot",
            path.display()
        )));
    }
    let i2c = I2cdev::new(&path).map_err(|err| {
        error(format!(
            "cannot open {}: {err} (is the user in the `i2c` group?)",
            path.display()
        ))
    })?;
    let oled = OledDisplay::new(i2c, address).map_err(|err| {
        error(format!(
            "{}; is the panel on bus {} at {address:#04x}? (`i2cdetect -y {}` lists what answers)",
            err.detail, wiring.bus, wiring.bus
        ))
    })?;
    Ok(I2cOled { oled })
}

/// The OLED on a Linux I2C bus; turns the panel off when dropped, so a stopped
/// program leaves no stale emotion on it.
pub struct I2cOled {
    oled: OledDisplay<I2cdev>,
}

impl I2cOled {
    /// What is on the panel now.
    pub fn frame(&self) -> &oled::Framebuffer {
        self.oled.frame()
    }
}

impl Display for I2cOled {
    fn name(&self) -> &'static str {
        self.oled.name()
    }

    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        self.oled.show(reading)
    }

    fn prompt(&mut self, word: Option<&str>) -> Result<(), DisplayError> {
        self.oled.prompt(word)
    }

    fn idle(&mut self, message: &str) -> Result<(), DisplayError> {
        self.oled.idle(message)
    }
}

impl Drop for I2cOled {
    fn drop(&mut self) {
        // Nothing to report to at exit; a failed write leaves the panel as it was.
        let _ = self.oled.display_off();
    }
}

/// Opens the LED's three channels under `pwm_root` and turns it off.
pub fn open_led(pwm_root: &Path, wiring: &LedWiring) -> Result<SysfsLed, DisplayError> {
    let red = SysfsPwm::open(pwm_root, wiring.red, wiring.frequency_hz)?;
    let green = SysfsPwm::open(pwm_root, wiring.green, wiring.frequency_hz)?;
    let blue = SysfsPwm::open(pwm_root, wiring.blue, wiring.frequency_hz)?;
    let mut led = RgbLed::new(red, green, blue, wiring.common_anode);
    // A fresh channel has duty 0, which lights a common-anode LED fully.
    led.off()?;
    Ok(SysfsLed { led })
}

/// The LED on sysfs PWM; turns itself off when dropped, so it does not stay lit
/// after the program exits.
pub struct SysfsLed {
    led: RgbLed<SysfsPwm, SysfsPwm, SysfsPwm>,
}

impl Display for SysfsLed {
    fn name(&self) -> &'static str {
        self.led.name()
    }

    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        self.led.show(reading)
    }

    fn prompt(&mut self, word: Option<&str>) -> Result<(), DisplayError> {
        self.led.prompt(word)
    }

    fn idle(&mut self, message: &str) -> Result<(), DisplayError> {
        self.led.idle(message)
    }
}

impl Drop for SysfsLed {
    fn drop(&mut self) {
        // Nothing to report to at exit; a failed write leaves the LED as it was.
        let _ = self.led.off();
    }
}

/// A sysfs PWM channel as an embedded-hal [`SetDutyCycle`]. Duty runs over
/// `0..=max_duty_cycle()` (65535, or the period in ns if that is shorter) and is
/// written to `duty_cycle` in nanoseconds.
#[derive(Debug)]
pub struct SysfsPwm {
    dir: PathBuf,
    period_ns: u64,
    max_duty: u16,
}

/// A failed write to a PWM attribute.
#[derive(Debug, thiserror::Error)]
#[error("writing {path}: {source}")]
pub struct SysfsPwmError {
    /// The attribute file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: io::Error,
}

impl embedded_hal::pwm::Error for SysfsPwmError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

impl SysfsPwm {
    /// Exports `pwm{channel}` of `pwmchip{chip}` under `root` if needed, sets the
    /// period for `frequency_hz`, duty 0, and enables it.
    pub fn open(root: &Path, pin: PwmPin, frequency_hz: u32) -> Result<Self, DisplayError> {
        let error = |detail: String| DisplayError {
            display: "led",
            detail,
        };
        if frequency_hz == 0 || u64::from(frequency_hz) > 1_000_000_000 {
            return Err(error(format!(
                "PWM frequency {frequency_hz} Hz is out of range (1 Hz to 1 GHz)"
            )));
        }
        let chip = root.join(format!("pwmchip{}", pin.chip));
        if !chip.is_dir() {
            return Err(error(format!(
                "{} missing: add `dtoverlay=pwm-2chan` to /boot/firmware/config.txt and reboot",
                chip.display()
            )));
        }
        if let Ok(text) = fs::read_to_string(chip.join("npwm"))
            && let Ok(count) = text.trim().parse::<u32>()
            && pin.channel >= count
        {
            return Err(error(format!(
                "{} has {count} channel(s), so there is no pwm{}",
                chip.display(),
                pin.channel
            )));
        }
        let dir = chip.join(format!("pwm{}", pin.channel));
        if !dir.is_dir() {
            write_attr(&chip.join("export"), &pin.channel.to_string()).map_err(|err| {
                error(format!(
                    "cannot export pwm{} on {}: {} (is the user in the `gpio` group?)",
                    pin.channel,
                    chip.display(),
                    err.source
                ))
            })?;
        }
        wait_writable(&dir.join("period"), EXPORT_WAIT).map_err(|err| {
            error(format!(
                "{} did not become writable after export: {err}",
                dir.display()
            ))
        })?;

        let period_ns = 1_000_000_000 / u64::from(frequency_hz);
        let pwm = SysfsPwm {
            max_duty: u16::try_from(period_ns).unwrap_or(u16::MAX),
            period_ns,
            dir,
        };
        let setup = || -> Result<(), SysfsPwmError> {
            // The kernel refuses a period shorter than the current duty.
            let current = fs::read_to_string(pwm.dir.join("duty_cycle"))
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if current > period_ns {
                write_attr(&pwm.dir.join("duty_cycle"), "0")?;
            }
            write_attr(&pwm.dir.join("period"), &period_ns.to_string())?;
            write_attr(&pwm.dir.join("duty_cycle"), "0")?;
            write_attr(&pwm.dir.join("enable"), "1")
        };
        setup().map_err(|err| error(err.to_string()))?;
        Ok(pwm)
    }

    /// The channel's directory (`.../pwmchipN/pwmM`).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The period in nanoseconds.
    pub fn period_ns(&self) -> u64 {
        self.period_ns
    }
}

impl ErrorType for SysfsPwm {
    type Error = SysfsPwmError;
}

impl SetDutyCycle for SysfsPwm {
    fn max_duty_cycle(&self) -> u16 {
        self.max_duty
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), Self::Error> {
        let max = u64::from(self.max_duty.max(1));
        let duty = u64::from(duty).min(max);
        let ns = (duty * self.period_ns + max / 2) / max;
        write_attr(&self.dir.join("duty_cycle"), &ns.to_string())
    }
}

/// Writes one sysfs attribute in a single write; never creates the file.
fn write_attr(path: &Path, value: &str) -> Result<(), SysfsPwmError> {
    let result = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(value.as_bytes()));
    result.map_err(|source| SysfsPwmError {
        path: path.to_path_buf(),
        source,
    })
}

/// Waits until `path` opens for writing: after an export the kernel creates the
/// channel at once, but udev may take a moment to give it to the `gpio` group.
fn wait_writable(path: &Path, timeout: Duration) -> io::Result<()> {
    let start = Instant::now();
    loop {
        match OpenOptions::new().write(true).open(path) {
            Ok(_) => return Ok(()),
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
                ) && start.elapsed() < timeout =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use emotion_core::Emotion;

    use super::*;

    /// A fake `pwmchip{chip}` with `npwm` and `export`; exported channels get
    /// `period`, `duty_cycle` and `enable` (all holding "0", as the kernel starts).
    fn fake_chip(root: &Path, chip: u32, npwm: u32) -> PathBuf {
        let dir = root.join(format!("pwmchip{chip}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("npwm"), format!("{npwm}\n")).unwrap();
        fs::write(dir.join("export"), "").unwrap();
        dir
    }

    /// Built beside the chip and renamed in, so it appears complete at once.
    fn fake_channel(chip: &Path, channel: u32) {
        let staging = chip.join(format!(".staging{channel}"));
        fs::create_dir_all(&staging).unwrap();
        for attr in ["period", "duty_cycle", "enable"] {
            fs::write(staging.join(attr), "0\n").unwrap();
        }
        fs::rename(staging, chip.join(format!("pwm{channel}"))).unwrap();
    }

    /// Plays the kernel: creates the channel once its number is written to `export`.
    fn kernel_exports(chip: PathBuf) -> thread::JoinHandle<String> {
        thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                let text = fs::read_to_string(chip.join("export")).unwrap_or_default();
                if let Ok(channel) = text.trim().parse::<u32>() {
                    fake_channel(&chip, channel);
                    return text;
                }
                thread::sleep(Duration::from_millis(5));
            }
            String::new()
        })
    }

    fn read(path: PathBuf) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn sysfs_pwm_exports_and_writes_period_duty_enable() {
        let root = tempfile::tempdir().unwrap();
        let chip = fake_chip(root.path(), 0, 2);
        let kernel = kernel_exports(chip.clone());
        let pin = PwmPin {
            chip: 0,
            channel: 1,
        };
        let mut pwm = SysfsPwm::open(root.path(), pin, 1000).unwrap();
        assert_eq!(kernel.join().unwrap(), "1");
        let dir = chip.join("pwm1");
        assert_eq!(pwm.path(), dir);
        assert_eq!(read(dir.join("period")), "1000000");
        assert_eq!(read(dir.join("duty_cycle")), "0");
        assert_eq!(read(dir.join("enable")), "1");

        assert_eq!(pwm.max_duty_cycle(), u16::MAX);
        pwm.set_duty_cycle(u16::MAX).unwrap();
        assert_eq!(read(dir.join("duty_cycle")), "1000000");
        pwm.set_duty_cycle(32768).unwrap();
        assert_eq!(read(dir.join("duty_cycle")), "500008");
        pwm.set_duty_cycle(1).unwrap();
        assert_eq!(read(dir.join("duty_cycle")), "15");
        pwm.set_duty_cycle(0).unwrap();
        assert_eq!(read(dir.join("duty_cycle")), "0");
    }

    #[test]
    fn sysfs_pwm_reuses_an_exported_channel_and_lowers_duty_first() {
        let root = tempfile::tempdir().unwrap();
        let chip = fake_chip(root.path(), 2, 4);
        fake_channel(&chip, 3);
        let dir = chip.join("pwm3");
        fs::write(dir.join("duty_cycle"), "5000000\n").unwrap();
        let pin = PwmPin {
            chip: 2,
            channel: 3,
        };
        let mut pwm = SysfsPwm::open(root.path(), pin, 2000).unwrap();
        assert_eq!(read(chip.join("export")), "", "already exported");
        assert_eq!(read(dir.join("period")), "500000");
        assert_eq!(read(dir.join("duty_cycle")), "0");
        assert_eq!(read(dir.join("enable")), "1");
        // A fifth of 65535 is a fifth of 500 µs.
        pwm.set_duty_cycle(13107).unwrap();
        assert_eq!(read(dir.join("duty_cycle")), "100000");
    }

    #[test]
    fn sysfs_pwm_errors_say_what_to_do() {
        let root = tempfile::tempdir().unwrap();
        let pin = PwmPin {
            chip: 0,
            channel: 0,
        };
        let err = SysfsPwm::open(root.path(), pin, 1000).unwrap_err();
        assert!(err.detail.contains("pwmchip0 missing"), "{err}");
        assert!(err.detail.contains("dtoverlay=pwm-2chan"), "{err}");

        fake_chip(root.path(), 0, 2);
        let pin = PwmPin {
            chip: 0,
            channel: 2,
        };
        let err = SysfsPwm::open(root.path(), pin, 1000).unwrap_err();
        assert!(err.detail.contains("no pwm2"), "{err}");

        let err = SysfsPwm::open(
            root.path(),
            PwmPin {
                chip: 0,
                channel: 0,
            },
            0,
        )
        .unwrap_err();
        assert!(err.detail.contains("out of range"), "{err}");
    }

    #[test]
    fn missing_i2c_bus_says_how_to_enable_it() {
        let dev = tempfile::tempdir().unwrap();
        let config = HardwareDisplays {
            oled: Some(OledWiring::default()),
            led: None,
        };
        let err = open_at(&config, dev.path(), dev.path()).err().unwrap();
        assert_eq!(err.display, "oled");
        assert!(err.detail.contains("i2c-1 not found"), "{err}");
        assert!(err.detail.contains("raspi-config nonint do_i2c 0"), "{err}");

        let config = HardwareDisplays {
            oled: Some(OledWiring {
                bus: 1,
                address: 0x27,
            }),
            led: None,
        };
        let err = open_at(&config, dev.path(), dev.path()).err().unwrap();
        assert!(err.detail.contains("0x27"), "{err}");
    }

    #[test]
    fn open_at_drives_the_led_through_sysfs_and_turns_it_off_on_drop() {
        let root = tempfile::tempdir().unwrap();
        let chip0 = fake_chip(root.path(), 0, 2);
        let chip1 = fake_chip(root.path(), 1, 2);
        for (chip, channel) in [(&chip0, 0), (&chip0, 1), (&chip1, 0)] {
            fake_channel(chip, channel);
        }
        let config: HardwareDisplays = serde_json::from_str(
            r#"{"led": {"red": {"chip": 0, "channel": 0},
                        "green": {"chip": 0, "channel": 1},
                        "blue": {"chip": 1, "channel": 0},
                        "common_anode": true}}"#,
        )
        .unwrap();
        let duty = |chip: &Path, channel: u32| read(chip.join(format!("pwm{channel}/duty_cycle")));
        let mut displays = open_at(&config, Path::new("/nonexistent"), root.path()).unwrap();
        assert_eq!(displays.len(), 1);
        assert_eq!(displays[0].name(), "led");
        // Opened off: common anode, so every pin high.
        assert_eq!(duty(&chip0, 0), "1000000");
        assert_eq!(duty(&chip0, 1), "1000000");
        assert_eq!(duty(&chip1, 0), "1000000");

        let mut probabilities = [0.0; Emotion::COUNT];
        probabilities[Emotion::Angry.index()] = 1.0;
        let reading = Reading {
            emotion: Emotion::Angry,
            confidence: 1.0,
            probabilities,
            keyword: None,
            keyword_source: emotion_core::KeywordSource::None,
            speech_seconds: 1.0,
            latency: Duration::ZERO,
        };
        displays[0].show(&reading).unwrap();
        assert_eq!(duty(&chip0, 0), "0", "red fully on (pin low)");
        assert_eq!(duty(&chip0, 1), "1000000");
        assert_eq!(duty(&chip1, 0), "1000000");

        drop(displays);
        assert_eq!(duty(&chip0, 0), "1000000", "off again after drop");
    }

    #[test]
    fn wiring_deserializes_with_defaults() {
        let config: HardwareDisplays = serde_json::from_str(
            r#"{"oled": {}, "led": {"red": {"chip": 0, "channel": 0},
                "green": {"chip": 0, "channel": 1}, "blue": {"chip": 1, "channel": 0}}}"#,
        )
        .unwrap();
        assert_eq!(
            config.oled,
            Some(OledWiring {
                bus: 1,
                address: 0x3C
            })
        );
        let led = config.led.unwrap();
        assert!(!led.common_anode);
        assert_eq!(led.frequency_hz, 1000);
        assert_eq!(
            led.blue,
            PwmPin {
                chip: 1,
                channel: 0
            }
        );

        let config: HardwareDisplays =
            serde_json::from_str(r#"{"oled": {"address": 61}}"#).unwrap();
        assert_eq!(config.oled.unwrap().address, oled::ALTERNATE_ADDRESS);
        let empty = serde_json::from_str::<HardwareDisplays>("{}").unwrap();
        assert_eq!(empty, HardwareDisplays::default());
        assert!(empty.is_empty());
        assert!(serde_json::from_str::<HardwareDisplays>(r#"{"lcd": {}}"#).is_err());
    }
}
