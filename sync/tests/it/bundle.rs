//! Drive bundles (PROTOCOL.md §15): only the contact a bundle was made for
//! opens it, whole and in order; every change, cut, reordering or
//! addition is refused.

use strand_sync::{
    bundle_contact, BundleError, BundleReader, BundleWriter, Contact, GroupId, Identity, Kind,
    Message, BUNDLE_HEADER_LEN,
};

use crate::common::rng;

const NOW: u64 = 1_800_000_000_000;

struct Made {
    header: [u8; BUNDLE_HEADER_LEN],
    frames: Vec<Vec<u8>>,
    sent: Vec<(GroupId, Vec<u8>)>,
}

/// Ann makes a bundle for Ben of `n` texts of `len` bytes each.
fn make(ann: &Identity, ben_of_ann: &Contact, n: usize, len: usize) -> Made {
    let mut r = rng(n as u64);
    let (mut w, header) = BundleWriter::new(ann, ben_of_ann, NOW, &mut r);
    let group = ben_of_ann.direct_group();
    let mut frames = Vec::new();
    let mut sent = Vec::new();
    for i in 0..n {
        let body = vec![b'a' + (i % 26) as u8; len];
        let m =
            Message::create(ann, group, NOW - 1000 + i as u64, Kind::TEXT, &body, &mut r).unwrap();
        sent.push((group.id, m.as_bytes().to_vec()));
        frames.extend(w.push(&group.id, &m));
    }
    frames.push(w.finish());
    Made {
        header,
        frames,
        sent,
    }
}

/// Reads frames (each with its length prefix) as a reader of a file does.
fn read(
    header: &[u8],
    frames: &[Vec<u8>],
    contacts: &[Contact],
) -> Result<Vec<(GroupId, Vec<u8>)>, BundleError> {
    let contact = bundle_contact(header, contacts)?.ok_or(BundleError::Foreign)?;
    let mut reader = BundleReader::new(header[..BUNDLE_HEADER_LEN].try_into().unwrap(), contact);
    let mut out = Vec::new();
    for f in frames {
        let len = BundleReader::frame_len(f[..4].try_into().unwrap())?;
        if f.len() != 4 + len {
            return Err(BundleError::Truncated);
        }
        for (g, m) in reader.open(&f[4..])? {
            out.push((g, m.as_bytes().to_vec()));
        }
    }
    if !reader.is_done() {
        return Err(BundleError::Truncated);
    }
    Ok(out)
}

struct Three {
    ann: Identity,
    ben: Identity,
    ben_of_ann: Contact,
    ann_of_ben: Contact,
    cat_of_ben: Contact,
}

fn three() -> Three {
    let mut r = rng(1);
    let ann = Identity::generate("ann", &mut r).unwrap();
    let ben = Identity::generate("ben", &mut r).unwrap();
    let cat = Identity::generate("cat", &mut r).unwrap();
    Three {
        ben_of_ann: ann.contact(&ben.public()).unwrap(),
        ann_of_ben: ben.contact(&ann.public()).unwrap(),
        cat_of_ben: ben.contact(&cat.public()).unwrap(),
        ann,
        ben,
    }
}

#[test]
fn a_bundle_opens_for_its_contact_whole_and_in_order() {
    let t = three();
    // 3,000 texts of 1 KiB: several frames.
    let made = make(&t.ann, &t.ben_of_ann, 3000, 1024);
    assert!(made.frames.len() >= 3, "{} frames", made.frames.len());
    let got = read(
        &made.header,
        &made.frames,
        &[t.cat_of_ben.clone(), t.ann_of_ben.clone()],
    )
    .unwrap();
    assert_eq!(got, made.sent);
    // Who made it is inside, not in the clear.
    let c = bundle_contact(&made.header, [&t.ann_of_ben])
        .unwrap()
        .unwrap();
    let mut reader = BundleReader::new(&made.header, c);
    reader.open(&made.frames[0][4..]).unwrap();
    let meta = reader.meta().unwrap();
    assert_eq!(meta.maker, t.ann.public().sign);
    assert_eq!(meta.created, NOW);
    assert!(!made
        .header
        .windows(32)
        .any(|w| w == t.ann.public().sign || w == t.ben.public().sign));
    // The bound PROTOCOL.md §15 states.
    assert_eq!(strand_sync::MAX_BUNDLE_FRAME, 1_048_810);
    // An empty bundle is one frame and opens to nothing.
    let empty = make(&t.ann, &t.ben_of_ann, 0, 0);
    assert_eq!(empty.frames.len(), 1);
    assert_eq!(
        read(
            &empty.header,
            &empty.frames,
            std::slice::from_ref(&t.ann_of_ben)
        ),
        Ok(vec![])
    );
}

#[test]
fn a_foreign_or_changed_bundle_is_refused() {
    let t = three();
    let made = make(&t.ann, &t.ben_of_ann, 1500, 1024);
    let ok = |h: &[u8], f: &[Vec<u8>]| read(h, f, std::slice::from_ref(&t.ann_of_ben));
    // Not for Ben if Ann is not among the contacts tried.
    assert_eq!(
        read(
            &made.header,
            &made.frames,
            std::slice::from_ref(&t.cat_of_ben)
        ),
        Err(BundleError::Foreign)
    );
    // Not a bundle.
    assert_eq!(
        ok(b"PK\x03\x04", &made.frames),
        Err(BundleError::NotABundle)
    );
    let mut h = made.header;
    h[0] ^= 1;
    assert_eq!(ok(&h, &made.frames), Err(BundleError::NotABundle));
    // A changed salt or check: no contact matches.
    for at in [8, 23, 24, BUNDLE_HEADER_LEN - 1] {
        let mut h = made.header;
        h[at] ^= 0x40;
        assert_eq!(
            ok(&h, &made.frames),
            Err(BundleError::Foreign),
            "header byte {at}"
        );
    }
    // One byte changed anywhere in a frame.
    for (i, at) in [(0, 4), (0, 50), (1, 1000), (made.frames.len() - 1, 4)] {
        let mut f = made.frames.clone();
        let last = f[i].len() - 1;
        f[i][at.min(last)] ^= 1;
        assert!(
            matches!(ok(&made.header, &f), Err(BundleError::Tampered(_))),
            "frame {i} byte {at}"
        );
        let mut f = made.frames.clone();
        f[i][last] ^= 0x80;
        assert!(matches!(
            ok(&made.header, &f),
            Err(BundleError::Tampered(_))
        ));
    }
    // A length prefix out of bounds.
    let mut f = made.frames.clone();
    f[0][0] = 0xff;
    assert!(matches!(
        ok(&made.header, &f),
        Err(BundleError::Malformed(_))
    ));
    // Cut short: the last frame missing.
    let f = &made.frames[..made.frames.len() - 1];
    assert_eq!(ok(&made.header, f), Err(BundleError::Truncated));
    // Frames swapped.
    let mut f = made.frames.clone();
    f.swap(0, 1);
    assert!(matches!(
        ok(&made.header, &f),
        Err(BundleError::Tampered(0))
    ));
    // A frame added after the last: of this bundle, or of another one.
    let mut f = made.frames.clone();
    f.push(made.frames[0].clone());
    assert_eq!(ok(&made.header, &f), Err(BundleError::Trailing));
    // Frames of another bundle for the same contact do not open here.
    let other = make(&t.ann, &t.ben_of_ann, 10, 10);
    assert!(matches!(
        ok(&made.header, &other.frames),
        Err(BundleError::Tampered(0))
    ));
}

/// Splits a whole bundle file into its header and length-prefixed frames.
fn split(file: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (header, mut rest) = file.split_at(BUNDLE_HEADER_LEN);
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        frames.push(rest[..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    (header.to_vec(), frames)
}

#[test]
fn a_contact_sealing_malformed_frames_gets_them_refused() {
    // Both of a pair hold a bundle's key, so a hostile contact can seal
    // any frames it likes: what is inside is read as strictly as a file.
    let t = three();
    let group = t.ben_of_ann.direct_group();
    let mut r = rng(9);
    let m = Message::create(&t.ann, group, NOW, Kind::TEXT, b"hi", &mut r).unwrap();
    let mut meta = vec![1u8];
    meta.extend_from_slice(&t.ann.public().sign);
    meta.extend_from_slice(&NOW.to_be_bytes());
    let record = |group: &[u8; 32], len: u32, bytes: &[u8]| {
        let mut out = group.to_vec();
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(bytes);
        out
    };
    let good = record(&group.id.0, m.as_bytes().len() as u32, m.as_bytes());
    let sealed = |frames: &[&[u8]]| {
        let file = strand_sync::fuzzing::bundle_sealed(&t.ann, &t.ben_of_ann, frames, &mut rng(3));
        let (header, frames) = split(&file);
        read(&header, &frames, std::slice::from_ref(&t.ann_of_ben))
    };
    let with_meta = |rest: &[u8]| [&meta[..], rest].concat();
    // Well formed: the metadata alone, or with a record, in one frame or two.
    assert_eq!(sealed(&[&meta]), Ok(vec![]));
    let one = vec![(group.id, m.as_bytes().to_vec())];
    assert_eq!(sealed(&[&with_meta(&good)]), Ok(one.clone()));
    assert_eq!(sealed(&[&meta, &good]), Ok(one));
    let malformed = |frames: &[&[u8]], why: &str| {
        assert!(
            matches!(sealed(frames), Err(BundleError::Malformed(_))),
            "{why}: {:?}",
            sealed(frames)
        );
    };
    malformed(&[&meta[..40]], "a first frame shorter than the metadata");
    malformed(&[b""], "an empty first frame");
    let mut v2 = meta.clone();
    v2[0] = 2;
    malformed(&[&v2], "an unknown version");
    malformed(&[&with_meta(&good[..good.len() - 1])], "a record cut short");
    malformed(&[&meta, &good[..35]], "a record's length cut short");
    malformed(
        &[&with_meta(&record(
            &group.id.0,
            strand_sync::limits::MAX_MESSAGE_LEN as u32 + 1,
            b"",
        ))],
        "a length over the limit",
    );
    let mut bad = m.as_bytes().to_vec();
    bad[0] ^= 0xff;
    malformed(
        &[&with_meta(&record(&group.id.0, bad.len() as u32, &bad))],
        "a message that does not decode",
    );
    malformed(
        &[&with_meta(&[&good[..], &good[..good.len() - 3]].concat())],
        "a good record, then one cut short",
    );
}
