//! Runs a [`BleLink`] on tokio: packets in and out through two bounded
//! channels (which the GATT or radio glue fills and drains), a byte stream
//! for the session on the other side.
//!
//! The driver owns the link and is its only clock reader; everything the
//! link does is decided in the sans-IO code.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::link::{BleLink, LinkConfig, LinkStats, Micros};

/// Bytes the stream between the session and the driver buffers each way.
const STREAM_BUFFER: usize = 64 * 1024;
/// How long a link that closed cleanly stays to acknowledge the peer's FIN
/// again, should the first ACK be lost (TCP's TIME_WAIT, short: the radio
/// connection ends soon after anyway).
const LINGER: Duration = Duration::from_secs(1);
/// How long the last packets may wait for room when the link ends.
const LAST_WORDS: Duration = Duration::from_millis(500);

/// How a driven link ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// The error, if it broke (`None`: both streams finished).
    pub error: Option<super::link::LinkError>,
    /// Its counters.
    pub stats: LinkStats,
}

/// Starts a task that runs a link over `incoming` (packets from the peer;
/// closed when the connection drops) and `outgoing` (packets to write; a
/// full channel holds the link back as a busy radio does). Returns the
/// session's end of the byte stream and a handle that tells how the link
/// ended.
pub fn spawn(
    config: LinkConfig,
    incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
) -> (DuplexStream, tokio::task::JoinHandle<Ended>) {
    let (app, inner) = tokio::io::duplex(STREAM_BUFFER);
    let task = tokio::spawn(run(BleLink::new(config), inner, incoming, outgoing));
    (app, task)
}

async fn run(
    mut link: BleLink,
    inner: DuplexStream,
    mut incoming: mpsc::Receiver<Vec<u8>>,
    outgoing: mpsc::Sender<Vec<u8>>,
) -> Ended {
    let (mut rd, mut wr) = tokio::io::split(inner);
    let base = Instant::now();
    let now = || base.elapsed().as_micros() as Micros;
    let mut from_app = vec![0u8; 4096];
    let mut to_app: Vec<u8> = Vec::new();
    let mut to_app_pos = 0;
    let mut app_done = false; // the session finished writing
    let mut eof_told = false; // the session was told the peer finished
    let mut held: Option<Vec<u8>> = None; // a packet waiting for room
    let mut disconnected = false; // the packet channel closed
    let mut closed_at: Option<Instant> = None;
    loop {
        // Everything the link has to send, while the channel has room.
        loop {
            if held.is_none() {
                held = link.poll_transmit(now());
            }
            let Some(p) = held.take() else { break };
            match outgoing.try_send(p) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(p)) => {
                    held = Some(p);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    link.handle_disconnect();
                    break;
                }
            }
        }
        // A clean close may still have bytes for the session: deliver them.
        if link.error().is_some() || (disconnected && eof_told) {
            break;
        }
        if link.is_closed() && eof_told {
            let since = *closed_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= LINGER {
                break;
            }
        }
        // What arrived, for the session.
        if to_app_pos == to_app.len() && link.readable() > 0 {
            to_app.resize(link.readable().min(STREAM_BUFFER), 0);
            let n = link.read(&mut to_app);
            to_app.truncate(n);
            to_app_pos = 0;
        }
        if to_app_pos == to_app.len() && link.is_eof() && !eof_told {
            eof_told = true;
            let _ = wr.shutdown().await;
        }
        // A deadline already due while a packet waits for room is one that
        // only sending clears (an ACK to send): the room wakes the loop.
        let t_now = now();
        let deadline = link
            .poll_timeout()
            .filter(|&t| held.is_none() || t > t_now)
            .map(|t| base + Duration::from_micros(t))
            .into_iter()
            .chain(closed_at.map(|c| c + LINGER))
            .min();
        let room = if app_done {
            0
        } else {
            link.send_capacity().min(from_app.len())
        };
        tokio::select! {
            packet = incoming.recv(), if !disconnected => match packet {
                Some(p) => {
                    let _ = link.handle_packet(now(), &p);
                }
                None => {
                    disconnected = true;
                    link.handle_disconnect();
                }
            },
            permit = outgoing.reserve(), if held.is_some() => match permit {
                Ok(permit) => permit.send(held.take().expect("checked")),
                Err(_) => link.handle_disconnect(),
            },
            read = rd.read(&mut from_app[..room]), if room > 0 => match read {
                Ok(0) | Err(_) => {
                    app_done = true;
                    link.finish();
                }
                Ok(n) => {
                    // Reads are sized to the link's room: it takes them all.
                    let taken = link.write(&from_app[..n]).unwrap_or(0);
                    debug_assert_eq!(taken, n);
                }
            },
            written = wr.write(&to_app[to_app_pos..]), if to_app_pos < to_app.len() => match written {
                Ok(n) => to_app_pos += n,
                Err(_) => link.abort(), // the session is gone
            },
            _ = sleep_until(deadline) => link.handle_timeout(now()),
        }
    }
    // The last packets (an ACK, or an ABORT if the link ended here), given
    // a moment to find room, then stop.
    let last: Vec<Vec<u8>> = held
        .into_iter()
        .chain(std::iter::from_fn(|| link.poll_transmit(now())))
        .collect();
    if !disconnected {
        let _ = tokio::time::timeout(LAST_WORDS, async {
            for p in last {
                if outgoing.send(p).await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
    Ended {
        error: link.error().cloned(),
        stats: link.stats(),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
