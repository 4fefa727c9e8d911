//! A 128×64 SSD1306 OLED on I2C: our own small driver (init, full-frame flush) and a
//! 1 KiB framebuffer that embedded-graphics draws text and bars into.
//!
//! Layout of a reading (pixels; `x` right, `y` down):
//!
//! ```text
//! y  0..12  emotion word (8×13 bold, "surprise" for pleasant surprise)   "87%" right
//! y 13..54  seven rows, 6 px apart: 3-letter label (4×6) at x 0..11 and a 4 px bar
//!           from x 16, one pixel per percent (100 % = 100 px, ends at x 115)
//! y 55..63  bottom line (6×9): `word: back (spotted)`, or `say: back` when prompting
//! ```
//!
//! Every update redraws and sends the whole frame (1 KiB, about 25 ms at 400 kHz):
//! updates come once per utterance, so tracking dirty regions would buy nothing.

use std::convert::Infallible;

use embedded_graphics::mono_font::ascii::{FONT_4X6, FONT_6X9, FONT_6X10, FONT_8X13_BOLD};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};
use embedded_hal::i2c::I2c;
use emotion_core::{Emotion, KeywordSource};

use super::{Display, DisplayError, NO_WORD_HEARD, Reading};

/// The usual address (SA0 low).
pub const DEFAULT_ADDRESS: u8 = super::wiring::DEFAULT_OLED_ADDRESS;
/// The address with SA0 high (a jumper on most modules).
pub const ALTERNATE_ADDRESS: u8 = 0x3D;
/// Panel width in pixels.
pub const WIDTH: usize = 128;
/// Panel height in pixels.
pub const HEIGHT: usize = 64;
/// Framebuffer size: one bit per pixel, eight rows per byte.
pub const FRAME_BYTES: usize = WIDTH * HEIGHT / 8;
/// Control byte before commands.
pub const CONTROL_COMMAND: u8 = 0x00;
/// Control byte before display RAM data.
pub const CONTROL_DATA: u8 = 0x40;
/// Display data bytes per I2C write: small enough for any adapter's buffer (some
/// stop at 32), large enough that the control-byte overhead is 3 %.
pub const DATA_CHUNK: usize = 32;

/// The init sequence (SSD1306 datasheet, application note for 128×64 with the
/// internal charge pump), one command and its arguments per entry.
pub const INIT_COMMANDS: &[&[u8]] = &[
    &[0xAE],       // display off
    &[0xD5, 0x80], // clock divide ratio / oscillator frequency (reset value)
    &[0xA8, 0x3F], // multiplex ratio: 64 rows
    &[0xD3, 0x00], // display offset 0
    &[0x40],       // start line 0
    &[0x8D, 0x14], // charge pump on (no external VCC)
    &[0x20, 0x00], // memory addressing: horizontal
    &[0xA1],       // segment remap: column 127 on SEG0 (x grows to the right)
    &[0xC8],       // COM scan descending (y grows downwards)
    &[0xDA, 0x12], // COM pins: alternative, no left/right remap (64-row panels)
    &[0x81, 0xCF], // contrast
    &[0xD9, 0xF1], // pre-charge: phase 1 = 1, phase 2 = 15 (internal charge pump)
    &[0xDB, 0x40], // VCOMH deselect level
    &[0xA4],       // resume: show RAM contents
    &[0xA6],       // normal (not inverted)
    &[0xAF],       // display on
];

/// Header font (emotion word and confidence).
const HEADER_FONT: MonoFont<'static> = FONT_8X13_BOLD;
/// Bar label font.
const LABEL_FONT: MonoFont<'static> = FONT_4X6;
/// Bottom-line font.
const FOOTER_FONT: MonoFont<'static> = FONT_6X9;
/// Idle message font.
const MESSAGE_FONT: MonoFont<'static> = FONT_6X10;
/// First bar row's top.
pub const BAR_TOP: i32 = 13;
/// Rows from one bar to the next.
pub const BAR_PITCH: i32 = 6;
/// Bar height (its top is one row below its label's top).
pub const BAR_HEIGHT: u32 = 4;
/// Where bars start.
pub const BAR_X: i32 = 16;
/// Length of a 100 % bar: one pixel per percent.
pub const BAR_MAX: u32 = 100;
/// Top of the bottom line.
pub const FOOTER_TOP: i32 = 55;

/// A 128×64 one-bit framebuffer in SSD1306 RAM order: byte `page * 128 + x` holds
/// rows `8 * page ..= 8 * page + 7` of column `x`, least significant bit on top.
#[derive(Clone, PartialEq, Eq)]
pub struct Framebuffer {
    bytes: [u8; FRAME_BYTES],
}

impl Default for Framebuffer {
    fn default() -> Self {
        Framebuffer {
            bytes: [0; FRAME_BYTES],
        }
    }
}

impl std::fmt::Debug for Framebuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_ascii())
    }
}

impl Framebuffer {
    /// The raw bytes, as sent to the panel.
    pub fn as_bytes(&self) -> &[u8; FRAME_BYTES] {
        &self.bytes
    }

    /// Whether a pixel is lit (off-panel pixels are not).
    pub fn pixel(&self, x: usize, y: usize) -> bool {
        x < WIDTH && y < HEIGHT && self.bytes[(y / 8) * WIDTH + x] & (1 << (y % 8)) != 0
    }

    /// Lights or clears one pixel; off-panel pixels are ignored.
    pub fn set_pixel(&mut self, x: usize, y: usize, on: bool) {
        if x < WIDTH && y < HEIGHT {
            let byte = &mut self.bytes[(y / 8) * WIDTH + x];
            let bit = 1 << (y % 8);
            if on {
                *byte |= bit;
            } else {
                *byte &= !bit;
            }
        }
    }

    /// The frame as 64 lines of `#` and `.`, to look at a layout in a terminal.
    pub fn to_ascii(&self) -> String {
        let mut out = String::with_capacity((WIDTH + 1) * HEIGHT);
        for y in 0..HEIGHT {
            for x in 0..WIDTH {
                out.push(if self.pixel(x, y) { '#' } else { '.' });
            }
            out.push('\n');
        }
        out
    }
}

impl OriginDimensions for Framebuffer {
    fn size(&self) -> Size {
        Size::new(WIDTH as u32, HEIGHT as u32)
    }
}

impl DrawTarget for Framebuffer {
    type Color = BinaryColor;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(point, color) in pixels {
            if let (Ok(x), Ok(y)) = (usize::try_from(point.x), usize::try_from(point.y)) {
                self.set_pixel(x, y, color.is_on());
            }
        }
        Ok(())
    }

    fn clear(&mut self, color: Self::Color) -> Result<(), Self::Error> {
        self.bytes.fill(if color.is_on() { 0xFF } else { 0x00 });
        Ok(())
    }
}

/// The SSD1306 bus protocol: commands and display data over I2C.
pub struct Ssd1306<I> {
    i2c: I,
    address: u8,
    frame: Framebuffer,
}

impl<I: I2c> Ssd1306<I> {
    /// Wraps the bus; sends nothing until [`Ssd1306::init`].
    pub fn new(i2c: I, address: u8) -> Self {
        Ssd1306 {
            i2c,
            address,
            frame: Framebuffer::default(),
        }
    }

    /// The panel's 7-bit address.
    pub fn address(&self) -> u8 {
        self.address
    }

    /// Sends [`INIT_COMMANDS`], one I2C write `[0x00, command, args...]` each.
    pub fn init(&mut self) -> Result<(), DisplayError> {
        for command in INIT_COMMANDS {
            self.command(command)?;
        }
        Ok(())
    }

    /// Sends one command with its arguments (at most 7 bytes, the longest SSD1306
    /// command).
    pub fn command(&mut self, command: &[u8]) -> Result<(), DisplayError> {
        let mut bytes = [0u8; 8];
        let len = command.len();
        if len >= bytes.len() {
            return Err(DisplayError {
                display: "oled",
                detail: format!("a {len}-byte command is longer than any SSD1306 command"),
            });
        }
        bytes[0] = CONTROL_COMMAND;
        bytes[1..=len].copy_from_slice(command);
        self.write(&bytes[..=len], "command")
    }

    /// Turns the panel off (command 0xAE); RAM is kept, [`Ssd1306::init`] turns it
    /// back on.
    pub fn display_off(&mut self) -> Result<(), DisplayError> {
        self.command(&[0xAE])
    }

    /// The frame the next [`Ssd1306::flush`] sends.
    pub fn frame(&self) -> &Framebuffer {
        &self.frame
    }

    /// The frame to draw into.
    pub fn frame_mut(&mut self) -> &mut Framebuffer {
        &mut self.frame
    }

    /// Sends the whole frame: column range 0..=127, page range 0..=7, then the 1024
    /// bytes as writes `[0x40, 32 bytes]` (horizontal addressing wraps the pages).
    pub fn flush(&mut self) -> Result<(), DisplayError> {
        self.command(&[0x21, 0, (WIDTH - 1) as u8])?;
        self.command(&[0x22, 0, (HEIGHT / 8 - 1) as u8])?;
        let mut bytes = [0u8; DATA_CHUNK + 1];
        bytes[0] = CONTROL_DATA;
        for i in 0..FRAME_BYTES / DATA_CHUNK {
            let chunk = &self.frame.bytes[i * DATA_CHUNK..(i + 1) * DATA_CHUNK];
            bytes[1..].copy_from_slice(chunk);
            self.write(&bytes, "display data")?;
        }
        Ok(())
    }

    /// Gives the bus back.
    pub fn release(self) -> I {
        self.i2c
    }

    fn write(&mut self, bytes: &[u8], what: &str) -> Result<(), DisplayError> {
        let address = self.address;
        self.i2c.write(address, bytes).map_err(|err| DisplayError {
            display: "oled",
            detail: format!("I2C {what} write to {address:#04x} failed: {err:?}"),
        })
    }
}

/// What the panel shows above the bottom line.
#[derive(Debug, Clone)]
enum Body {
    Blank,
    Reading(Reading),
    Message(String),
}

/// The OLED as a [`Display`]: keeps what it shows so a new prompt can be drawn under
/// the last reading.
pub struct OledDisplay<I> {
    driver: Ssd1306<I>,
    body: Body,
    /// The last reading's keyword line; cleared by a new prompt or an idle message.
    keyword_line: Option<String>,
    prompt: Option<String>,
}

impl<I: I2c> OledDisplay<I> {
    /// Initialises the panel at `address` and clears it.
    pub fn new(i2c: I, address: u8) -> Result<Self, DisplayError> {
        let mut driver = Ssd1306::new(i2c, address);
        driver.init()?;
        driver.flush()?;
        Ok(OledDisplay {
            driver,
            body: Body::Blank,
            keyword_line: None,
            prompt: None,
        })
    }

    /// What is on the panel now.
    pub fn frame(&self) -> &Framebuffer {
        self.driver.frame()
    }

    /// Turns the panel off, so a stopped program leaves no stale emotion on it.
    pub fn display_off(&mut self) -> Result<(), DisplayError> {
        self.driver.display_off()
    }

    /// Gives the bus back.
    pub fn release(self) -> I {
        self.driver.release()
    }

    fn footer(&self) -> String {
        match (&self.keyword_line, &self.prompt) {
            (Some(line), _) => line.clone(),
            (None, Some(word)) => prompt_line(word),
            (None, None) => String::new(),
        }
    }

    fn redraw(&mut self) -> Result<(), DisplayError> {
        let footer = self.footer();
        let frame = self.driver.frame_mut();
        match &self.body {
            Body::Blank => render_message(frame, "", &footer),
            Body::Reading(reading) => render_reading(frame, reading, &footer),
            Body::Message(message) => render_message(frame, message, &footer),
        }
        self.driver.flush()
    }
}

impl<I: I2c> Display for OledDisplay<I> {
    fn name(&self) -> &'static str {
        "oled"
    }

    fn show(&mut self, reading: &Reading) -> Result<(), DisplayError> {
        self.keyword_line = reading_line(reading);
        self.body = Body::Reading(reading.clone());
        self.redraw()
    }

    fn prompt(&mut self, word: Option<&str>) -> Result<(), DisplayError> {
        self.prompt = word.map(str::to_string);
        if self.prompt.is_some() {
            self.keyword_line = None;
        }
        self.redraw()
    }

    fn idle(&mut self, message: &str) -> Result<(), DisplayError> {
        self.keyword_line = None;
        self.body = Body::Message(message.to_string());
        self.redraw()
    }
}

/// The bottom line while prompting.
pub fn prompt_line(word: &str) -> String {
    fit(&format!("say: {word}"), &FOOTER_FONT, WIDTH)
}

/// The bottom line after a reading: the keyword ([`keyword_line`]), "no word heard"
/// when the keyword spotter heard no vocabulary word, else nothing.
pub fn reading_line(reading: &Reading) -> Option<String> {
    match &reading.keyword {
        Some(word) => Some(keyword_line(word, reading.keyword_source)),
        None if reading.no_word_heard() => Some(fit(NO_WORD_HEARD, &FOOTER_FONT, WIDTH)),
        None => None,
    }
}

/// The bottom line after a reading: the keyword, with its source when it fits.
pub fn keyword_line(word: &str, source: KeywordSource) -> String {
    // The spotter's word reads as "spotted" on the screen; the others by their name.
    let source = match source {
        KeywordSource::Spotter => "spotted",
        other => other.name(),
    };
    let long = format!("word: {word} ({source})");
    if long.chars().count() * char_width(&FOOTER_FONT) <= WIDTH {
        long
    } else {
        fit(&format!("word: {word}"), &FOOTER_FONT, WIDTH)
    }
}

/// The header word: "pleasant surprise" does not fit next to the percentage.
pub fn header_word(emotion: Emotion) -> &'static str {
    match emotion {
        Emotion::PleasantSurprise => "surprise",
        other => other.name(),
    }
}

/// A probability as a whole percentage in `0..=100` (NaN counts as 0).
pub fn percent(p: f32) -> u32 {
    if p.is_finite() {
        (p.clamp(0.0, 1.0) * 100.0).round() as u32
    } else {
        0
    }
}

/// Draws a reading: header, seven bars, bottom line.
pub fn render_reading(frame: &mut Framebuffer, reading: &Reading, footer: &str) {
    let Ok(()) = draw_reading(frame, reading, footer);
}

/// Draws a message wrapped over the upper lines, and the bottom line.
pub fn render_message(frame: &mut Framebuffer, message: &str, footer: &str) {
    let Ok(()) = draw_message(frame, message, footer);
}

fn draw_reading(
    frame: &mut Framebuffer,
    reading: &Reading,
    footer: &str,
) -> Result<(), Infallible> {
    frame.clear(BinaryColor::Off)?;
    let header = MonoTextStyle::new(&HEADER_FONT, BinaryColor::On);
    Text::with_baseline(
        header_word(reading.emotion),
        Point::zero(),
        header,
        Baseline::Top,
    )
    .draw(frame)?;
    let confidence = format!("{}%", percent(reading.confidence));
    let right = WIDTH - confidence.len() * char_width(&HEADER_FONT);
    Text::with_baseline(
        &confidence,
        Point::new(right as i32, 0),
        header,
        Baseline::Top,
    )
    .draw(frame)?;

    let label = MonoTextStyle::new(&LABEL_FONT, BinaryColor::On);
    let fill = PrimitiveStyle::with_fill(BinaryColor::On);
    for (i, (emotion, &p)) in Emotion::ALL.iter().zip(&reading.probabilities).enumerate() {
        let name = crate::output::short_name(*emotion);
        let top = BAR_TOP + BAR_PITCH * i as i32;
        Text::with_baseline(name, Point::new(0, top), label, Baseline::Top).draw(frame)?;
        let length = percent(p) * BAR_MAX / 100;
        if length > 0 {
            Rectangle::new(Point::new(BAR_X, top + 1), Size::new(length, BAR_HEIGHT))
                .into_styled(fill)
                .draw(frame)?;
        }
    }
    draw_footer(frame, footer)
}

fn draw_message(frame: &mut Framebuffer, message: &str, footer: &str) -> Result<(), Infallible> {
    frame.clear(BinaryColor::Off)?;
    let style = MonoTextStyle::new(&MESSAGE_FONT, BinaryColor::On);
    let line_height = MESSAGE_FONT.character_size.height as usize;
    let max_lines = FOOTER_TOP as usize / line_height;
    let columns = WIDTH / char_width(&MESSAGE_FONT);
    for (i, line) in wrap(message, columns).iter().take(max_lines).enumerate() {
        let y = (i * line_height) as i32;
        Text::with_baseline(line, Point::new(0, y), style, Baseline::Top).draw(frame)?;
    }
    draw_footer(frame, footer)
}

fn draw_footer(frame: &mut Framebuffer, footer: &str) -> Result<(), Infallible> {
    let style = MonoTextStyle::new(&FOOTER_FONT, BinaryColor::On);
    let text = fit(footer, &FOOTER_FONT, WIDTH);
    Text::with_baseline(&text, Point::new(0, FOOTER_TOP), style, Baseline::Top).draw(frame)?;
    Ok(())
}

fn char_width(font: &MonoFont<'_>) -> usize {
    (font.character_size.width + font.character_spacing) as usize
}

/// Cuts `text` to what fits in `width` pixels.
fn fit(text: &str, font: &MonoFont<'_>, width: usize) -> String {
    text.chars().take(width / char_width(font)).collect()
}

/// Greedy word wrap; words longer than a line are split.
fn wrap(text: &str, columns: usize) -> Vec<String> {
    let columns = columns.max(1);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let used = line.chars().count();
            let gap = usize::from(used > 0);
            if used + gap + word.len() <= columns {
                if gap == 1 {
                    line.push(' ');
                }
                line.extend(word.iter());
                break;
            }
            if used > 0 {
                lines.push(std::mem::take(&mut line));
                continue;
            }
            let rest = word.split_off(columns);
            lines.push(word.iter().collect());
            word = rest;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use embedded_hal::i2c::{ErrorKind, NoAcknowledgeSource};
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    use super::*;

    /// The init writes, spelled out from the datasheet independently of
    /// [`INIT_COMMANDS`].
    fn init_writes(address: u8) -> Vec<T> {
        [
            vec![0x00, 0xAE],
            vec![0x00, 0xD5, 0x80],
            vec![0x00, 0xA8, 0x3F],
            vec![0x00, 0xD3, 0x00],
            vec![0x00, 0x40],
            vec![0x00, 0x8D, 0x14],
            vec![0x00, 0x20, 0x00],
            vec![0x00, 0xA1],
            vec![0x00, 0xC8],
            vec![0x00, 0xDA, 0x12],
            vec![0x00, 0x81, 0xCF],
            vec![0x00, 0xD9, 0xF1],
            vec![0x00, 0xDB, 0x40],
            vec![0x00, 0xA4],
            vec![0x00, 0xA6],
            vec![0x00, 0xAF],
        ]
        .into_iter()
        .map(|bytes| T::write(address, bytes))
        .collect()
    }

    /// A full-frame flush of `bytes`: addressing, then 32 writes of 0x40 + 32 bytes.
    fn flush_writes(address: u8, bytes: &[u8; FRAME_BYTES]) -> Vec<T> {
        let mut writes = vec![
            T::write(address, vec![0x00, 0x21, 0x00, 0x7F]),
            T::write(address, vec![0x00, 0x22, 0x00, 0x07]),
        ];
        for chunk in bytes.chunks(32) {
            let mut data = vec![0x40];
            data.extend_from_slice(chunk);
            writes.push(T::write(address, data));
        }
        assert_eq!(writes.len(), 2 + 32);
        writes
    }

    fn reading(emotion: Emotion, probabilities: [f32; 7], keyword: Option<&str>) -> Reading {
        Reading {
            emotion,
            confidence: probabilities[emotion.index()],
            probabilities,
            keyword: keyword.map(str::to_string),
            keyword_source: if keyword.is_some() {
                KeywordSource::Spotter
            } else {
                KeywordSource::None
            },
            speech_seconds: 1.2,
            latency: Duration::from_millis(80),
        }
    }

    /// The panel's initial state in a test: init then a blank flush.
    fn opened(address: u8, then: Vec<T>) -> (OledDisplay<Mock>, Mock) {
        let mut expected = init_writes(address);
        expected.extend(flush_writes(address, &[0; FRAME_BYTES]));
        expected.extend(then);
        let mock = Mock::new(&expected);
        let display = OledDisplay::new(mock.clone(), address).unwrap();
        (display, mock)
    }

    #[test]
    fn oled_init_sends_the_datasheet_sequence() {
        let mut mock = Mock::new(&init_writes(0x3C));
        let mut driver = Ssd1306::new(mock.clone(), DEFAULT_ADDRESS);
        driver.init().unwrap();
        mock.done();

        let mut mock = Mock::new(&init_writes(0x3D));
        let mut driver = Ssd1306::new(mock.clone(), ALTERNATE_ADDRESS);
        driver.init().unwrap();
        mock.done();
    }

    #[test]
    fn oled_framebuffer_is_in_page_order() {
        let mut frame = Framebuffer::default();
        Pixel(Point::new(5, 13), BinaryColor::On)
            .draw(&mut frame)
            .unwrap();
        Pixel(Point::new(127, 63), BinaryColor::On)
            .draw(&mut frame)
            .unwrap();
        Pixel(Point::new(128, 0), BinaryColor::On)
            .draw(&mut frame)
            .unwrap();
        Pixel(Point::new(-1, 0), BinaryColor::On)
            .draw(&mut frame)
            .unwrap();
        let mut expected = [0u8; FRAME_BYTES];
        expected[128 + 5] = 0b0010_0000;
        expected[7 * 128 + 127] = 0b1000_0000;
        assert_eq!(frame.as_bytes(), &expected);
    }

    #[test]
    fn oled_flush_sends_the_exact_frame_in_32_byte_chunks() {
        // A diagonal: pixel (x, x / 2), worked out byte by byte.
        let mut expected = [0u8; FRAME_BYTES];
        for x in 0..128 {
            let y = x / 2;
            expected[(y / 8) * 128 + x] |= 1 << (y % 8);
        }
        let mut mock = Mock::new(&flush_writes(0x3C, &expected));
        let mut driver = Ssd1306::new(mock.clone(), 0x3C);
        for x in 0..128 {
            driver.frame_mut().set_pixel(x, x / 2, true);
        }
        driver.flush().unwrap();
        mock.done();
    }

    #[test]
    fn oled_show_sends_header_bars_and_keyword() {
        let probabilities = [0.05, 0.02, 0.03, 0.73, 0.10, 0.07, 0.0];
        let r = reading(Emotion::Happy, probabilities, Some("back"));

        let mut frame = Framebuffer::default();
        render_reading(&mut frame, &r, "word: back (spotted)");
        // The bars, independently of the drawing code: rows 16..=54 (pages 2..=6
        // less row 55, the bottom line's first) hold only bars between x 16 and 115.
        // Bar i covers rows 14 + 6i ..= 17 + 6i and x 16 .. 16 + percent.
        let lengths = [5, 2, 3, 73, 10, 7, 0];
        for page in 2..7 {
            let mask = if page == 6 { 0x7F } else { 0xFF };
            for x in 16..116 {
                let mut byte = 0u8;
                for bit in 0..8 {
                    let y = page * 8 + bit;
                    let lit = (0..7).any(|i| {
                        let top = 14 + 6 * i;
                        (top..top + 4).contains(&y) && x < 16 + lengths[i]
                    });
                    byte |= u8::from(lit) << bit;
                }
                let got = frame.as_bytes()[page * 128 + x] & mask;
                assert_eq!(got, byte, "page {page} x {x}");
            }
        }
        // Header text on the top rows, keyword on the bottom ones.
        assert!((0..128).any(|x| (0..13).any(|y| frame.pixel(x, y))));
        assert!((0..128).any(|x| (55..64).any(|y| frame.pixel(x, y))));

        let (mut display, mut mock) = opened(0x3C, flush_writes(0x3C, frame.as_bytes()));
        display.show(&r).unwrap();
        assert_eq!(display.frame(), &frame);
        mock.done();
    }

    #[test]
    fn oled_prompt_replaces_the_bottom_line() {
        let r = reading(
            Emotion::Sad,
            [0.0, 0.0, 0.0, 0.0, 0.1, 0.0, 0.9],
            Some("back"),
        );
        let mut with_keyword = Framebuffer::default();
        render_reading(&mut with_keyword, &r, "word: back (spotted)");
        let mut with_prompt = Framebuffer::default();
        render_reading(&mut with_prompt, &r, "say: chair");
        let mut cleared = Framebuffer::default();
        render_reading(&mut cleared, &r, "");
        // Only the bottom line differs.
        let top = FOOTER_TOP as usize;
        for y in 0..top {
            for x in 0..WIDTH {
                assert_eq!(with_keyword.pixel(x, y), with_prompt.pixel(x, y));
            }
        }
        assert_ne!(with_keyword, with_prompt);
        assert!((0..WIDTH).all(|x| (top..HEIGHT).all(|y| !cleared.pixel(x, y))));

        let mut then = flush_writes(0x3D, with_keyword.as_bytes());
        then.extend(flush_writes(0x3D, with_prompt.as_bytes()));
        then.extend(flush_writes(0x3D, cleared.as_bytes()));
        let (mut display, mut mock) = opened(0x3D, then);
        display.show(&r).unwrap();
        display.prompt(Some("chair")).unwrap();
        display.prompt(None).unwrap();
        mock.done();
    }

    #[test]
    fn oled_idle_shows_the_message_and_keeps_the_prompt() {
        let mut expected = Framebuffer::default();
        render_message(&mut expected, "listening", "say: chair");
        let mut blank_with_prompt = Framebuffer::default();
        render_message(&mut blank_with_prompt, "", "say: chair");
        let mut then = flush_writes(0x3C, blank_with_prompt.as_bytes());
        then.extend(flush_writes(0x3C, expected.as_bytes()));
        let (mut display, mut mock) = opened(0x3C, then);
        display.prompt(Some("chair")).unwrap();
        display.idle("listening").unwrap();
        assert_eq!(display.name(), "oled");
        mock.done();
    }

    #[test]
    fn oled_bus_error_becomes_display_error() {
        let mut expected = init_writes(0x3C);
        expected.truncate(1);
        expected[0] = T::write(0x3C, vec![0x00, 0xAE])
            .with_error(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        let mut mock = Mock::new(&expected);
        let err = OledDisplay::new(mock.clone(), 0x3C).err().unwrap();
        assert_eq!(err.display, "oled");
        assert!(err.detail.contains("0x3c"), "{err}");
        assert!(err.detail.contains("NoAcknowledge"), "{err}");
        mock.done();

        let mut mock = Mock::new(&[]);
        let mut driver = Ssd1306::new(mock.clone(), 0x3C);
        assert!(driver.command(&[0; 8]).is_err(), "too long, nothing sent");
        mock.done();
    }

    /// "no word heard" on the bottom line, with the emotion above it as usual.
    #[test]
    fn oled_says_no_word_heard() {
        let probabilities = [0.05, 0.02, 0.03, 0.10, 0.10, 0.0, 0.7];
        let mut r = reading(Emotion::Sad, probabilities, None);
        assert_eq!(reading_line(&r), None);
        r.keyword_source = KeywordSource::NoWordHeard;
        assert_eq!(reading_line(&r).as_deref(), Some("no word heard"));
        let mut frame = Framebuffer::default();
        render_reading(&mut frame, &r, "no word heard");
        let mut plain = Framebuffer::default();
        render_reading(&mut plain, &r, "");
        let top = FOOTER_TOP as usize;
        assert!((0..WIDTH).any(|x| (top..HEIGHT).any(|y| frame.pixel(x, y))));
        for y in 0..top {
            for x in 0..WIDTH {
                assert_eq!(frame.pixel(x, y), plain.pixel(x, y), "the reading stays");
            }
        }
        let (mut display, mut mock) = opened(0x3C, flush_writes(0x3C, frame.as_bytes()));
        display.show(&r).unwrap();
        assert_eq!(display.frame(), &frame);
        mock.done();
        let with_word = reading(Emotion::Sad, probabilities, Some("back"));
        assert_eq!(
            reading_line(&with_word).as_deref(),
            Some("word: back (spotted)")
        );
    }

    #[test]
    fn oled_display_off_sends_0xae() {
        let (mut display, mut mock) = opened(0x3C, vec![T::write(0x3C, vec![0x00, 0xAE])]);
        display.display_off().unwrap();
        mock.done();
    }

    #[test]
    fn oled_text_helpers() {
        assert_eq!(percent(0.734), 73);
        assert_eq!(percent(f32::NAN), 0);
        assert_eq!(percent(1.5), 100);
        assert_eq!(header_word(Emotion::PleasantSurprise), "surprise");
        assert_eq!(
            keyword_line("back", KeywordSource::Spotter),
            "word: back (spotted)"
        );
        assert_eq!(
            keyword_line("extraordinarily", KeywordSource::Spotter),
            "word: extraordinarily"
        );
        assert_eq!(prompt_line("back"), "say: back");
        assert_eq!(
            wrap("no microphone: device unplugged", 21),
            vec!["no microphone: device", "unplugged"]
        );
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
    }

    /// `cargo test -p emotion-edge --lib oled_layout_dump -- --nocapture` prints the
    /// screens as text, to check the layout by eye.
    #[test]
    fn oled_layout_dump() {
        let probabilities = [0.04, 0.02, 0.03, 0.05, 0.06, 0.78, 0.02];
        let r = reading(Emotion::PleasantSurprise, probabilities, Some("back"));
        let mut frame = Framebuffer::default();
        render_reading(
            &mut frame,
            &r,
            &keyword_line("back", KeywordSource::Spotter),
        );
        println!("{}", frame.to_ascii());
        let r = reading(Emotion::Disgust, [0.1, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0], None);
        render_reading(&mut frame, &r, &prompt_line("youth"));
        println!("{}", frame.to_ascii());
        render_message(
            &mut frame,
            "listening (hold the button and speak)",
            "say: youth",
        );
        println!("{}", frame.to_ascii());
        assert_eq!(frame.to_ascii().lines().count(), HEIGHT);
    }
}
