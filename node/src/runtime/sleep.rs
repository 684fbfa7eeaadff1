//! Suspend and resume: a phone (or a laptop) sleeps, and its node must
//! find its feet when it wakes. systemd-logind says both on the system
//! bus, with `PrepareForSleep(true)` before the system sleeps and
//! `PrepareForSleep(false)` after it wakes. On waking the node:
//!
//! - closes the links that were open, for their far ends may have gone or
//!   moved while it slept (a TCP connection to them would linger until it
//!   timed out); sync resumes on the links that replace them, and nothing
//!   a session had not finished is lost (the logs reconcile again);
//! - registers its Bluetooth advertisement again (BlueZ stops advertising
//!   on suspend, BlueZ #741);
//! - takes a new LAN identity (peer id) before it dials: the rotation's
//!   timer runs on a clock that stops in sleep, and the id it had would
//!   otherwise show on the network it wakes on, linking the two;
//! - dials again at once the devices found lately and, through relays,
//!   its contacts (configured peers are redialled every few seconds
//!   anyway); libp2p listens on every interface and notices networks that
//!   came or went by itself;
//! - deletes the disappearing messages that fell due while it slept.
//!
//! Without a system bus (a container, a test) nothing is watched.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;

use super::bluetooth::Hints;
use super::Node;

const LOGIND_PATH: &str = "/org/freedesktop/login1";
const LOGIND_MANAGER: &str = "org.freedesktop.login1.Manager";

/// Watches logind's sleep signal until the node stops.
pub(crate) async fn watch(node: Node, hints: Option<Arc<Hints>>) {
    let cancel = node.shared.cancel.clone();
    let stream = tokio::select! {
        _ = cancel.cancelled() => return,
        s = subscribe() => s,
    };
    let mut stream = match stream {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("suspend and resume not watched (no system bus): {e}");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            _ = cancel.cancelled() => return,
            m = stream.next() => match m {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::debug!("system bus: {e}");
                    continue;
                }
                None => return,
            },
        };
        // A signal with another body is not logind's: ignored.
        match message.body().deserialize::<bool>() {
            Ok(true) => node.going_to_sleep(),
            Ok(false) => node.woke(hints.as_deref()),
            Err(_) => {}
        }
    }
}

async fn subscribe() -> zbus::Result<zbus::MessageStream> {
    let bus = zbus::Connection::system().await?;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path(LOGIND_PATH)?
        .interface(LOGIND_MANAGER)?
        .member("PrepareForSleep")?
        .build();
    zbus::MessageStream::for_match_rule(rule, &bus, Some(16)).await
}

impl Node {
    fn going_to_sleep(&self) {
        tracing::info!("the system is going to sleep");
    }

    /// What waking takes: see the module's notes.
    fn woke(&self, hints: Option<&Hints>) {
        self.shared.wakes.fetch_add(1, Ordering::Relaxed);
        let links = self.shared.registry.sessions();
        tracing::info!("woke from sleep: closing {links} links, advertising again, redialling");
        self.shared.registry.close_all();
        if let Some(hints) = hints {
            hints.advertise_anew(&self.shared.profile, &mut self.shared.rng());
        }
        // A new LAN identity before anything is dialled: the system may
        // have slept for hours and woken on another network, where the
        // one it had (and its rotation's clock, stopped in sleep) would
        // link the two.
        let node = self.clone();
        self.shared.tasks.spawn(async move {
            for t in &node.shared.transports {
                if let Err(e) = t.renew_identity().await {
                    tracing::warn!("a new identity on waking failed: {e}");
                }
            }
            node.redial_nearby();
        });
        self.shared.reach.retry_all();
        // Disappearing messages that fell due while it slept go now.
        self.shared.registry.stored.notify_one();
    }
}
