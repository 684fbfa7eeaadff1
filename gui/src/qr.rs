//! Invite codes and safety numbers as QR codes, drawn into a Slint image.

use qrcode::{Color, EcLevel, QrCode};
use slint::{Image, Rgb8Pixel, SharedPixelBuffer};

/// Pixels per QR module.
const SCALE: usize = 4;
/// White modules around the code (the QR standard asks for four).
const QUIET: usize = 4;

/// The QR code of `text` as a square of grey levels (0 black, 255 white),
/// row by row, and its side in pixels. Upper-cased first: invites are
/// base32 and safety numbers digits, so QR's alphanumeric mode keeps the
/// code ~40 % smaller (decoders give the text back upper case; invites
/// accept it).
pub fn pixels(text: &str) -> Option<(usize, Vec<u8>)> {
    let upper = text.to_ascii_uppercase();
    let code = QrCode::with_error_correction_level(upper.as_bytes(), EcLevel::M).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut out = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != Color::Dark {
            continue;
        }
        let (mx, my) = (i % width + QUIET, i / width + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            let row = y * side;
            out[row + mx * SCALE..row + (mx + 1) * SCALE].fill(0);
        }
    }
    Some((side, out))
}

/// The QR code of `text`, black on white at every palette, as QR readers
/// expect.
pub fn image(text: &str) -> Option<Image> {
    let (side, grey) = pixels(text)?;
    let mut buffer = SharedPixelBuffer::<Rgb8Pixel>::new(side as u32, side as u32);
    for (px, g) in buffer.make_mut_slice().iter_mut().zip(grey) {
        *px = Rgb8Pixel::new(g, g, g);
    }
    Some(Image::from_rgb8(buffer))
}
