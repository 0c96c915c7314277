//! Turning frames into websocket binary messages and back.
//!
//! A frame on the wire is one byte of [`ENCODING_VERSION`] followed by the frame's
//! postcard encoding, at most [`MAX_FRAME_BYTES`] in all. The decoder checks the size
//! and the header before parsing anything, never panics on any input, and allocates
//! no more than the input carries (strings and byte strings are length-checked
//! against the remaining input; sequences grow only as elements are decoded).
//! Encoding a frame that would exceed the limit is an error too, so a peer never
//! sends what the other side must refuse.

mod error;

pub use error::CodecError;

use serde::{Serialize, de::DeserializeOwned};

use crate::{ClientFrame, ErrorFrame, ServerFrame, limits::MAX_FRAME_BYTES};

/// The first byte of every frame: how the rest is encoded. `1` = postcard.
pub const ENCODING_VERSION: u8 = 1;

/// The protocol version this build speaks, sent in
/// [`Hello`](crate::ClientFrame::Hello) and confirmed in the
/// [`Challenge`](crate::Challenge).
///
/// Version 2: chunks carry the user who pushed them ([`ServerFrame::Chunk`], which
/// replaces the unauthored [`ServerFrame::UnauthoredChunk`] of version 1).
///
/// Version 3: the frames are those of version 2, but photos, thumbnails, profile
/// photos and voice messages are sealed blobs whose keys are new fields of the
/// documents' entries. A device of version 2 would set those entries aside as writes
/// outside its schema, and could not open the blobs, so the relay turns it away with
/// the typed version refusal: it must update before it syncs again.
///
/// Version 4: device certificates (`PublishDeviceCerts`, `DeviceCerts`; issue 18) —
/// two requests a version-3 relay could not decode.
///
/// Version 5: published key packages (`PublishKeyPackage`, `KeyPackagesOf`; issue
/// 18), so a member's device adds an invitee's devices to a sealed family's key group
/// when it sends the invite.
///
/// Version 6: a family created clear can be sealed by its host, after which the
/// relay refuses clear chunks of its document with `document_sealed` (408). A
/// version-5 device would take that refusal as final and drop its change, so the relay
/// turns it away: it must update first.
///
/// Version 7: family titles and 호칭 leave the relay (sealed invite cards).
///
/// Version 8: the frames are those of version 7, but a sealed family's document
/// records the invites its members send (`i/{invitee}/{inviter}` at its root), and a
/// member's removal or leaving removes them. A version-7 device's rules refuse such a
/// change — and so every later change that builds on it — so the relay turns it away:
/// it must update before it syncs again.
///
/// Version 9: a family's data can be kept in per-year volumes, documents named by the
/// family's id and the year (`FamilyId::volume`) that a member opens on the relay
/// (`OpenVolume`), a request a version-8 relay could not decode. No family or personal
/// document may take an id of a volume's shape. A family's document lists its volumes
/// (`v/{year}` at its root) and hides a volume's photos of an album it deletes
/// (`h/albums/{album}`, written by every album deletion), which a version-8 device's
/// rules would refuse, and every change after with them.
///
/// Version 10: a relay that gives HTTP session keys sends one right after `SignedIn`
/// (`ServerFrame::HttpSessionKey`), a frame a version-9 device could not decode, so
/// that a device's first download after connecting is MAC'd instead of signed.
pub const PROTOCOL_VERSION: u16 = 10;

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::ClientFrame {}
    impl Sealed for crate::ServerFrame {}
}

/// A top-level frame: [`ClientFrame`] or [`ServerFrame`].
pub trait Frame: Serialize + DeserializeOwned + sealed::Sealed {
    /// The chunk bytes it carries, if any: most of a large frame's encoding, so
    /// [`encode`] can allocate once for all of it.
    #[doc(hidden)]
    fn chunk_len(&self) -> usize {
        0
    }
}

impl Frame for ClientFrame {
    fn chunk_len(&self) -> usize {
        match self {
            ClientFrame::Push { bytes, .. } => bytes.len(),
            _ => 0,
        }
    }
}

impl Frame for ServerFrame {
    fn chunk_len(&self) -> usize {
        match self {
            ServerFrame::Chunk { bytes, .. } | ServerFrame::UnauthoredChunk { bytes, .. } => {
                bytes.len()
            }
            _ => 0,
        }
    }
}

/// Bytes an encoding starts with room for besides a chunk: a push's or a delivery's
/// header (tag, ids, seq, author, lengths: under 100 bytes), or a whole small frame.
/// A delivery encoded from 64 bytes up grew three times, copying its chunk each time.
const ENCODE_ROOM: usize = 128;

/// Encodes a frame: header byte, then postcard.
///
/// Fails with [`CodecError::FrameTooLarge`] if the result would exceed
/// [`MAX_FRAME_BYTES`].
pub fn encode<F: Frame>(frame: &F) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(ENCODE_ROOM + frame.chunk_len());
    out.push(ENCODING_VERSION);
    let out = postcard::to_extend(frame, out)
        .map_err(|e| CodecError::Malformed(format!("cannot encode: {e}")))?;
    if out.len() > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge {
            len: out.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(out)
}

/// Decodes a frame. Any input gives a frame or a typed error, never a panic.
pub fn decode<F: Frame>(bytes: &[u8]) -> Result<F, CodecError> {
    if bytes.len() > MAX_FRAME_BYTES {
        return Err(CodecError::FrameTooLarge {
            len: bytes.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != ENCODING_VERSION {
        return Err(CodecError::UnsupportedEncoding(version));
    }
    let (frame, rest) = postcard::take_from_bytes::<F>(body).map_err(CodecError::from_postcard)?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes { count: rest.len() });
    }
    Ok(frame)
}

/// Encodes a device → relay frame.
pub fn encode_client(frame: &ClientFrame) -> Result<Vec<u8>, CodecError> {
    encode(frame)
}

/// Decodes a device → relay frame (see [`decode`]). Does not check field limits; the
/// relay also calls [`ClientFrame::validate`], or uses [`decode_client_checked`].
pub fn decode_client(bytes: &[u8]) -> Result<ClientFrame, CodecError> {
    decode(bytes)
}

/// Encodes a relay → device frame.
pub fn encode_server(frame: &ServerFrame) -> Result<Vec<u8>, CodecError> {
    encode(frame)
}

/// Decodes a relay → device frame (see [`decode`]).
pub fn decode_server(bytes: &[u8]) -> Result<ServerFrame, CodecError> {
    decode(bytes)
}

/// What the relay does with every incoming message: decode, then
/// [`validate`](ClientFrame::validate). On failure, the error frame to send back,
/// tied to the frame's request, document and chunk when it could be decoded.
pub fn decode_client_checked(bytes: &[u8]) -> Result<ClientFrame, ErrorFrame> {
    let frame = decode_client(bytes).map_err(ErrorFrame::from)?;
    match frame.validate() {
        Ok(()) => Ok(frame),
        Err(violation) => Err(ErrorFrame::from(violation).about(&frame)),
    }
}

/// The fuzzer's entry point (`fuzz/`, target `frame`) and its regression tests': both
/// decoders and the relay's checked decode on arbitrary bytes. Panics on a bug: a
/// decoded frame that does not encode and decode back to itself.
#[doc(hidden)]
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(frame) = decode_client(data)
        && let Ok(bytes) = encode_client(&frame)
    {
        assert!(
            decode_client(&bytes).is_ok_and(|again| again == frame),
            "a client frame does not round-trip"
        );
    }
    if let Ok(frame) = decode_server(data)
        && let Ok(bytes) = encode_server(&frame)
    {
        assert!(
            decode_server(&bytes).is_ok_and(|again| again == frame),
            "a server frame does not round-trip"
        );
    }
    let _ = decode_client_checked(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChunkId, DocId, ErrorCode, Request, RequestId, limits::MAX_CHUNK_BYTES};

    #[test]
    fn a_chunk_frame_is_encoded_without_growing_its_buffer() {
        let doc = DocId([7; 16]);
        for len in [1, 400, MAX_CHUNK_BYTES] {
            let bytes = vec![9; len];
            let push = encode_client(&ClientFrame::push(doc, bytes.clone())).unwrap();
            let delivery = ServerFrame::chunk(doc, u64::MAX, Some(crate::UserId([3; 16])), bytes);
            let delivered = encode_server(&delivery).unwrap();
            for out in [&push, &delivered] {
                // Grown, the buffer would have at least doubled past what it started with.
                assert_eq!(out.capacity(), ENCODE_ROOM + len, "{len} bytes");
                assert!(out.len() <= out.capacity());
            }
            assert_eq!(decode_server(&delivered).unwrap(), delivery);
        }
    }

    #[test]
    fn a_frame_is_a_header_byte_and_postcard() {
        let bytes = encode_client(&ClientFrame::Ping { nonce: 5 }).unwrap();
        // header, variant index of Ping, varint 5
        assert_eq!(bytes, [ENCODING_VERSION, 10, 5]);
        assert_eq!(
            decode_client(&bytes).unwrap(),
            ClientFrame::Ping { nonce: 5 }
        );
    }

    #[test]
    fn header_and_size_are_checked_first() {
        assert_eq!(decode_client(&[]), Err(CodecError::Empty));
        assert_eq!(
            decode_client(&[2, 10, 5]),
            Err(CodecError::UnsupportedEncoding(2))
        );
        let big = vec![ENCODING_VERSION; MAX_FRAME_BYTES + 1];
        assert_eq!(
            decode_server(&big),
            Err(CodecError::FrameTooLarge {
                len: MAX_FRAME_BYTES + 1,
                max: MAX_FRAME_BYTES
            })
        );
        assert!(matches!(decode_client(&[1]), Err(CodecError::Malformed(_))));
        assert_eq!(
            decode_client(&[1, 10, 5, 0, 0]),
            Err(CodecError::TrailingBytes { count: 2 })
        );
        assert!(matches!(
            decode_client(&[1, 200]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn a_full_chunk_fits_and_a_bigger_one_does_not_encode() {
        let bytes = vec![7u8; MAX_CHUNK_BYTES];
        let push = ClientFrame::Push {
            doc: DocId([1; 16]),
            chunk: ChunkId::of(&bytes),
            bytes,
        };
        let wire = encode_client(&push).unwrap();
        assert_eq!(decode_client(&wire).unwrap(), push);
        assert_eq!(decode_client_checked(&wire).unwrap(), push);

        let chunk = ServerFrame::chunk(
            DocId([1; 16]),
            u64::MAX,
            Some(crate::UserId([2; 16])),
            vec![7u8; MAX_CHUNK_BYTES],
        );
        let wire = encode_server(&chunk).unwrap();
        assert_eq!(decode_server(&wire).unwrap(), chunk);

        let too_big = ClientFrame::Push {
            doc: DocId([1; 16]),
            chunk: ChunkId::of(b""),
            bytes: vec![0; MAX_FRAME_BYTES],
        };
        assert!(matches!(
            encode_client(&too_big),
            Err(CodecError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn checked_decoding_answers_typed_error_frames() {
        let frame = ClientFrame::Request {
            id: RequestId(3),
            body: Request::LookupUser {
                email: "x".repeat(1000),
            },
        };
        let wire = encode_client(&frame).unwrap();
        let err = decode_client_checked(&wire).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidInput);
        assert_eq!(err.request, Some(RequestId(3)));

        let err = decode_client_checked(&[9]).unwrap_err();
        assert_eq!(err.code, ErrorCode::UnsupportedEncoding);
    }

    #[test]
    fn a_huge_announced_length_does_not_allocate_it() {
        // Subscribe (index 6) announcing u32::MAX subscriptions with none present.
        let wire = [ENCODING_VERSION, 6, 0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(matches!(
            decode_client(&wire),
            Err(CodecError::Malformed(_))
        ));
        // Push (index 8) with a byte string announcing 1 GiB.
        let mut wire = vec![ENCODING_VERSION, 8];
        wire.extend_from_slice(&[0; 16 + 32]);
        wire.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x04]);
        assert!(matches!(
            decode_client(&wire),
            Err(CodecError::Malformed(_))
        ));
    }
}
