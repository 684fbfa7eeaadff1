//! The camera code against a real V4L2 driver: Linux's `vivid` virtual
//! video device. No camera is attached where CI runs, so
//! `scripts/camera-vm` boots a VM with Debian's kernel, loads vivid with
//! one HDMI capture node and one HDMI output node, and runs these tests
//! there (they are ignored anywhere else). The output node is looped into
//! the capture node, so a QR code written to one is what the camera code
//! sees on the other: device discovery, format negotiation, memory-mapped
//! streaming, waiting for frames, turning them into grey levels and
//! decoding, all on the kernel's own V4L2 stack; and then the app's own
//! "Scan their code with the camera" filling the invite field.
#![cfg(target_os = "linux")]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::GrayImage;
use linuxvideo::format::{PixFormat, PixelFormat};
use linuxvideo::Device;
use slint::ComponentHandle;
use strand_gui::camera::{self, Layout, Report};
use strand_gui::{
    AddContactAdapter, AppAdapter, AppWindow, CameraAdapter, OnboardingAdapter, Screen,
};

/// vivid's "Loop Video" control (capture node): output frames become the
/// capture's.
const LOOP_VIDEO: u32 = 0x00f0_f025;
/// vivid's "OSD Text Mode" control: 2 draws no text over the picture.
const OSD_TEXT_MODE: u32 = 0x00f0_f001;
/// `VIDIOC_S_CTRL` on x86_64 (`_IOWR('V', 28, struct v4l2_control)`).
const VIDIOC_S_CTRL: libc::c_ulong = 0xC008_561C;

/// `VIDIOC_REQBUFS`, `VIDIOC_QUERYBUF`, `VIDIOC_QBUF`, `VIDIOC_STREAMON`
/// on x86_64. (Writing frames with `write()` does not work on a 6.1
/// kernel's vivid output: videobuf2 queues them with no payload; and
/// `linuxvideo`'s output stream asks for capture buffers. So the output
/// side is driven here with the plain ioctls.)
const VIDIOC_REQBUFS: libc::c_ulong = 0xC014_5608;
const VIDIOC_QUERYBUF: libc::c_ulong = 0xC058_5609;
const VIDIOC_QBUF: libc::c_ulong = 0xC058_560F;
const VIDIOC_STREAMON: libc::c_ulong = 0x4004_5612;
const BUF_TYPE_VIDEO_OUTPUT: u32 = 2;
const MEMORY_MMAP: u32 = 1;

/// `struct v4l2_requestbuffers`.
#[repr(C)]
#[derive(Default)]
struct RequestBuffers {
    count: u32,
    kind: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

/// `struct v4l2_buffer` (single plane, MMAP), 88 bytes on x86_64.
#[repr(C)]
#[derive(Default)]
struct Buffer {
    index: u32,
    kind: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: [u64; 2],
    timecode: [u32; 4],
    sequence: u32,
    memory: u32,
    offset: u64,
    length: u32,
    reserved2: u32,
    request_fd: u32,
}

fn ioctl<T>(fd: &impl AsRawFd, request: libc::c_ulong, arg: &mut T, what: &str) {
    // SAFETY: `arg` is the struct `request` takes, valid for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), request, arg as *mut T) };
    assert_eq!(r, 0, "{what}: {}", std::io::Error::last_os_error());
}

/// Puts `frame` on vivid's output and keeps it there (as long as `device`
/// stays open): one memory-mapped buffer, filled, queued, streaming.
fn show(device: &impl AsRawFd, frame: &[u8]) {
    assert_eq!(std::mem::size_of::<Buffer>(), 88);
    let mut req = RequestBuffers {
        count: 2,
        kind: BUF_TYPE_VIDEO_OUTPUT,
        memory: MEMORY_MMAP,
        ..Default::default()
    };
    ioctl(device, VIDIOC_REQBUFS, &mut req, "REQBUFS");
    assert!(req.count >= 1);
    // Both buffers hold the frame: the driver shows a buffer until the
    // next one is queued.
    for index in 0..req.count.min(2) {
        let mut buf = Buffer {
            index,
            kind: BUF_TYPE_VIDEO_OUTPUT,
            memory: MEMORY_MMAP,
            ..Default::default()
        };
        ioctl(device, VIDIOC_QUERYBUF, &mut buf, "QUERYBUF");
        assert!(buf.length as usize >= frame.len());
        // SAFETY: maps the driver's buffer `index`, as QUERYBUF described it.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                buf.length as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                device.as_raw_fd(),
                buf.offset as libc::off_t,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        // SAFETY: the mapping is `buf.length` ≥ `frame.len()` bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(frame.as_ptr(), ptr.cast::<u8>(), frame.len());
            libc::munmap(ptr, buf.length as usize);
        }
        buf.bytesused = frame.len() as u32;
        ioctl(device, VIDIOC_QBUF, &mut buf, "QBUF");
    }
    let mut kind = BUF_TYPE_VIDEO_OUTPUT;
    ioctl(device, VIDIOC_STREAMON, &mut kind, "STREAMON");
}

/// Opens vivid's output (`out`) in `layout` at 1280×720 and puts
/// `picture` on it; it stays there while the returned device is open.
fn on_output(out: &Path, layout: Layout, picture: &GrayImage) -> linuxvideo::VideoOutputDevice {
    let fourcc = PixelFormat::from_fourcc(layout.fourcc());
    let output = Device::open(out)
        .unwrap()
        .video_output(PixFormat::new(1280, 720, fourcc))
        .unwrap();
    let f = output.format();
    let (width, height, got, stride, size) = (
        f.width(),
        f.height(),
        f.pixel_format(),
        f.bytes_per_line() as usize,
        f.size_image() as usize,
    );
    assert_eq!((width, height, got), (1280, 720, fourcc), "{layout:?}");
    show(&output, &pack(picture, layout, stride, size));
    output
}

/// How long a step may take in a slow (emulated) VM.
const WAIT: Duration = Duration::from_secs(90);

#[repr(C)]
struct Control {
    id: u32,
    value: i32,
}

fn set_control(device: &File, id: u32, value: i32) {
    let mut c = Control { id, value };
    // SAFETY: a valid v4l2_control for the duration of the call.
    let r = unsafe { libc::ioctl(device.as_raw_fd(), VIDIOC_S_CTRL, &mut c) };
    assert_eq!(r, 0, "S_CTRL {id:#x}: {}", std::io::Error::last_os_error());
}

/// vivid's capture and output nodes, by their sysfs names.
fn vivid_nodes() -> (PathBuf, PathBuf) {
    let mut cap = None;
    let mut out = None;
    for entry in std::fs::read_dir("/sys/class/video4linux").expect("V4L2 devices") {
        let entry = entry.unwrap();
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        let dev = Path::new("/dev").join(entry.file_name());
        match name.trim() {
            "vivid-000-vid-cap" => cap = Some(dev),
            "vivid-000-vid-out" => out = Some(dev),
            _ => {}
        }
    }
    (
        cap.expect("vivid's capture node"),
        out.expect("vivid's output node"),
    )
}

/// `text` as the app draws it, about 600 px wide, on a grey 1280×720
/// scene.
fn scene(text: &str) -> GrayImage {
    let (side, px) = strand_gui::qr::pixels(text).unwrap();
    let code = GrayImage::from_raw(side as u32, side as u32, px).unwrap();
    let code = image::imageops::resize(&code, 600, 600, image::imageops::FilterType::Nearest);
    let mut out = GrayImage::from_pixel(1280, 720, image::Luma([150]));
    image::imageops::overlay(&mut out, &code, 340, 60);
    out
}

/// `grey` in `layout`, `stride` bytes a line, `size` bytes in all (colour
/// neutral).
fn pack(grey: &GrayImage, layout: Layout, stride: usize, size: usize) -> Vec<u8> {
    let (w, h) = (grey.width() as usize, grey.height() as usize);
    let mut out = vec![128u8; size];
    for y in 0..h {
        let row = &grey.as_raw()[y * w..(y + 1) * w];
        let line = &mut out[y * stride..];
        for (x, v) in row.iter().enumerate() {
            match layout {
                Layout::Grey | Layout::Nv12 | Layout::Yu12 => line[x] = *v,
                Layout::Yuyv => line[2 * x] = *v,
                Layout::Uyvy => line[2 * x + 1] = *v,
                Layout::Rgb24 | Layout::Bgr24 => line[3 * x..3 * x + 3].fill(*v),
                Layout::Jpeg => unreachable!("vivid has no JPEG"),
            }
        }
    }
    out
}

fn in_vm() -> bool {
    std::env::var_os("STRAND_CAMERA_VM").is_some()
}

/// Waits for the scan's end, keeping the previews seen.
fn done(rx: &mpsc::Receiver<Report>, previews: &mut Vec<GrayImage>) -> Result<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left).expect("the scan reports its end") {
            Report::Preview(p) => previews.push(p),
            Report::Skipped(t) => println!("skipped {t}"),
            Report::Done(r) => return r,
        }
    }
}

#[test]
#[ignore = "needs the vivid driver: scripts/camera-vm runs it in a VM"]
fn a_real_v4l2_device_is_found_streamed_and_its_qr_code_read() {
    assert!(in_vm(), "run by scripts/camera-vm");
    let (cap, out) = vivid_nodes();

    // Only the capture node is a camera.
    let cams = camera::cameras();
    assert_eq!(cams.len(), 1, "{cams:?}");
    assert_eq!(cams[0].path, cap);
    println!("camera: {} at {}", cams[0].name, cams[0].path.display());

    // It streams: frames of its test pattern arrive, with no code in
    // them, until the scan is stopped.
    let (tx, rx) = mpsc::channel();
    let scan = camera::start(
        &cap,
        |_| false,
        move |r| {
            let _ = tx.send(r);
        },
    );
    let deadline = Instant::now() + WAIT;
    let first = loop {
        match rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a frame within the wait")
        {
            Report::Preview(p) => break p,
            Report::Done(r) => panic!("the scan ended: {r:?}"),
            Report::Skipped(_) => {}
        }
    };
    let (lo, hi) = first
        .pixels()
        .fold((255u8, 0u8), |(lo, hi), p| (lo.min(p[0]), hi.max(p[0])));
    assert!(hi > lo + 50, "the test pattern has contrast: {lo}..{hi}");
    scan.stop();
    assert_eq!(done(&rx, &mut Vec::new()), Err("Stopped.".into()));

    // Looped: what is written to the output is read by the camera code.
    let control = File::options().read(true).write(true).open(&cap).unwrap();
    set_control(&control, LOOP_VIDEO, 1);
    set_control(&control, OSD_TEXT_MODE, 2);
    let bob = strand_sync::Identity::generate("Bob", &mut strand_node::os_rng()).unwrap();
    let invite = bob.invite().to_text();
    let picture = scene(&invite);
    for layout in [Layout::Yuyv, Layout::Grey, Layout::Nv12, Layout::Rgb24] {
        let output = on_output(&out, layout, &picture);
        let (tx, rx) = mpsc::channel();
        let started = Instant::now();
        let _scan = camera::start_with(
            &cap,
            &[layout],
            |t| {
                t.to_ascii_lowercase()
                    .starts_with(strand_sync::INVITE_PREFIX)
            },
            move |r| {
                let _ = tx.send(r);
            },
        );
        let mut previews = Vec::new();
        let read = done(&rx, &mut previews);
        println!(
            "{layout:?}: {:?} after {} ms, {} previews",
            read.as_ref().map(|t| t.len()),
            started.elapsed().as_millis(),
            previews.len()
        );
        assert_eq!(
            read.map(|t| t.to_ascii_lowercase()),
            Ok(invite.to_ascii_lowercase()),
            "{layout:?}"
        );
        drop(output);
    }

    // The app itself: on the add-contact screen, "Scan their code with
    // the camera" reads Carol's invite into the code field.
    let h = strand_gui::headless::Headless::install(1040, 700).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ui = AppWindow::new().unwrap();
    let _app = strand_gui::init(
        &ui,
        strand_gui::Options {
            profile: tmp.path().join("alice"),
            downloads: tmp.path().join("downloads"),
            node: strand_node::NodeConfig {
                lan: None,
                ..Default::default()
            },
            kdf: Some(strand_node::KdfParams::insecure_for_tests()),
            dark: false,
            notify: strand_gui::Notify::Off,
        },
    );
    let onboarding = ui.global::<OnboardingAdapter>();
    assert!(h.pump_until(WAIT, || !onboarding.get_profile_path().is_empty()));
    let pass = "copper kettle under the violet moon";
    onboarding.invoke_create("Alice".into(), pass.into(), pass.into());
    assert!(h.pump_until(WAIT, || ui.global::<AppAdapter>().get_screen()
        == Screen::Chats));
    let cam = ui.global::<CameraAdapter>();
    assert_eq!(cam.get_camera(), cams[0].name.as_str(), "the button shows");
    let carol = strand_sync::Identity::generate("Carol", &mut strand_node::os_rng()).unwrap();
    let carols = carol.invite().to_text();
    // The app picks the camera's cheapest format: GREY on vivid.
    let output = on_output(&out, Layout::Grey, &scene(&carols));
    cam.invoke_start("invite".into());
    assert_eq!(cam.get_scanning(), "invite");
    let add = ui.global::<AddContactAdapter>();
    // The scan ends with Carol's invite in the code field.
    let reads_carol = || {
        assert!(
            h.pump_until(WAIT, || !add.get_scanned_code().is_empty()),
            "status: {}",
            cam.get_status()
        );
        assert_eq!(add.get_scanned_code().as_str(), carols);
        assert_eq!(cam.get_scanning(), "");
    };
    reads_carol();
    assert_eq!(add.get_image_error(), "");
    // Stop and start again at once: the stopped scan lets the camera go,
    // and what it reports late changes nothing.
    add.set_scanned_code("".into());
    cam.invoke_start("invite".into());
    cam.invoke_stop();
    assert_eq!(cam.get_scanning(), "");
    cam.invoke_start("invite".into());
    reads_carol();
    // Leaving the screen stops a scan.
    cam.invoke_start("invite".into());
    assert_eq!(cam.get_scanning(), "invite");
    ui.global::<AppAdapter>().invoke_navigate(Screen::Network);
    assert_eq!(cam.get_scanning(), "");
    drop(output);
}
