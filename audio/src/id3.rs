//! A small ID3v2.3 writer: title (TIT2) and artist (TPE1, the sender), UTF-16 with BOM
//! so Korean names survive in every player that reads ID3v2.3.

/// Longest text we store per frame, in UTF-16 code units.
const MAX_UNITS: usize = 1024;

/// The tag bytes, empty when neither field is set.
pub(crate) fn tag(title: Option<&str>, artist: Option<&str>) -> Vec<u8> {
    let mut frames = Vec::new();
    for (id, text) in [(b"TIT2", title), (b"TPE1", artist)] {
        let Some(text) = text.filter(|t| !t.is_empty()) else {
            continue;
        };
        let mut body = vec![1u8, 0xFF, 0xFE]; // UTF-16 with a little-endian BOM
        for unit in text.encode_utf16().take(MAX_UNITS) {
            body.extend_from_slice(&unit.to_le_bytes());
        }
        frames.extend_from_slice(id);
        frames.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frames.extend_from_slice(&[0, 0]);
        frames.extend_from_slice(&body);
    }
    if frames.is_empty() {
        return frames;
    }
    let size = frames.len() as u32;
    let mut tag = Vec::with_capacity(10 + frames.len());
    tag.extend_from_slice(b"ID3\x03\x00\x00");
    // Syncsafe size: 7 bits per byte.
    tag.extend_from_slice(&[
        ((size >> 21) & 0x7F) as u8,
        ((size >> 14) & 0x7F) as u8,
        ((size >> 7) & 0x7F) as u8,
        (size & 0x7F) as u8,
    ]);
    tag.extend_from_slice(&frames);
    tag
}

/// Length of an ID3v2 tag at the start of `head` (header, body and footer), 0 if none.
pub(crate) fn tag_len(head: &[u8]) -> u64 {
    if head.len() < 10 || &head[..3] != b"ID3" {
        return 0;
    }
    let s = &head[6..10];
    if s.iter().any(|&b| b & 0x80 != 0) {
        return 0;
    }
    let size = s.iter().fold(0u64, |v, &b| (v << 7) | u64::from(b));
    let footer = if head[5] & 0x10 != 0 { 10 } else { 0 };
    10 + size + footer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_when_nothing_set() {
        assert!(tag(None, Some("")).is_empty());
    }

    #[test]
    fn title_and_artist_round_trip_length() {
        let t = tag(Some("할머니 생신"), Some("Mina"));
        assert_eq!(&t[..3], b"ID3");
        assert_eq!(tag_len(&t), t.len() as u64);
        assert!(t.windows(4).any(|w| w == b"TIT2"));
        assert!(t.windows(4).any(|w| w == b"TPE1"));
    }
}
