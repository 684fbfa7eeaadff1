//! Reading QR codes from a camera: a contact holds up their phone or
//! laptop showing an invite or a safety number, and the app reads it from
//! the video, as from a photo ([`crate::scan`]).
//!
//! On Linux a camera is a V4L2 capture device (`/dev/video*`), read with
//! `linuxvideo` (memory-mapped streaming). A scan runs on its own thread:
//! it picks the pixel format cheapest to turn into grey levels that the
//! camera offers, asks for 1280×720 (the driver picks what is near),
//! takes frames as they come and turns each into grey levels ([`luma`]).
//! A second thread of the scan's looks for QR codes in them
//! ([`crate::scan::decode_luma`]), one frame at a time, the newest when it
//! is free: rqrr can take tens of seconds over a frame full of finder
//! patterns (a poster behind the code), and the camera is read meanwhile,
//! so previews go on and a stopped scan lets the camera go at once. A scan
//! ends when a code the caller accepts is found, when it is stopped, after
//! [`SCAN_TIMEOUT`], or on an error, and shows the user a small grey
//! preview meanwhile so they can aim. Frames never leave the process and
//! nothing is stored.
//!
//! Everything after the device (formats, conversion, decoding, bounds) is
//! tested with frames built from the app's own QR drawings; the device
//! side needs a camera (see the README for what was exercised).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::GrayImage;

/// A scan gives up after this long without finding a code.
pub const SCAN_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest frame side accepted from a driver, in pixels.
pub const MAX_SIDE: u32 = 8192;
/// Width of the preview shown while scanning, in pixels.
pub const PREVIEW_WIDTH: u32 = 320;
/// Time between two previews.
const PREVIEW_EVERY: Duration = Duration::from_millis(150);
/// Frames waiting for a scan's QR reader, and answers from it waiting to
/// be looked at: one. A frame is handed over only while the reader is
/// idle, so it reads a recent one, and a scan holds at most one frame
/// besides the one it is turning into a preview.
const READER_QUEUE: usize = 1;
/// What a scan ends with if its QR reader's thread is gone (a panic that
/// [`crate::scan`] did not contain).
const READER_GONE: &str =
    "Reading QR codes from the camera failed. Try again, or use a photo of the code.";

/// How a frame's pixels are laid out: the V4L2 formats read here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// `GREY`: one byte of brightness per pixel.
    Grey,
    /// `YUYV`: 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// `UYVY`: 4:2:2, U Y0 V Y1.
    Uyvy,
    /// `NV12`: a plane of Y, then interleaved U and V at quarter size.
    Nv12,
    /// `YU12` (I420): a plane of Y, then U and V planes.
    Yu12,
    /// `RGB3`: 8-bit red, green, blue.
    Rgb24,
    /// `BGR3`: 8-bit blue, green, red.
    Bgr24,
    /// `MJPG` or `JPEG`: each frame a JPEG image.
    Jpeg,
}

impl Layout {
    /// Every layout, cheapest to turn into grey levels first (the order a
    /// camera's formats are chosen in).
    pub const ALL: [Layout; 8] = [
        Layout::Grey,
        Layout::Nv12,
        Layout::Yu12,
        Layout::Yuyv,
        Layout::Uyvy,
        Layout::Rgb24,
        Layout::Bgr24,
        Layout::Jpeg,
    ];

    /// The layout of a V4L2 fourcc, if it is one read here.
    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<Layout> {
        Some(match &fourcc {
            b"GREY" => Layout::Grey,
            b"YUYV" => Layout::Yuyv,
            b"UYVY" => Layout::Uyvy,
            b"NV12" => Layout::Nv12,
            b"YU12" => Layout::Yu12,
            b"RGB3" => Layout::Rgb24,
            b"BGR3" => Layout::Bgr24,
            b"MJPG" | b"JPEG" => Layout::Jpeg,
            _ => return None,
        })
    }

    /// Its V4L2 fourcc.
    pub fn fourcc(self) -> [u8; 4] {
        *match self {
            Layout::Grey => b"GREY",
            Layout::Yuyv => b"YUYV",
            Layout::Uyvy => b"UYVY",
            Layout::Nv12 => b"NV12",
            Layout::Yu12 => b"YU12",
            Layout::Rgb24 => b"RGB3",
            Layout::Bgr24 => b"BGR3",
            Layout::Jpeg => b"MJPG",
        }
    }

    /// Bytes per pixel in a line of the first plane (0: compressed).
    fn line_bytes_per_pixel(self) -> u64 {
        match self {
            Layout::Grey | Layout::Nv12 | Layout::Yu12 => 1,
            Layout::Yuyv | Layout::Uyvy => 2,
            Layout::Rgb24 | Layout::Bgr24 => 3,
            Layout::Jpeg => 0,
        }
    }
}

/// One captured frame, as a driver hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// How its pixels are laid out.
    pub layout: Layout,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one line of the first plane to the next (drivers may pad
    /// lines); 0 for packed lines or JPEG.
    pub stride: u32,
    /// The bytes the driver filled.
    pub data: &'a [u8],
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Zero or too large a size.
    #[error("a {0}×{1} frame is not one a camera sends")]
    Size(u32, u32),
    /// Fewer bytes than its format and size need.
    #[error("the frame holds {got} bytes where {need} are needed")]
    Short {
        /// Bytes needed.
        need: u64,
        /// Bytes there.
        got: usize,
    },
    /// Its lines are shorter than its width.
    #[error("a line of {0} bytes is too short for the frame's width")]
    Stride(u32),
    /// A JPEG frame that does not decode.
    #[error("the frame is not a JPEG image: {0}")]
    Jpeg(String),
}

/// The brightness of every pixel of `frame`, one byte each.
pub fn luma(frame: &Frame<'_>) -> Result<GrayImage, FrameError> {
    let (w, h) = (frame.width, frame.height);
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(FrameError::Size(w, h));
    }
    if frame.layout == Layout::Jpeg {
        return jpeg_luma(frame.data);
    }
    let packed = u64::from(w) * frame.layout.line_bytes_per_pixel();
    let stride = if frame.stride == 0 {
        packed
    } else {
        u64::from(frame.stride)
    };
    if stride < packed {
        return Err(FrameError::Stride(frame.stride));
    }
    // The first plane's lines; for the planar formats the colour planes
    // follow, and are not needed.
    let need = stride * u64::from(h - 1) + packed;
    if (frame.data.len() as u64) < need {
        return Err(FrameError::Short {
            need,
            got: frame.data.len(),
        });
    }
    let (w, stride) = (w as usize, stride as usize);
    let mut out = Vec::with_capacity(w * h as usize);
    for line in frame.data.chunks(stride).take(h as usize) {
        match frame.layout {
            Layout::Grey | Layout::Nv12 | Layout::Yu12 => out.extend_from_slice(&line[..w]),
            Layout::Yuyv => out.extend(line[..2 * w].iter().step_by(2)),
            Layout::Uyvy => out.extend(line[1..2 * w].iter().step_by(2)),
            Layout::Rgb24 => out.extend(
                line[..3 * w]
                    .chunks_exact(3)
                    .map(|p| grey(p[0], p[1], p[2])),
            ),
            Layout::Bgr24 => out.extend(
                line[..3 * w]
                    .chunks_exact(3)
                    .map(|p| grey(p[2], p[1], p[0])),
            ),
            Layout::Jpeg => unreachable!("decoded above"),
        }
    }
    Ok(GrayImage::from_raw(w as u32, h, out).expect("w × h bytes"))
}

/// BT.601 luma of one pixel.
fn grey(r: u8, g: u8, b: u8) -> u8 {
    ((77 * u32::from(r) + 150 * u32::from(g) + 29 * u32::from(b) + 128) >> 8) as u8
}

/// A JPEG frame's grey levels. (Some cameras' JPEG frames are not the size
/// negotiated: the image's own size is taken, within the same bounds.)
fn jpeg_luma(data: &[u8]) -> Result<GrayImage, FrameError> {
    let mut reader =
        image::ImageReader::with_format(std::io::Cursor::new(data), image::ImageFormat::Jpeg);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| FrameError::Jpeg(e.to_string()))?;
    Ok(image.to_luma8())
}

/// The QR texts in one frame.
pub fn decode_frame(frame: &Frame<'_>) -> Result<Vec<String>, FrameError> {
    Ok(crate::scan::decode_luma(luma(frame)?))
}

/// A grey preview of `image`, [`PREVIEW_WIDTH`] wide.
pub fn preview(image: &GrayImage) -> GrayImage {
    let w = PREVIEW_WIDTH.min(image.width()).max(1);
    let h = ((u64::from(image.height()) * u64::from(w) / u64::from(image.width().max(1))) as u32)
        .max(1);
    image::imageops::resize(image, w, h, image::imageops::FilterType::Nearest)
}

/// A camera on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Camera {
    /// Its device file.
    pub path: PathBuf,
    /// Its name, as the driver gives it, made safe to show
    /// ([`shown_name`]).
    pub name: String,
}

/// A camera's name as the driver gives it (any bytes a driver, or a USB
/// device naming itself, chose), shown on one line with control and
/// invisible characters made visible.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn shown_name(card: &str) -> String {
    strand_node::display::one_line(card.trim())
}

/// The cameras this machine has that deliver a format read here.
pub fn cameras() -> Vec<Camera> {
    #[cfg(target_os = "linux")]
    {
        v4l2::cameras()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// What a scan reports, from its own thread.
pub enum Report {
    /// A preview frame to show.
    Preview(GrayImage),
    /// A code was found that was not accepted (what it was, for the user).
    Skipped(String),
    /// The scan ended: the accepted text, or why not.
    Done(Result<String, String>),
}

/// A scan in progress; dropping it stops it.
pub struct Scan {
    stop: Arc<AtomicBool>,
}

impl Scan {
    /// Asks the scan to end (it reports `Done(Err)` within a frame or two).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts reading `camera` on a thread of its own. Every text found is
/// offered to `accept`; the first accepted one ends the scan. `report` is
/// called on the scan's thread.
pub fn start(
    camera: &Path,
    accept: impl Fn(&str) -> bool + Send + 'static,
    report: impl FnMut(Report) + Send + 'static,
) -> Scan {
    start_with(camera, &Layout::ALL, accept, report)
}

/// [`start`], choosing among `layouts` only (in that order of preference).
pub fn start_with(
    camera: &Path,
    layouts: &[Layout],
    accept: impl Fn(&str) -> bool + Send + 'static,
    report: impl FnMut(Report) + Send + 'static,
) -> Scan {
    let layouts = layouts.to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let camera = camera.to_path_buf();
    let mut report = report;
    std::thread::Builder::new()
        .name("strand-camera".into())
        .spawn(move || {
            let result = run(&camera, &layouts, &flag, &accept, &mut report);
            report(Report::Done(result));
        })
        .expect("spawn the camera thread");
    Scan { stop }
}

/// Where frames come from: hands the next one to its callback, or says
/// there was none yet (`Ok(false)`); an error ends the scan.
type NextFrame<'a> = dyn FnMut(&mut dyn FnMut(&Frame<'_>)) -> Result<bool, String> + 'a;

/// Turns a frame's grey levels into the QR texts in it:
/// [`crate::scan::decode_luma`], or what a test puts in its place.
type Decode = Box<dyn Fn(GrayImage) -> Vec<String> + Send>;

/// Looks at frames from `next_frame` until one holds an accepted code.
/// The codes in a frame are looked for by `decode` on a thread of its own
/// ([`Reader`]), handed the newest frame whenever it is free; frames that
/// come while it is busy serve as previews only, and are dropped. So however
/// long a frame takes to read, `stop` and the timeout are looked at after
/// every frame, and this returns (letting the camera go) without waiting
/// for the reader.
fn watch(
    stop: &AtomicBool,
    accept: &dyn Fn(&str) -> bool,
    report: &mut dyn FnMut(Report),
    next_frame: &mut NextFrame<'_>,
    decode: Decode,
) -> Result<String, String> {
    let deadline = Instant::now() + SCAN_TIMEOUT;
    let mut reader = Reader::start(decode)?;
    let mut last_preview: Option<Instant> = None;
    let mut last_skipped = String::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err("Stopped.".into());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "No QR code found in {} s. Hold the code closer, flat and well lit, or use a photo of it.",
                SCAN_TIMEOUT.as_secs()
            ));
        }
        for text in reader.found()? {
            if accept(&text) {
                return Ok(text);
            }
            if text != last_skipped {
                report(Report::Skipped(text.clone()));
                last_skipped = text;
            }
        }
        let idle = reader.idle();
        let mut to_read = None;
        let mut bad_frame = None;
        let mut on_frame = |frame: &Frame<'_>| match luma(frame) {
            Ok(grey) => {
                if last_preview.is_none_or(|t| t.elapsed() >= PREVIEW_EVERY) {
                    last_preview = Some(Instant::now());
                    report(Report::Preview(preview(&grey)));
                }
                if idle {
                    to_read = Some(grey);
                }
            }
            Err(e) => bad_frame = Some(e),
        };
        if !next_frame(&mut on_frame)? {
            continue;
        }
        if let Some(e) = bad_frame {
            tracing::debug!("camera frame skipped: {e}");
        }
        if let Some(grey) = to_read {
            reader.read(grey)?;
        }
    }
}

/// Camera frames being read for QR codes, by every scan's reader. A scan
/// stopped lets its reader finish its frame (up to tens of seconds for one
/// full of finder patterns); a new scan hands its reader nothing while
/// that goes on, so starting and stopping again and again in front of such
/// a poster keeps one frame being read, not one per scan.
static FRAMES_BEING_READ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a frame in [`FRAMES_BEING_READ`] while it lives (a panic too).
struct BeingRead;

impl BeingRead {
    fn new() -> BeingRead {
        FRAMES_BEING_READ.fetch_add(1, Ordering::AcqRel);
        BeingRead
    }
}

impl Drop for BeingRead {
    fn drop(&mut self) {
        FRAMES_BEING_READ.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The thread a scan's frames are read for QR codes on, one at a time.
/// Dropping it closes both its channels: the thread ends once done with
/// the frame it holds, if any, and what it found there is dropped.
struct Reader {
    /// Frames to read; one is handed over only while the thread is idle.
    frames: SyncSender<GrayImage>,
    /// The texts found in each frame handed over, in turn.
    answers: Receiver<Vec<String>>,
    /// Whether a frame was handed over whose texts have not come back.
    busy: bool,
}

impl Reader {
    /// Starts the thread, reading frames with `decode`.
    fn start(decode: Decode) -> Result<Reader, String> {
        let (frames, inbox) = mpsc::sync_channel::<GrayImage>(READER_QUEUE);
        let (outbox, answers) = mpsc::sync_channel::<Vec<String>>(READER_QUEUE);
        std::thread::Builder::new()
            .name("strand-camera-qr".into())
            .spawn(move || {
                // Ends when the scan has ended: no more frames, or no one
                // to tell what this one held.
                for grey in inbox {
                    let reading = BeingRead::new();
                    let texts = decode(grey);
                    drop(reading);
                    if outbox.send(texts).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("Cannot start reading QR codes: {e}."))?;
        Ok(Reader {
            frames,
            answers,
            busy: false,
        })
    }

    /// Whether it would take a frame now: not while it, or the reader of
    /// a scan stopped before, is reading one ([`FRAMES_BEING_READ`]).
    fn idle(&self) -> bool {
        !self.busy && FRAMES_BEING_READ.load(Ordering::Acquire) == 0
    }

    /// Hands `grey` over to be read, if the thread is idle (else drops it).
    fn read(&mut self, grey: GrayImage) -> Result<(), String> {
        if self.busy {
            return Ok(());
        }
        match self.frames.try_send(grey) {
            Ok(()) => {
                self.busy = true;
                Ok(())
            }
            // Not while idle: the thread has taken every frame whose texts
            // came back, so the channel is empty. Dropped if it were not.
            Err(TrySendError::Full(_)) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(READER_GONE.into()),
        }
    }

    /// The texts found in the frame last handed over, once they are back;
    /// none until then (without waiting), nor while idle.
    fn found(&mut self) -> Result<Vec<String>, String> {
        if !self.busy {
            return Ok(Vec::new());
        }
        match self.answers.try_recv() {
            Ok(texts) => {
                self.busy = false;
                Ok(texts)
            }
            Err(TryRecvError::Empty) => Ok(Vec::new()),
            Err(TryRecvError::Disconnected) => Err(READER_GONE.into()),
        }
    }
}

fn run(
    camera: &Path,
    layouts: &[Layout],
    stop: &AtomicBool,
    accept: &dyn Fn(&str) -> bool,
    report: &mut dyn FnMut(Report),
) -> Result<String, String> {
    #[cfg(target_os = "linux")]
    {
        // A scan just stopped may still hold the camera for a frame or
        // two: a busy camera is tried again for a while (5 s: a loaded or
        // emulated machine took over 2 s to let go of it in CI).
        let mut tries = 0;
        let mut stream = loop {
            match v4l2::Stream::open(camera, layouts) {
                Ok(s) => break s,
                Err((true, _)) if tries < 50 && !stop.load(Ordering::Relaxed) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err((_, message)) => return Err(message),
            }
        };
        watch(
            stop,
            accept,
            report,
            &mut |f| stream.next(f),
            Box::new(crate::scan::decode_luma),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (layouts, stop, accept, report, watch);
        Err(format!(
            "Reading {} is not supported on this system; use a photo of the code.",
            camera.display()
        ))
    }
}

#[cfg(target_os = "linux")]
mod v4l2 {
    //! The device side, with `linuxvideo`.

    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::time::Duration;

    use linuxvideo::format::{PixFormat, PixelFormat};
    use linuxvideo::{BufType, CapabilityFlags, Device};

    use super::{Camera, Frame, Layout};

    /// How long to wait for a frame before looking at the stop flag again.
    const FRAME_WAIT: Duration = Duration::from_millis(250);

    /// The first of `wanted` that `device` offers, if any.
    fn best_layout(device: &Device, wanted: &[Layout]) -> Option<Layout> {
        let offered: Vec<Layout> = device
            .formats(BufType::VIDEO_CAPTURE)
            .filter_map(|f| f.ok())
            .filter_map(|f| Layout::from_fourcc(f.pixel_format().as_fourcc()))
            .collect();
        wanted.iter().copied().find(|l| offered.contains(l))
    }

    pub(super) fn cameras() -> Vec<Camera> {
        let Ok(devices) = linuxvideo::list() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for device in devices.flatten() {
            let Ok(caps) = device.capabilities() else {
                continue;
            };
            if !caps
                .device_capabilities()
                .contains(CapabilityFlags::VIDEO_CAPTURE | CapabilityFlags::STREAMING)
                || best_layout(&device, &Layout::ALL).is_none()
            {
                continue;
            }
            let Ok(path) = device.path() else { continue };
            out.push(Camera {
                path,
                name: super::shown_name(caps.card()),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// A camera streaming frames.
    pub(super) struct Stream {
        stream: linuxvideo::stream::ReadStream,
        layout: Layout,
        width: u32,
        height: u32,
        stride: u32,
    }

    impl Stream {
        /// The camera at `path`, streaming; or whether it was busy, and
        /// what to tell the user.
        pub(super) fn open(path: &Path, layouts: &[Layout]) -> Result<Stream, (bool, String)> {
            Stream::open_inner(path, layouts).map_err(|e| {
                let busy = e.1.raw_os_error() == Some(libc::EBUSY);
                (busy, e.0)
            })
        }

        fn open_inner(path: &Path, layouts: &[Layout]) -> Result<Stream, (String, std::io::Error)> {
            let shown = path.display();
            let device = Device::open(path).map_err(|e| {
                let m = match e.kind() {
                    std::io::ErrorKind::PermissionDenied => format!(
                        "Cannot open the camera {shown}: permission denied (is your user in the `video` group?)."
                    ),
                    std::io::ErrorKind::NotFound => format!("There is no camera at {shown}."),
                    _ => format!("Cannot open the camera {shown}: {e}."),
                };
                (m, e)
            })?;
            let unsupported = || {
                (
                    format!("The camera {shown} offers no picture format Strand can read."),
                    std::io::Error::from(std::io::ErrorKind::Unsupported),
                )
            };
            let layout = best_layout(&device, layouts).ok_or_else(unsupported)?;
            let capture = device
                .video_capture(PixFormat::new(
                    1280,
                    720,
                    PixelFormat::from_fourcc(layout.fourcc()),
                ))
                .map_err(|e| (format!("The camera {shown} refused to start: {e}."), e))?;
            let format = capture.format();
            let layout =
                Layout::from_fourcc(format.pixel_format().as_fourcc()).ok_or_else(|| {
                    (
                        format!("The camera {shown} chose a picture format Strand cannot read."),
                        std::io::Error::from(std::io::ErrorKind::Unsupported),
                    )
                })?;
            let (width, height, stride) =
                (format.width(), format.height(), format.bytes_per_line());
            let stream = capture
                .into_stream()
                .map_err(|e| (format!("The camera {shown} would not stream: {e}."), e))?;
            tracing::info!("camera {shown}: {}×{} {:?}", width, height, layout);
            Ok(Stream {
                stream,
                layout,
                width,
                height,
                stride,
            })
        }

        /// Hands the next frame to `f`; `Ok(false)` if none came within
        /// [`FRAME_WAIT`].
        pub(super) fn next(&mut self, f: &mut dyn FnMut(&Frame<'_>)) -> Result<bool, String> {
            if !readable(&self.stream, FRAME_WAIT)? {
                return Ok(false);
            }
            let (layout, width, height, stride) =
                (self.layout, self.width, self.height, self.stride);
            self.stream
                .dequeue(|buf| {
                    if !buf.is_error() {
                        f(&Frame {
                            layout,
                            width,
                            height,
                            stride: if layout == Layout::Jpeg { 0 } else { stride },
                            data: &buf,
                        });
                    }
                    Ok(())
                })
                .map_err(|e| format!("The camera stopped: {e}."))?;
            Ok(true)
        }
    }

    /// Whether `fd` has a frame to read within `wait`.
    fn readable(fd: &impl AsRawFd, wait: Duration) -> Result<bool, String> {
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, wait.as_millis() as libc::c_int) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(format!("The camera stopped: {e}."));
        }
        if p.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            return Err("The camera was disconnected.".into());
        }
        Ok(n > 0 && p.revents & libc::POLLIN != 0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn a_camera_s_name_is_shown_on_one_line() {
        assert_eq!(shown_name(" Integrated Camera\n"), "Integrated Camera");
        let shown = shown_name("Cam\nera\u{202e}x");
        assert!(
            !shown.contains('\n') && !shown.contains('\u{202e}'),
            "{shown}"
        );
    }

    /// The app's own drawing of `text`, filling most of the height of a
    /// grey `w`×`h` scene, as a camera held up to a screen would see it.
    fn scene(text: &str, w: u32, h: u32) -> GrayImage {
        let (side, px) = crate::qr::pixels(text).unwrap();
        let code = GrayImage::from_raw(side as u32, side as u32, px).unwrap();
        let k = (w.min(h) * 8 / 10).max(1);
        let code = image::imageops::resize(&code, k, k, image::imageops::FilterType::Triangle);
        let mut out = GrayImage::from_pixel(w, h, image::Luma([140]));
        let (x, y) = ((w - code.width()) / 2, (h - code.height()) / 2);
        image::imageops::overlay(&mut out, &code, i64::from(x), i64::from(y));
        out
    }

    /// `grey` packed as `layout`, lines padded to `stride` bytes (0: none),
    /// with made-up colour where the layout has colour.
    fn pack(grey: &GrayImage, layout: Layout, stride: u32) -> Vec<u8> {
        let (w, h) = (grey.width() as usize, grey.height() as usize);
        let line = w * layout.line_bytes_per_pixel() as usize;
        let stride = if stride == 0 { line } else { stride as usize };
        let mut out = Vec::new();
        for y in 0..h {
            let row = &grey.as_raw()[y * w..(y + 1) * w];
            let start = out.len();
            match layout {
                Layout::Grey | Layout::Nv12 | Layout::Yu12 => out.extend_from_slice(row),
                Layout::Yuyv => {
                    for (x, v) in row.iter().enumerate() {
                        out.extend([*v, if x % 2 == 0 { 90 } else { 200 }]);
                    }
                }
                Layout::Uyvy => {
                    for (x, v) in row.iter().enumerate() {
                        out.extend([if x % 2 == 0 { 90 } else { 200 }, *v]);
                    }
                }
                // Grey pixels: equal channels give back the same luma.
                Layout::Rgb24 | Layout::Bgr24 => {
                    for v in row {
                        out.extend([*v, *v, *v]);
                    }
                }
                Layout::Jpeg => unreachable!(),
            }
            out.resize(start + stride, 0xAB);
        }
        match layout {
            Layout::Nv12 => out.extend(std::iter::repeat_n(128, w * h / 2)),
            Layout::Yu12 => out.extend(std::iter::repeat_n(128, w * h / 2)),
            _ => {}
        }
        out
    }

    fn jpeg(grey: &GrayImage) -> Vec<u8> {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&image::DynamicImage::ImageLuma8(grey.clone()).to_rgb8())
            .unwrap();
        out
    }

    const INVITE: &str = "strand:ABCDEFGHIJKLMNOPQRSTUVWXYZ234567ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    #[test]
    fn every_layout_gives_back_the_code() {
        let text = "STRAND-SAFETY-1:123451234512345123451234512345123451234512345123451234512345";
        for (w, h) in [(640, 480), (321, 241)] {
            let grey = scene(text, w, h);
            for layout in Layout::ALL {
                for stride in [0, w * layout.line_bytes_per_pixel() as u32 + 64] {
                    let (data, stride) = match layout {
                        Layout::Jpeg => (jpeg(&grey), 0),
                        _ => (pack(&grey, layout, stride), stride),
                    };
                    let frame = Frame {
                        layout,
                        width: w,
                        height: h,
                        stride,
                        data: &data,
                    };
                    let back = luma(&frame).unwrap();
                    if layout != Layout::Jpeg {
                        assert_eq!(back, grey, "{layout:?} {w}×{h} stride {stride}");
                    }
                    assert_eq!(
                        decode_frame(&frame).unwrap(),
                        [text],
                        "{layout:?} {w}×{h} stride {stride}"
                    );
                }
            }
        }
    }

    #[test]
    fn fourccs_round_trip() {
        for layout in Layout::ALL {
            assert_eq!(Layout::from_fourcc(layout.fourcc()), Some(layout));
        }
        assert_eq!(Layout::from_fourcc(*b"JPEG"), Some(Layout::Jpeg));
        assert_eq!(Layout::from_fourcc(*b"H264"), None);
    }

    #[test]
    fn short_odd_and_garbage_frames_are_errors_not_panics() {
        let grey = scene(INVITE, 320, 240);
        let data = pack(&grey, Layout::Yuyv, 0);
        let frame = |layout, width, height, stride, data| Frame {
            layout,
            width,
            height,
            stride,
            data,
        };
        assert!(matches!(
            luma(&frame(Layout::Yuyv, 320, 240, 0, &data[..data.len() - 1])),
            Err(FrameError::Short { .. })
        ));
        assert_eq!(
            luma(&frame(Layout::Yuyv, 0, 240, 0, &data)),
            Err(FrameError::Size(0, 240))
        );
        assert_eq!(
            luma(&frame(Layout::Yuyv, 320, MAX_SIDE + 1, 0, &data)),
            Err(FrameError::Size(320, MAX_SIDE + 1))
        );
        assert_eq!(
            luma(&frame(Layout::Yuyv, 320, 240, 100, &data)),
            Err(FrameError::Stride(100))
        );
        assert!(matches!(
            luma(&frame(Layout::Jpeg, 320, 240, 0, &data[..4096])),
            Err(FrameError::Jpeg(_))
        ));
        // A cheap deterministic stream of sizes and bytes.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..300 {
            let layout = Layout::ALL[(next() % 8) as usize];
            let (w, h) = ((next() % 300) as u32, (next() % 300) as u32);
            let stride = (next() % 1000) as u32;
            let bytes: Vec<u8> = (0..next() % 200_000).map(|_| next() as u8).collect();
            let _ = decode_frame(&Frame {
                layout,
                width: w,
                height: h,
                stride,
                data: &bytes,
            });
        }
    }

    #[test]
    fn a_scan_takes_the_first_accepted_code_and_reports_the_others() {
        let safety = "STRAND-SAFETY-1:999991234512345123451234512345123451234512345123451234512345";
        let frames: Vec<GrayImage> = vec![
            GrayImage::from_pixel(320, 240, image::Luma([30])),
            scene(safety, 640, 480),
            scene(INVITE, 640, 480),
        ];
        // The camera, a frame every few milliseconds, moves on to the next
        // picture each time the reader takes a frame, so each picture is
        // read in turn, however fast the reader is.
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = taken.clone();
        let decode: Decode = Box::new(move |grey: GrayImage| -> Vec<String> {
            counter.fetch_add(1, Ordering::SeqCst);
            crate::scan::decode_luma(grey)
        });
        let stop = AtomicBool::new(false);
        let mut reports = Vec::new();
        let found = watch(
            &stop,
            &|t| t.to_ascii_lowercase().starts_with("strand:"),
            &mut |r| reports.push(r),
            &mut |f| {
                std::thread::sleep(Duration::from_millis(2));
                let g = &frames[taken.load(Ordering::SeqCst).min(frames.len() - 1)];
                f(&Frame {
                    layout: Layout::Grey,
                    width: g.width(),
                    height: g.height(),
                    stride: 0,
                    data: g.as_raw(),
                });
                Ok(true)
            },
            decode,
        );
        assert_eq!(
            found.unwrap().to_ascii_lowercase(),
            INVITE.to_ascii_lowercase()
        );
        let skipped: Vec<&String> = reports
            .iter()
            .filter_map(|r| match r {
                Report::Skipped(t) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(skipped, [safety]);
        assert!(reports
            .iter()
            .any(|r| matches!(r, Report::Preview(p) if p.width() == PREVIEW_WIDTH)));
    }

    /// How long a test waits for what should come at once: a guard against
    /// a scan that never ends, not a measure of speed.
    const GUARD: Duration = Duration::from_secs(60);

    /// A scan on a thread of its own, over a camera showing a dark frame
    /// every few milliseconds, whose QR reader holds each frame it takes
    /// until the test lets it go (as rqrr holds a frame full of finder
    /// patterns for tens of seconds).
    struct HeldScan {
        stop: Arc<AtomicBool>,
        /// A message each time the reader takes a frame; closed once the
        /// reader's thread has ended.
        taken: mpsc::Receiver<()>,
        /// Lets the reader finish the frame it holds.
        release: mpsc::Sender<()>,
        /// Previews shown so far.
        previews: Arc<AtomicUsize>,
        /// What the scan ended with.
        done: mpsc::Receiver<Result<String, String>>,
    }

    fn held_scan() -> HeldScan {
        let stop = Arc::new(AtomicBool::new(false));
        let previews = Arc::new(AtomicUsize::new(0));
        let (took, taken) = mpsc::channel();
        let (release, let_go) = mpsc::channel::<()>();
        let (ended, done) = mpsc::channel();
        let decode: Decode = Box::new(move |_: GrayImage| -> Vec<String> {
            let _ = took.send(());
            let _ = let_go.recv();
            Vec::new()
        });
        let (flag, shown) = (stop.clone(), previews.clone());
        std::thread::spawn(move || {
            let dark = GrayImage::from_pixel(320, 240, image::Luma([30]));
            let result = watch(
                &flag,
                &|_| true,
                &mut |r| {
                    if let Report::Preview(_) = r {
                        shown.fetch_add(1, Ordering::SeqCst);
                    }
                },
                &mut |f| {
                    std::thread::sleep(Duration::from_millis(5));
                    f(&Frame {
                        layout: Layout::Grey,
                        width: dark.width(),
                        height: dark.height(),
                        stride: 0,
                        data: dark.as_raw(),
                    });
                    Ok(true)
                },
                decode,
            );
            let _ = ended.send(result);
        });
        HeldScan {
            stop,
            taken,
            release,
            previews,
            done,
        }
    }

    #[test]
    fn a_scan_stops_at_once_while_a_frame_is_still_being_read() {
        let scan = held_scan();
        scan.taken
            .recv_timeout(GUARD)
            .expect("a frame is handed to the reader");
        scan.stop.store(true, Ordering::SeqCst);
        // The reader still holds its frame, and will until let go.
        let result = scan
            .done
            .recv_timeout(GUARD)
            .expect("the scan ends without waiting for its reader");
        assert_eq!(result, Err("Stopped.".into()));
        // Let go, the reader's thread ends by itself, taking no other
        // frame.
        scan.release.send(()).unwrap();
        assert_eq!(
            scan.taken.recv_timeout(GUARD),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    /// A scan started while a stopped one's reader still reads its frame
    /// hands its own reader nothing until that frame is done: Start and
    /// Stop again and again in front of a poster of finder patterns keep
    /// one frame being read, not one per scan. (Elsewhere in this test
    /// binary another held frame may delay the second scan's, never speed
    /// it up.)
    #[test]
    fn a_new_scan_waits_for_a_stopped_scan_s_reader() {
        let first = held_scan();
        first
            .taken
            .recv_timeout(GUARD)
            .expect("a frame is handed to the first reader");
        first.stop.store(true, Ordering::SeqCst);
        assert_eq!(
            first.done.recv_timeout(GUARD).expect("the first scan ends"),
            Err("Stopped.".into())
        );
        let second = held_scan();
        // Frames keep coming to the second scan (previews), but none to
        // its reader.
        let until = Instant::now() + GUARD;
        while second.previews.load(Ordering::SeqCst) < 3 {
            assert!(Instant::now() < until, "no previews");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            second.taken.try_recv(),
            Err(mpsc::TryRecvError::Empty),
            "a second frame was read while the first still was"
        );
        first.release.send(()).unwrap();
        second
            .taken
            .recv_timeout(GUARD)
            .expect("once the first is done, the second reader reads");
        second.stop.store(true, Ordering::SeqCst);
        second.release.send(()).unwrap();
    }

    #[test]
    fn previews_go_on_while_a_frame_is_being_read() {
        let scan = held_scan();
        scan.taken
            .recv_timeout(GUARD)
            .expect("a frame is handed to the reader");
        let before = scan.previews.load(Ordering::SeqCst);
        let until = Instant::now() + GUARD;
        while scan.previews.load(Ordering::SeqCst) < before + 3 {
            assert!(
                Instant::now() < until,
                "no preview while the reader holds a frame"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        scan.stop.store(true, Ordering::SeqCst);
        assert_eq!(
            scan.done.recv_timeout(GUARD).expect("the scan ends"),
            Err("Stopped.".into())
        );
    }

    #[test]
    fn a_stopped_scan_ends_and_a_missing_camera_says_so() {
        let stop = AtomicBool::new(true);
        let r = watch(
            &stop,
            &|_| true,
            &mut |_| {},
            &mut |_| Ok(false),
            Box::new(crate::scan::decode_luma),
        );
        assert_eq!(r, Err("Stopped.".into()));
        let (tx, rx) = std::sync::mpsc::channel();
        let _scan = start(
            Path::new("/nonexistent/video7"),
            |_| true,
            move |r| {
                if let Report::Done(d) = r {
                    let _ = tx.send(d);
                }
            },
        );
        let done = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let e = done.unwrap_err();
        assert!(e.contains("/nonexistent/video7"), "{e}");
    }
}
