//! Wire-level validation of frames: field lengths, counts and chunk integrity.
//!
//! Decoding proves a frame is well-formed; [`ClientFrame::validate`] proves it is
//! within the [`limits`](crate::limits), so the relay can refuse it with a precise
//! [`ErrorCode`] before touching storage. Product rules (nickname characters) are
//! checked by the relay and the apps on top; a family's title and its 호칭 never reach
//! the relay (they are in the family document).

use crate::{
    ClientFrame, DocId, ErrorCode, ErrorFrame, Request, ServerFrame, VOLUME_YEARS,
    limits::{
        MAX_CERTS_PER_FRAME, MAX_CHUNK_BYTES, MAX_CLIENT_NAME_BYTES, MAX_EMAIL_BYTES,
        MAX_INVITE_CARD_BYTES, MAX_KEY_PACKAGE_BYTES, MAX_LINK_CODE_BYTES, MAX_NICKNAME_BYTES,
        MAX_SUBSCRIPTIONS_PER_FRAME,
    },
};

/// A well-formed frame that breaks a wire-level rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// A string field is longer than its limit (in bytes).
    #[error("{field} is {len} bytes, more than {max}")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A required field is empty.
    #[error("{field} must not be empty")]
    Empty {
        /// Which field.
        field: &'static str,
    },
    /// A string field contains control characters (newlines, NUL, ...).
    #[error("{field} contains control characters")]
    ControlCharacters {
        /// Which field.
        field: &'static str,
    },
    /// A list has more items than allowed in one frame.
    #[error("{field} has {count} items, more than {max}")]
    TooMany {
        /// Which field.
        field: &'static str,
        /// How many items.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A number is out of its range.
    #[error("{field} is out of range: {reason}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// What the range is.
        reason: &'static str,
    },
    /// A chunk is larger than [`MAX_CHUNK_BYTES`].
    #[error("chunk is {len} bytes, more than {max}")]
    ChunkTooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A chunk's id is not the blake3 hash of its bytes.
    #[error("chunk id does not match the blake3 hash of its bytes")]
    ChunkHashMismatch,
}

impl ProtocolViolation {
    /// The error code the relay answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtocolViolation::ChunkTooLarge { .. } => ErrorCode::TooLarge,
            ProtocolViolation::ChunkHashMismatch => ErrorCode::HashMismatch,
            ProtocolViolation::TooLong { .. }
            | ProtocolViolation::Empty { .. }
            | ProtocolViolation::ControlCharacters { .. }
            | ProtocolViolation::TooMany { .. }
            | ProtocolViolation::OutOfRange { .. } => ErrorCode::InvalidInput,
        }
    }
}

impl From<&ProtocolViolation> for ErrorCode {
    fn from(v: &ProtocolViolation) -> Self {
        v.code()
    }
}

impl From<ProtocolViolation> for ErrorFrame {
    fn from(v: ProtocolViolation) -> Self {
        ErrorFrame::new(v.code(), v.to_string())
    }
}

type Check = Result<(), ProtocolViolation>;

/// A string of at most `max` bytes, without control characters; empty allowed.
fn text(field: &'static str, s: &str, max: usize) -> Check {
    if s.len() > max {
        return Err(ProtocolViolation::TooLong {
            field,
            len: s.len(),
            max,
        });
    }
    if s.chars().any(char::is_control) {
        return Err(ProtocolViolation::ControlCharacters { field });
    }
    Ok(())
}

/// Like [`text`], and not empty.
fn required(field: &'static str, s: &str, max: usize) -> Check {
    if s.is_empty() {
        return Err(ProtocolViolation::Empty { field });
    }
    text(field, s, max)
}

fn count(field: &'static str, n: usize, max: usize) -> Check {
    if n > max {
        return Err(ProtocolViolation::TooMany {
            field,
            count: n,
            max,
        });
    }
    Ok(())
}

fn chunk(chunk: &crate::ChunkId, bytes: &[u8]) -> Check {
    if bytes.is_empty() {
        return Err(ProtocolViolation::Empty { field: "bytes" });
    }
    if bytes.len() > MAX_CHUNK_BYTES {
        return Err(ProtocolViolation::ChunkTooLarge {
            len: bytes.len(),
            max: MAX_CHUNK_BYTES,
        });
    }
    if !chunk.verifies(bytes) {
        return Err(ProtocolViolation::ChunkHashMismatch);
    }
    Ok(())
}

/// A new family's or personal document's id, which may not have a volume's shape
/// ([`DocId::may_name_a_new_document`]).
fn new_document(field: &'static str, id: DocId) -> Check {
    if !id.may_name_a_new_document() {
        return Err(ProtocolViolation::OutOfRange {
            field,
            reason: "the id has the shape of a family volume's",
        });
    }
    Ok(())
}

impl ClientFrame {
    /// Checks the wire-level limits: string lengths and emptiness, subscription
    /// counts, chunk size and `chunk == blake3(bytes)`, snapshot ranges.
    /// Signatures are not checked here (that needs ed25519 and the relay's state).
    pub fn validate(&self) -> Result<(), ProtocolViolation> {
        match self {
            ClientFrame::Hello { client, .. } => text("client", client, MAX_CLIENT_NAME_BYTES),
            ClientFrame::Register {
                email,
                nickname,
                personal_doc,
                ..
            } => {
                required("email", email, MAX_EMAIL_BYTES)?;
                required("nickname", nickname, MAX_NICKNAME_BYTES)?;
                new_document("personal_doc", *personal_doc)
            }
            ClientFrame::SignIn { .. } | ClientFrame::Recover { .. } | ClientFrame::Ping { .. } => {
                Ok(())
            }
            ClientFrame::LinkDevice { code, .. } => required("code", code, MAX_LINK_CODE_BYTES),
            ClientFrame::Request { body, .. } => body.validate(),
            ClientFrame::Subscribe { docs } => {
                count("docs", docs.len(), MAX_SUBSCRIPTIONS_PER_FRAME)
            }
            ClientFrame::Unsubscribe { docs } => {
                count("docs", docs.len(), MAX_SUBSCRIPTIONS_PER_FRAME)
            }
            ClientFrame::Push {
                chunk: id, bytes, ..
            } => chunk(id, bytes),
            ClientFrame::PushSnapshot {
                covers_seq, len, ..
            } => {
                if *covers_seq == 0 {
                    return Err(ProtocolViolation::OutOfRange {
                        field: "covers_seq",
                        reason: "a snapshot covers at least seq 1",
                    });
                }
                if *len == 0 {
                    return Err(ProtocolViolation::OutOfRange {
                        field: "len",
                        reason: "a snapshot is not empty",
                    });
                }
                Ok(())
            }
        }
    }
}

impl Request {
    /// Checks the wire-level limits of the request's fields.
    pub fn validate(&self) -> Result<(), ProtocolViolation> {
        match self {
            // A relay never acts on a retired request (titles and 호칭 are written in
            // the family document since protocol 7).
            Request::RetiredRenameFamily
            | Request::RetiredSetMemberName
            | Request::RetiredAcceptInviteAs => Err(ProtocolViolation::OutOfRange {
                field: "request",
                reason: "retired in protocol 7",
            }),
            Request::LookupUser { email } => required("email", email, MAX_EMAIL_BYTES),
            Request::SendInvite { card, .. } => {
                if card.is_empty() {
                    return Err(ProtocolViolation::Empty { field: "card" });
                }
                if card.len() > MAX_INVITE_CARD_BYTES {
                    return Err(ProtocolViolation::TooLong {
                        field: "card",
                        len: card.len(),
                        max: MAX_INVITE_CARD_BYTES,
                    });
                }
                Ok(())
            }
            Request::SetProfile { nickname, .. } => {
                required("nickname", nickname, MAX_NICKNAME_BYTES)
            }
            Request::PublishDeviceCerts { certs } => {
                if certs.is_empty() {
                    return Err(ProtocolViolation::Empty { field: "certs" });
                }
                if certs.len() > MAX_CERTS_PER_FRAME {
                    return Err(ProtocolViolation::TooMany {
                        field: "certs",
                        count: certs.len(),
                        max: MAX_CERTS_PER_FRAME,
                    });
                }
                Ok(())
            }
            Request::DeviceCerts { .. } | Request::KeyPackagesOf { .. } => Ok(()),
            Request::PublishKeyPackage { package } => {
                if package.is_empty() {
                    return Err(ProtocolViolation::Empty { field: "package" });
                }
                if package.len() > MAX_KEY_PACKAGE_BYTES {
                    return Err(ProtocolViolation::TooLong {
                        field: "package",
                        len: package.len(),
                        max: MAX_KEY_PACKAGE_BYTES,
                    });
                }
                Ok(())
            }
            Request::CreateFamily { family } => new_document("family", DocId::from(*family)),
            Request::OpenVolume { year, .. } => {
                if !VOLUME_YEARS.contains(year) {
                    return Err(ProtocolViolation::OutOfRange {
                        field: "year",
                        reason: "a volume's year is within 1900–2200",
                    });
                }
                Ok(())
            }
            Request::RemoveMember { .. }
            | Request::LeaveFamily { .. }
            | Request::DeleteFamily { .. }
            | Request::ListFamilies
            | Request::AnswerInvite { .. }
            | Request::WithdrawInvite { .. }
            | Request::ListInvites
            | Request::ListDevices
            | Request::RevokeDevice { .. }
            | Request::IssueLinkCode
            | Request::ListPresence { .. }
            | Request::ListPendingLinks
            | Request::ConfirmLink { .. }
            | Request::ConfirmSnapshot { .. }
            | Request::RejectSnapshot { .. } => Ok(()),
        }
    }
}

impl ServerFrame {
    /// What a device checks on frames from the relay: a `Chunk` is within
    /// [`MAX_CHUNK_BYTES`] and its id is the blake3 hash of its bytes.
    pub fn validate(&self) -> Result<(), ProtocolViolation> {
        match self {
            ServerFrame::Chunk {
                chunk: id, bytes, ..
            }
            | ServerFrame::UnauthoredChunk {
                chunk: id, bytes, ..
            } => chunk(id, bytes),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlobHash, ChunkId, FamilyId, RequestId, Subscription, UserId};

    fn request(body: Request) -> ClientFrame {
        ClientFrame::Request {
            id: RequestId(1),
            body,
        }
    }

    #[test]
    fn push_checks_size_and_hash() {
        let doc = DocId([1; 16]);
        let ok = ClientFrame::Push {
            doc,
            chunk: ChunkId::of(b"changes"),
            bytes: b"changes".to_vec(),
        };
        assert_eq!(ok.validate(), Ok(()));

        let wrong = ClientFrame::Push {
            doc,
            chunk: ChunkId::of(b"other"),
            bytes: b"changes".to_vec(),
        };
        let err = wrong.validate().unwrap_err();
        assert_eq!(err, ProtocolViolation::ChunkHashMismatch);
        assert_eq!(err.code(), ErrorCode::HashMismatch);

        let big = vec![0; MAX_CHUNK_BYTES + 1];
        let big = ClientFrame::Push {
            doc,
            chunk: ChunkId::of(&big),
            bytes: big,
        };
        assert_eq!(big.validate().unwrap_err().code(), ErrorCode::TooLarge);

        let empty = ClientFrame::Push {
            doc,
            chunk: ChunkId::of(b""),
            bytes: vec![],
        };
        assert_eq!(
            empty.validate().unwrap_err().code(),
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn strings_are_bounded_in_bytes_and_required_ones_non_empty() {
        let ok = request(Request::SendInvite {
            invite: crate::InviteId([1; 16]),
            family: FamilyId([1; 16]),
            invitee: UserId([2; 16]),
            card: vec![7; MAX_INVITE_CARD_BYTES],
            signature: crate::Signature([0; 64]),
        });
        assert_eq!(ok.validate(), Ok(()));

        let long_card = request(Request::SendInvite {
            invite: crate::InviteId([1; 16]),
            family: FamilyId([1; 16]),
            invitee: UserId([2; 16]),
            card: vec![7; MAX_INVITE_CARD_BYTES + 1],
            signature: crate::Signature([0; 64]),
        });
        assert_eq!(
            long_card.validate(),
            Err(ProtocolViolation::TooLong {
                field: "card",
                len: MAX_INVITE_CARD_BYTES + 1,
                max: MAX_INVITE_CARD_BYTES
            })
        );

        let empty = request(Request::SetProfile {
            nickname: String::new(),
            avatar: Some(BlobHash::of(b"face")),
        });
        assert_eq!(
            empty.validate(),
            Err(ProtocolViolation::Empty { field: "nickname" })
        );

        let control = request(Request::LookupUser {
            email: "a@b.c\n".into(),
        });
        assert_eq!(
            control.validate(),
            Err(ProtocolViolation::ControlCharacters { field: "email" })
        );

        let email = "a".repeat(MAX_EMAIL_BYTES);
        let register = ClientFrame::Register {
            email,
            nickname: "n".repeat(MAX_NICKNAME_BYTES),
            personal_doc: DocId([0; 16]),
            user_key: crate::PublicKey([0; 32]),
            device: crate::DeviceId([0; 16]),
            device_key: crate::PublicKey([0; 32]),
            user_signature: crate::Signature([0; 64]),
            device_signature: crate::Signature([0; 64]),
        };
        assert_eq!(register.validate(), Ok(()));
    }

    #[test]
    fn volumes_are_opened_within_their_years_and_no_new_document_takes_a_volumes_id() {
        let family = FamilyId::new_family(true);
        let open = |year| request(Request::OpenVolume { family, year }).validate();
        assert_eq!(open(1900), Ok(()));
        assert_eq!(open(2026), Ok(()));
        assert_eq!(open(2200), Ok(()));
        for year in [0, 1899, 2201, u16::MAX] {
            assert_eq!(open(year).unwrap_err().code(), ErrorCode::InvalidInput);
        }

        let volume = family.volume(2030);
        let create = |id: DocId| {
            request(Request::CreateFamily {
                family: FamilyId(id.0),
            })
            .validate()
        };
        assert_eq!(create(DocId::from(FamilyId::new_family(false))), Ok(()));
        // A member knows the family's id, so they could name a volume before the
        // family opens it: as a family, or as the key log of one.
        assert_eq!(create(volume).unwrap_err().code(), ErrorCode::InvalidInput);
        let key_log_of = DocId(volume.key_log_family().0);
        assert_eq!(
            create(key_log_of).unwrap_err().code(),
            ErrorCode::InvalidInput
        );

        let register = |personal_doc| ClientFrame::Register {
            email: "a@b.c".into(),
            nickname: "nick".into(),
            personal_doc,
            user_key: crate::PublicKey([0; 32]),
            device: crate::DeviceId([0; 16]),
            device_key: crate::PublicKey([0; 32]),
            user_signature: crate::Signature([0; 64]),
            device_signature: crate::Signature([0; 64]),
        };
        assert_eq!(
            register(volume).validate().unwrap_err().code(),
            ErrorCode::InvalidInput
        );
        assert_eq!(
            register(key_log_of).validate().unwrap_err().code(),
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn subscription_counts_are_bounded() {
        let sub = Subscription {
            doc: DocId([0; 16]),
            since: 0,
        };
        let ok = ClientFrame::Subscribe {
            docs: vec![sub; MAX_SUBSCRIPTIONS_PER_FRAME],
        };
        assert_eq!(ok.validate(), Ok(()));
        let too_many = ClientFrame::Subscribe {
            docs: vec![sub; MAX_SUBSCRIPTIONS_PER_FRAME + 1],
        };
        assert!(matches!(
            too_many.validate(),
            Err(ProtocolViolation::TooMany { .. })
        ));
        let too_many = ClientFrame::Unsubscribe {
            docs: vec![DocId([0; 16]); MAX_SUBSCRIPTIONS_PER_FRAME + 1],
        };
        assert_eq!(
            too_many.validate().unwrap_err().code(),
            ErrorCode::InvalidInput
        );
    }

    #[test]
    fn snapshots_cover_something() {
        let snap = |covers_seq, len| ClientFrame::PushSnapshot {
            doc: DocId([0; 16]),
            covers_seq,
            blob: BlobHash::of(b"s"),
            len,
        };
        assert_eq!(snap(3, 10).validate(), Ok(()));
        assert!(snap(0, 10).validate().is_err());
        assert!(snap(3, 0).validate().is_err());
    }

    #[test]
    fn server_chunks_are_verified_by_the_device() {
        let good = ServerFrame::chunk(DocId([0; 16]), 1, Some(UserId([1; 16])), b"abc".to_vec());
        assert_eq!(good.validate(), Ok(()));
        let bad = ServerFrame::Chunk {
            doc: DocId([0; 16]),
            seq: 1,
            chunk: ChunkId::of(b"abd"),
            author: None,
            bytes: b"abc".to_vec(),
        };
        assert_eq!(bad.validate(), Err(ProtocolViolation::ChunkHashMismatch));
        let old = ServerFrame::UnauthoredChunk {
            doc: DocId([0; 16]),
            seq: 1,
            chunk: ChunkId::of(b"abd"),
            bytes: b"abc".to_vec(),
        };
        assert_eq!(old.validate(), Err(ProtocolViolation::ChunkHashMismatch));
    }

    #[test]
    fn violations_become_error_frames_about_the_frame() {
        let frame = request(Request::LookupUser {
            email: String::new(),
        });
        let err = frame.validate().unwrap_err();
        let e = ErrorFrame::from(err).about(&frame);
        assert_eq!(e.code, ErrorCode::InvalidInput);
        assert_eq!(e.request, Some(RequestId(1)));
        assert_eq!(e.message, "email must not be empty");
    }
}
