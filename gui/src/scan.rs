//! Reading QR codes from an image file: a photo or a screenshot of a
//! contact's invite or safety number; and from camera frames
//! ([`crate::camera`]), once turned into grey levels.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Largest image file read, in bytes: a phone photo is a few MB.
pub const MAX_IMAGE_FILE: u64 = 40 << 20;
/// Largest image read, in pixels per side (a bigger one is scaled down).
const MAX_SIDE: u32 = 2048;

/// The text of every QR code found in `image`, in the order found.
pub fn decode(image: &image::DynamicImage) -> Vec<String> {
    decode_luma(image.to_luma8())
}

/// The text of every QR code found in a grey image, in the order found.
pub fn decode_luma(luma: image::GrayImage) -> Vec<String> {
    let mut luma = luma;
    if luma.width().max(luma.height()) > MAX_SIDE {
        let (w, h) = (luma.width(), luma.height());
        let k = f64::from(MAX_SIDE) / f64::from(w.max(h));
        let (nw, nh) = (
            ((f64::from(w) * k) as u32).max(1),
            ((f64::from(h) * k) as u32).max(1),
        );
        luma = image::imageops::resize(&luma, nw, nh, image::imageops::FilterType::Triangle);
    }
    let found = grids(luma.clone());
    if !found.is_empty() {
        return found;
    }
    // A small or jagged code (a screenshot turned, a low-resolution photo)
    // is often found once smoothed to twice the size; a huge one once
    // halved. Never past `MAX_SIDE` squared in pixels: rqrr's work grows
    // with the square of the pixels on an image full of finder patterns
    // (it copies the image for every three it tries), and a 4096-pixel
    // retry of a 2048-pixel image would cost sixteen times the first look.
    let (w, h) = (luma.width(), luma.height());
    for k in [2.0, 0.5] {
        let (nw, nh) = ((f64::from(w) * k) as u32, (f64::from(h) * k) as u32);
        if u64::from(nw) * u64::from(nh) > u64::from(MAX_SIDE).pow(2) || nw.min(nh) < 21 {
            continue;
        }
        let resized = image::imageops::resize(&luma, nw, nh, image::imageops::FilterType::Triangle);
        let found = grids(resized);
        if !found.is_empty() {
            return found;
        }
    }
    Vec::new()
}

/// The codes rqrr finds in `luma`. rqrr 0.11 asserts on some images
/// (three finder patterns askew make a perspective that maps a cell past
/// `i32::MAX`; upstream WanzenBug/rqrr#54): such an image holds no code
/// we can read, and the panic is contained, not the thread's end.
fn grids(luma: image::GrayImage) -> Vec<String> {
    strand_node::runtime::panics::contained("reading QR codes", || {
        let mut prepared = rqrr::PreparedImage::prepare(luma);
        prepared
            .detect_grids()
            .into_iter()
            .filter_map(|grid| grid.decode().ok().map(|(_, text)| text))
            .collect()
    })
    .unwrap_or_default()
}

/// Whether [`read_file_apart`] is reading an image.
static READING: AtomicBool = AtomicBool::new(false);

/// What [`read_file_apart`] says while it is still reading another image.
pub const STILL_READING: &str = "Still reading the last image: try again once it is done.";

/// [`decode_file`] on a thread of its own, which then calls `done` with
/// what it says. Reading an image made to be hard (hundreds of finder
/// patterns) can take rqrr minutes, and nothing can stop it: the app's
/// core thread, which answers every request of the user's, must not wait
/// for it. One image is read at a time, so photos picked again and again
/// cannot take every core: while one is read, `done` is called at once
/// with [`STILL_READING`].
pub fn read_file_apart(
    path: PathBuf,
    done: impl FnOnce(Result<Vec<String>, String>) + Send + 'static,
) {
    if READING.swap(true, Ordering::AcqRel) {
        done(Err(STILL_READING.into()));
        return;
    }
    // Taken by the thread, or back here if there is none.
    let done = std::sync::Arc::new(std::sync::Mutex::new(Some(done)));
    let theirs = done.clone();
    let spawned = std::thread::Builder::new()
        .name("strand-qr-reader".into())
        .spawn(move || {
            // Whatever fails in reading (an image decoder's bug as well as
            // rqrr's), an answer comes and the next image can be read.
            let found =
                strand_node::runtime::panics::contained("reading an image", || decode_file(&path))
                    .unwrap_or_else(|_| Err(format!("{} could not be read.", path.display())));
            READING.store(false, Ordering::Release);
            if let Some(done) = theirs.lock().unwrap_or_else(|e| e.into_inner()).take() {
                done(found)
            }
        });
    if let Err(e) = spawned {
        READING.store(false, Ordering::Release);
        if let Some(done) = done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            done(Err(format!("Cannot read the image now: {e}.")));
        }
    }
}

/// Reads the image at `path` (PNG or JPEG) and decodes its QR codes.
/// Errors say what the user can do.
pub fn decode_file(path: &Path) -> Result<Vec<String>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("Cannot read {}: {e}.", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file.", path.display()));
    }
    if meta.len() > MAX_IMAGE_FILE {
        return Err(format!(
            "{} is {} MB; pick an image under {} MB.",
            path.display(),
            meta.len() >> 20,
            MAX_IMAGE_FILE >> 20
        ));
    }
    let reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("Cannot read {}: {e}.", path.display()))?;
    let mut reader = reader;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(512 << 20);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| {
        format!(
            "{} is not an image Strand can read (PNG or JPEG): {e}.",
            path.display()
        )
    })?;
    let found = decode(&image);
    if found.is_empty() {
        return Err(
            "No QR code found in that image. Take the photo straight on, with the whole code in view and in focus."
                .into(),
        );
    }
    Ok(found)
}
