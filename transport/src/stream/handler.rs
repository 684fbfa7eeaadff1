//! One connection's side of the protocol: opens outbound streams when the
//! behaviour asks, and hands every negotiated stream up.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::swarm::handler::{
    ConnectionEvent, ConnectionHandler, ConnectionHandlerEvent, DialUpgradeError,
    FullyNegotiatedInbound, FullyNegotiatedOutbound, SubstreamProtocol,
};
use libp2p::swarm::Stream;
use libp2p::StreamProtocol;

use super::protocol::upgrade;
use super::OpenId;

/// Most stream requests a handler queues: more means the node opens
/// streams faster than the connection negotiates them.
const MAX_QUEUED_OPENS: usize = 64;

/// From the behaviour to a handler.
#[derive(Debug)]
pub enum HandlerIn {
    /// Open an outbound stream for this request.
    Open(OpenId),
}

/// From a handler to the behaviour.
#[derive(Debug)]
pub enum HandlerOut {
    /// The remote opened a stream.
    Inbound(Stream),
    /// Our requested stream is open.
    Opened(OpenId, Stream),
    /// Our requested stream could not be opened.
    Failed(OpenId, String),
}

/// The connection handler.
#[derive(Debug, Default)]
pub struct Handler {
    requested: VecDeque<OpenId>,
    out: VecDeque<HandlerOut>,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = HandlerIn;
    type ToBehaviour = HandlerOut;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = OpenId;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(upgrade(), ())
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        if let Some(event) = self.out.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
        }
        if let Some(id) = self.requested.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(upgrade(), id),
            });
        }
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, event: HandlerIn) {
        match event {
            HandlerIn::Open(id) if self.requested.len() < MAX_QUEUED_OPENS => {
                self.requested.push_back(id)
            }
            HandlerIn::Open(id) => self.out.push_back(HandlerOut::Failed(
                id,
                "too many streams being opened".into(),
            )),
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
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => {
                self.out.push_back(HandlerOut::Inbound(stream));
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info: id,
            }) => {
                self.out.push_back(HandlerOut::Opened(id, stream));
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info: id, error }) => {
                self.out
                    .push_back(HandlerOut::Failed(id, error.to_string()));
            }
            _ => {}
        }
    }
}
