//! Frames: what a session's decrypted packets are made of.
//!
//! A packet's plaintext is one or more frames, each `type: u8`,
//! `length: varint`, then `length` bytes of body. See `PROTOCOL.md`.

use crate::codec::{Reader, Writer};
use crate::group::GroupId;
use crate::limits::{MAX_MESSAGE_LEN, MAX_PACKET_LEN, MAX_QUERY_KEYS, MAX_TAGS_PER_FRAME};
use crate::message::MessageId;
use crate::recon::ReconMsg;
use crate::store::Key;
use crate::DecodeError;

pub(crate) const RECON: u8 = 0x01;
pub(crate) const READY: u8 = 0x02;
pub(crate) const MSG: u8 = 0x03;
pub(crate) const MSG_BEGIN: u8 = 0x04;
pub(crate) const MSG_MORE: u8 = 0x05;
pub(crate) const ACK: u8 = 0x06;
pub(crate) const UNKNOWN_GROUP: u8 = 0x07;
pub(crate) const PING: u8 = 0x08;
pub(crate) const CLOSE: u8 = 0x09;
pub(crate) const PAD: u8 = 0x0a;
pub(crate) const QUERY: u8 = 0x0b;
pub(crate) const OPEN: u8 = 0x0c;

/// Bytes of one key in a QUERY frame: time (u64 BE) and id.
pub(crate) const QUERY_KEY_LEN: usize = 8 + 32;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Recon {
        group: GroupId,
        msg: ReconMsg,
    },
    /// A group opened mid-session (PROTOCOL.md §8.5): an opening RECON.
    Open {
        group: GroupId,
        msg: ReconMsg,
    },
    Ready,
    Msg(&'a [u8]),
    MsgBegin {
        total: usize,
        data: &'a [u8],
    },
    MsgMore(&'a [u8]),
    Ack {
        group: GroupId,
        tags: Vec<u64>,
    },
    UnknownGroup(GroupId),
    Ping,
    Close(u8),
    Pad,
    Query {
        group: GroupId,
        keys: Vec<Key>,
    },
}

/// Splits a packet's plaintext into frames.
pub(crate) fn decode_packet(plain: &[u8]) -> Result<Vec<Frame<'_>>, DecodeError> {
    if plain.is_empty() {
        return Err(DecodeError::Invalid("empty packet"));
    }
    let mut r = Reader::new(plain);
    let mut frames = Vec::new();
    while !r.is_empty() {
        let kind = r.u8()?;
        let len = r.len(MAX_PACKET_LEN)?;
        let body = r.bytes(len)?;
        frames.push(decode_frame(kind, body)?);
    }
    Ok(frames)
}

fn decode_frame(kind: u8, body: &[u8]) -> Result<Frame<'_>, DecodeError> {
    let mut r = Reader::new(body);
    let frame = match kind {
        RECON => {
            let group = GroupId(r.array()?);
            let msg = ReconMsg::decode(&mut r)?;
            Frame::Recon { group, msg }
        }
        OPEN => {
            let group = GroupId(r.array()?);
            let msg = ReconMsg::decode(&mut r)?;
            if !msg.is_opening() {
                return Err(DecodeError::Invalid("an OPEN that is not an opening"));
            }
            Frame::Open { group, msg }
        }
        READY => Frame::Ready,
        MSG => Frame::Msg(r.bytes(r.remaining())?),
        MSG_BEGIN => {
            let total = r.len(MAX_MESSAGE_LEN)?;
            let data = r.bytes(r.remaining())?;
            if data.len() >= total {
                return Err(DecodeError::Invalid("first part holds the whole message"));
            }
            Frame::MsgBegin { total, data }
        }
        MSG_MORE => {
            let data = r.bytes(r.remaining())?;
            if data.is_empty() {
                return Err(DecodeError::Invalid("empty message part"));
            }
            Frame::MsgMore(data)
        }
        ACK => {
            let group = GroupId(r.array()?);
            let n = r.len(MAX_TAGS_PER_FRAME)?;
            let mut tags = Vec::with_capacity(n);
            for _ in 0..n {
                tags.push(r.u64_le()?);
            }
            Frame::Ack { group, tags }
        }
        UNKNOWN_GROUP => Frame::UnknownGroup(GroupId(r.array()?)),
        PING => Frame::Ping,
        CLOSE => Frame::Close(r.u8()?),
        PAD => {
            r.bytes(r.remaining())?;
            Frame::Pad
        }
        QUERY => {
            let group = GroupId(r.array()?);
            let n = r.len(MAX_QUERY_KEYS)?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                let time = r.u64()?;
                let id = MessageId(r.array()?);
                keys.push(Key { time, id });
            }
            Frame::Query { group, keys }
        }
        other => return Err(DecodeError::UnknownFrame(other)),
    };
    r.finish()?;
    Ok(frame)
}

/// Appends one frame with the given type and body.
pub(crate) fn put(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    out.push(kind);
    out.put_varint(body.len() as u64);
    out.extend_from_slice(body);
}

pub(crate) fn recon(group: &GroupId, msg: &ReconMsg) -> Vec<u8> {
    recon_as(RECON, group, msg)
}

/// An OPEN frame: `msg` must be an opening.
pub(crate) fn open(group: &GroupId, msg: &ReconMsg) -> Vec<u8> {
    debug_assert!(msg.is_opening());
    recon_as(OPEN, group, msg)
}

fn recon_as(kind: u8, group: &GroupId, msg: &ReconMsg) -> Vec<u8> {
    let mut body = group.0.to_vec();
    msg.encode(&mut body);
    let mut out = Vec::with_capacity(body.len() + 4);
    put(&mut out, kind, &body);
    out
}

pub(crate) fn ack(group: &GroupId, tags: &[u64]) -> Vec<u8> {
    let mut body = group.0.to_vec();
    body.put_varint(tags.len() as u64);
    for t in tags {
        body.extend_from_slice(&t.to_le_bytes());
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    put(&mut out, ACK, &body);
    out
}

pub(crate) fn simple(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    put(&mut out, kind, body);
    out
}

pub(crate) fn query(group: &GroupId, keys: &[Key]) -> Vec<u8> {
    let mut body = group.0.to_vec();
    body.put_varint(keys.len() as u64);
    for k in keys {
        body.extend_from_slice(&k.time.to_be_bytes());
        body.extend_from_slice(&k.id.0);
    }
    let mut out = Vec::with_capacity(body.len() + 4);
    put(&mut out, QUERY, &body);
    out
}
