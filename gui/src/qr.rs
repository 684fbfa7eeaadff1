//! Invite codes as QR codes, drawn into a Slint image.

use qrcode::{Color, EcLevel, QrCode};
use slint::{Image, Rgb8Pixel, SharedPixelBuffer};

/// Pixels per QR module.
const SCALE: usize = 4;
/// White modules around the code (the QR standard asks for four).
const QUIET: usize = 4;

/// The QR code of `text` (an invite: base32, so the alphanumeric mode
/// keeps it small), black on white at every palette, as QR readers expect.
pub fn image(text: &str) -> Option<Image> {
    // Base32 upper-case fits QR's alphanumeric mode: ~40 % fewer modules.
    let upper = text.to_ascii_uppercase();
    let code = QrCode::with_error_correction_level(upper.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut buffer = SharedPixelBuffer::<Rgb8Pixel>::new(side as u32, side as u32);
    let pixels = buffer.make_mut_slice();
    pixels.fill(Rgb8Pixel::new(255, 255, 255));
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i % width + QUIET, i / width + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            let row = y * side;
            pixels[row + mx * SCALE..row + (mx + 1) * SCALE].fill(Rgb8Pixel::new(0, 0, 0));
        }
    }
    Some(Image::from_rgb8(buffer))
}
