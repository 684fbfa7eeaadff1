//! Keeps a panic in libp2p's relay client to the one connection, or the
//! one event, it happened on.
//!
//! A relay can make libp2p's relay client panic. libp2p-relay 0.22 turns
//! the expiry a relay names for a reservation into a timer for its
//! renewal (`outbound_hop::make_reservation`): three quarters of the time
//! from now to the expiry, which futures-timer adds to `Instant::now()`.
//! The expiry is any `u64` the relay likes, and one far enough ahead
//! overflows that addition: on Unix an `Instant` counts seconds in an
//! `i64`, so an expiry some 4×10¹¹ years ahead (three quarters of it past
//! `i64::MAX` seconds, 2.9×10¹¹ years) does it, and `u64::MAX` (5.8×10¹¹
//! years after 1970) is one. The panic happens in the handler of the
//! connection to the relay, in that connection's task. Before this
//! wrapper, tokio caught it and dropped the task, and the swarm was never
//! told: no `ConnectionClosed`, so the connection stayed established in
//! the swarm's books and in the relay client's, which sent every later
//! reservation on that relay to that connection, where it was dropped.
//! Each attempt failed at once ("the connection to the relay closed"), no
//! new connection was ever dialled, and the relay was lost to this
//! generation (until the next epoch), even once it answered well.
//!
//! [`CatchPanics`] wraps the relay client's behaviour. Its handler runs
//! the wrapped handler's `poll` (where libp2p's relay client runs what
//! the relay sends) under `catch_unwind`. After a panic it never polls
//! the wrapped handler or tells it anything again (it is still asked
//! which streams it takes, `listen_protocol`, and the streams the remote
//! opens are then dropped), and the behaviour reports [`Event::Panicked`]
//! and closes that connection, so the swarm and the relay client forget
//! it. Everything on that connection goes with it: this generation's
//! reservation on that relay, and the links through it (circuits this
//! device opened on that connection, and those the relay opened to it),
//! which are dialled again, by this device or by the contact. Nothing
//! less will do: the wrapped handler's state is whatever the panic left,
//! and it holds them all. The client gives up the reservation with the
//! panic's message, and tries again after its backoff on a new
//! connection. The wrapped handler is dropped with the connection: what
//! it held (the reservation's channel to its listener) goes then.
//!
//! libp2p's relay client can panic in its behaviour too, in the swarm's
//! own task, where nothing caught it: the whole relay client of that
//! generation (its swarm, every reservation and link on it) went. When a
//! reservation's listener closes (this device gives the relay up: its
//! relays change, an epoch drains), libp2p-relay 0.22
//! (`priv_client::Behaviour::on_listener_closed`) forgets the address it
//! holds for that connection's reservation, pending or not, and tells the
//! handler to drop its reservation; but a request in flight on the
//! connection runs on in the handler (as does one waiting for a dial
//! still under way, sent once the dial completes), and an OK answer to it
//! reaches the behaviour's `on_connection_handler_event` as an accepted
//! reservation, where `expect("Relay connection exist")` panics. A relay
//! can hold its answer until libp2p's stream timeout (60 s) and answer
//! once it is given up, and an honest answer can cross the closing. So
//! [`CatchPanics`] runs the wrapped behaviour's
//! `on_connection_handler_event` under [`contain`] too. That `expect` is
//! the only panic there, and it is the first thing that can panic: the
//! behaviour has changed nothing yet. So the event (a late answer to a
//! reservation given up, which no listener waits for) is dropped and
//! logged, and that is all: the connection stays, with every link through
//! it, and no reservation is failed (none waits for that answer). Closing
//! it, as after a handler's panic, cut every link through that relay in
//! honest cases: an epoch's drain while a renewal was in flight (the old
//! generation is kept exactly so that its links can finish), relays
//! changed while contacts' links went through the one given up. A relay
//! given up while this device was still dialling it comes here on its
//! OK answer every time.
//!
//! What the dropped event leaves behind: libp2p's handler took the answer
//! as an accepted reservation, which it holds with the closed listener's
//! channel. Its first message on that channel finds it closed and drops
//! the reservation, and the connection is then closed when idle, like any
//! other. If the listener is not yet dropped when that message goes (a
//! narrow window as it closes), the message is taken and the stale
//! reservation keeps the connection until its renewal, whose answer is
//! dropped here the same way and ends it.
//!
//! The relay client's other panics are left uncaught: `on_swarm_event`'s
//! (a connection closed that it never saw established) and `poll`'s (its
//! transport gone) would break the swarm's own promises, not follow from
//! what a peer sent, and the first would leave the behaviour's books half
//! updated.
//!
//! The panic still reaches the process's panic hook first. It is a bug
//! of a dependency that a peer can set off, caught here rather than
//! prevented, since the code is libp2p's own; and it is handled, not a
//! failure of the node. So while the wrapped relay client runs under
//! [`contain`], that says so on the thread, and the node's hook logs such
//! a panic as a warning and does not record it (else a relay could make
//! `strand status` say that a part of the node failed).

use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, SubstreamProtocol, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

thread_local! {
    /// Whether this thread is running the wrapped relay client under
    /// [`contain`].
    static CONTAINING: Cell<bool> = const { Cell::new(false) };
}

/// What this thread is doing under [`contain`], if it is: a panic now
/// is caught and handled (its connection closed, or the event it came
/// on dropped), not a failure. For a panic hook.
pub fn containing() -> Option<&'static str> {
    CONTAINING
        .try_with(Cell::get)
        .ok()
        .filter(|on| *on)
        .map(|_| "running libp2p's relay client on what a relay sent")
}

/// Runs `f` (a wrapped handler's `poll`, or the wrapped behaviour on a
/// handler's event) and catches its panic, with
/// [`containing`] saying so on this thread meanwhile.
///
/// The flag is reached with `try_with`, as in [`containing`]: `with`
/// panics where a thread's locals are already gone (code run from
/// another thread local's destructor), outside the `catch_unwind`. There
/// `f` still runs under `catch_unwind`, only without the flag.
pub fn contain<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    let outer = CONTAINING.try_with(|c| c.replace(true)).ok();
    let result = catch_unwind(AssertUnwindSafe(f));
    if let Some(outer) = outer {
        let _ = CONTAINING.try_with(|c| c.set(outer));
    }
    result
}

/// A behaviour whose connection handlers' panics close their connection
/// instead of leaving it dead in the swarm's books, and whose own panic
/// on a handler's event drops that event.
pub(crate) struct CatchPanics<B: NetworkBehaviour> {
    inner: B,
    /// What to tell the swarm before anything of the wrapped behaviour's:
    /// a handler's panic, then the close of its connection. Two for each
    /// connection whose handler panicked (a handler panics once: it is
    /// not polled again), so at most two for each of the swarm's
    /// connections.
    queued: VecDeque<ToSwarm<Event<B::ToSwarm>, THandlerInEvent<B>>>,
}

impl<B: NetworkBehaviour> CatchPanics<B> {
    pub(crate) fn new(inner: B) -> CatchPanics<B> {
        CatchPanics {
            inner,
            queued: VecDeque::new(),
        }
    }

    /// Reports that the wrapped handler of `connection_id` (to `peer_id`)
    /// panicked with `message`, and closes that connection.
    fn panicked(&mut self, peer_id: PeerId, connection_id: ConnectionId, message: String) {
        tracing::warn!(
            peer = %peer_id,
            "a connection handler panicked, closing its connection: {message}"
        );
        self.queued
            .push_back(ToSwarm::GenerateEvent(Event::Panicked {
                peer: peer_id,
                message,
            }));
        self.queued.push_back(ToSwarm::CloseConnection {
            peer_id,
            connection: CloseConnection::One(connection_id),
        });
    }
}

/// What [`CatchPanics`] reports.
#[derive(Debug)]
pub(crate) enum Event<T> {
    /// The wrapped behaviour's event.
    Inner(T),
    /// The wrapped handler of a connection to `peer` panicked with
    /// `message`; the connection is being closed. (The wrapped
    /// behaviour's panic on a handler's event is not reported: the event
    /// is dropped, and nothing else changes.)
    Panicked { peer: PeerId, message: String },
}

/// What a [`Caught`] handler tells its behaviour.
#[derive(Debug)]
pub(crate) enum HandlerEvent<T> {
    /// The wrapped handler's event.
    Inner(T),
    /// The wrapped handler panicked, with this message.
    Panicked(String),
}

impl<B: NetworkBehaviour> NetworkBehaviour for CatchPanics<B> {
    type ConnectionHandler = Caught<THandler<B>>;
    type ToSwarm = Event<B::ToSwarm>;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(connection_id, peer, local_addr, remote_addr)
            .map(Caught::new)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(
                connection_id,
                peer,
                addr,
                role_override,
                port_use,
            )
            .map(Caught::new)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            HandlerEvent::Inner(event) => {
                // libp2p's relay client panics here on an answer to a
                // reservation whose listener closed, before it changes
                // anything: the answer is dropped, and the connection
                // kept with the links on it (see the module).
                let inner = &mut self.inner;
                if let Err(payload) =
                    contain(|| inner.on_connection_handler_event(peer_id, connection_id, event))
                {
                    tracing::debug!(
                        peer = %peer_id,
                        "dropped a late answer to a reservation given up, on which libp2p's relay client panicked (contained; the connection is kept): {}",
                        panic_message(payload.as_ref())
                    );
                }
            }
            HandlerEvent::Panicked(message) => self.panicked(peer_id, connection_id, message),
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        // The swarm polls the behaviour again after each handler event,
        // so what is queued there needs no waker.
        if let Some(action) = self.queued.pop_front() {
            return Poll::Ready(action);
        }
        self.inner
            .poll(cx)
            .map(|action| action.map_out(Event::Inner))
    }
}

/// A connection handler whose `poll` may panic: the panic is reported to
/// the behaviour, and the handler is not called again.
pub(crate) struct Caught<H> {
    inner: H,
    /// Whether the wrapped handler panicked. Its state is then whatever
    /// the panic left, so it is neither polled nor told anything more; it
    /// is dropped with the connection.
    panicked: bool,
}

impl<H> Caught<H> {
    fn new(inner: H) -> Caught<H> {
        Caught {
            inner,
            panicked: false,
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for Caught<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = HandlerEvent<H::ToBehaviour>;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        // After a panic, streams the remote opens are dropped in
        // `on_connection_event` until the connection closes.
        self.inner.listen_protocol()
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        if !self.panicked {
            self.inner.on_behaviour_event(event);
        }
    }

    fn connection_keep_alive(&self) -> bool {
        !self.panicked && self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if self.panicked {
            // The behaviour was told, and closes the connection.
            return Poll::Pending;
        }
        let inner = &mut self.inner;
        match contain(|| inner.poll(cx)) {
            Ok(event) => event.map(|e| e.map_custom(HandlerEvent::Inner)),
            Err(payload) => {
                self.panicked = true;
                Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                    HandlerEvent::Panicked(panic_message(payload.as_ref())),
                ))
            }
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if !self.panicked {
            self.inner.on_connection_event(event);
        }
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        if self.panicked {
            return Poll::Ready(None);
        }
        self.inner
            .poll_close(cx)
            .map(|event| event.map(HandlerEvent::Inner))
    }
}

/// A panic's message: what `panic!` and `expect` carry (the node's panic
/// hook reads it too).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}
