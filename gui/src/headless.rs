//! A Slint platform with no display, for tests, screenshots and the
//! startup benchmark: Slint's software renderer draws into memory, and
//! work sent to the UI thread (`upgrade_in_event_loop`) waits in a queue
//! that [`Headless::pump`] runs.
//!
//! Slint allows one platform per process, and its windows live on the
//! thread that installed it: install once, then create and drive every
//! window from that thread.

use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use slint::platform::software_renderer::{MinimalSoftwareWindow, RepaintBufferType};
use slint::platform::{EventLoopProxy, Platform, WindowAdapter, WindowEvent};
use slint::{
    ComponentHandle, EventLoopError, PhysicalSize, PlatformError, Rgba8Pixel, SharedPixelBuffer,
};

type Task = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Queue {
    tasks: Mutex<VecDeque<Task>>,
    ready: Condvar,
}

struct Proxy(Arc<Queue>);

impl EventLoopProxy for Proxy {
    fn quit_event_loop(&self) -> Result<(), EventLoopError> {
        Ok(())
    }

    fn invoke_from_event_loop(&self, task: Box<dyn FnOnce() + Send>) -> Result<(), EventLoopError> {
        self.0.tasks.lock().expect("queue").push_back(task);
        self.0.ready.notify_all();
        Ok(())
    }
}

struct HeadlessPlatform {
    queue: Arc<Queue>,
    start: Instant,
    size: PhysicalSize,
}

impl Platform for HeadlessPlatform {
    fn create_window_adapter(&self) -> Result<Rc<dyn WindowAdapter>, PlatformError> {
        let window = MinimalSoftwareWindow::new(RepaintBufferType::NewBuffer);
        window.set_size(self.size);
        Ok(window)
    }

    fn duration_since_start(&self) -> Duration {
        self.start.elapsed()
    }

    fn new_event_loop_proxy(&self) -> Option<Box<dyn EventLoopProxy>> {
        Some(Box::new(Proxy(self.queue.clone())))
    }
}

/// The installed headless platform: runs queued UI work and renders.
pub struct Headless {
    queue: Arc<Queue>,
}

impl Headless {
    /// Installs the platform on this thread; windows created afterwards
    /// start at `width` × `height` physical pixels.
    pub fn install(width: u32, height: u32) -> Result<Headless, PlatformError> {
        let queue = Arc::new(Queue::default());
        slint::platform::set_platform(Box::new(HeadlessPlatform {
            queue: queue.clone(),
            start: Instant::now(),
            size: PhysicalSize::new(width, height),
        }))
        .map_err(|e| PlatformError::Other(e.to_string()))?;
        Ok(Headless { queue })
    }

    /// Runs the UI work queued so far, then Slint's timers. Returns how
    /// many queued tasks ran.
    pub fn pump(&self) -> usize {
        let mut ran = 0;
        loop {
            let task = self.queue.tasks.lock().expect("queue").pop_front();
            match task {
                Some(task) => {
                    task();
                    ran += 1;
                }
                None => break,
            }
        }
        slint::platform::update_timers_and_animations();
        ran
    }

    /// Pumps until `done()` holds or `within` passes; returns whether it
    /// held. Sleeps on the queue in between, so it costs no CPU while the
    /// node works.
    pub fn pump_until(&self, within: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            self.pump();
            if done() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let tasks = self.queue.tasks.lock().expect("queue");
            if tasks.is_empty() {
                let wait = (deadline - now).min(Duration::from_millis(20));
                let _ = self.queue.ready.wait_timeout(tasks, wait).expect("queue");
            }
        }
    }

    /// Resizes a window to `width` × `height` logical pixels at `scale`
    /// (2.0 for a 200 % display).
    pub fn resize<C: ComponentHandle>(&self, ui: &C, width: u32, height: u32, scale: f32) {
        let window = ui.window();
        window.dispatch_event(WindowEvent::ScaleFactorChanged {
            scale_factor: scale,
        });
        window.set_size(PhysicalSize::new(
            (width as f32 * scale) as u32,
            (height as f32 * scale) as u32,
        ));
        self.pump();
    }

    /// Draws the window as it is now.
    pub fn snapshot<C: ComponentHandle>(
        &self,
        ui: &C,
    ) -> Result<SharedPixelBuffer<Rgba8Pixel>, PlatformError> {
        self.pump();
        ui.window().request_redraw();
        ui.window().take_snapshot()
    }
}
