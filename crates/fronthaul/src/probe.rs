//! Discovery probe datagrams, the fronthaul-side equivalent of `uhd_find_devices`: a host
//! sends a probe to the radio's fronthaul UDP port and the radio answers the sender with its
//! identity. Because it travels the fronthaul network, a host that does not hold an address
//! on the radio's subnet (the thesis' parked 192.168.20.2) gets no answer.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// First 8 bytes of a probe request. VRT headers never start with 0x46 ('F' = type 4 with
/// reserved bits set), so probes and VRT packets cannot be confused.
pub const PROBE_MAGIC: &[u8; 8] = b"FERRYPRB";
/// First 8 bytes of a probe answer.
pub const ANSWER_MAGIC: &[u8; 8] = b"FERRYPRA";

/// Errors decoding probe datagrams.
#[derive(Debug, Error)]
pub enum ProbeError {
    /// Not a probe datagram (wrong magic or length).
    #[error("not a Ferry probe datagram")]
    NotProbe,
    /// The answer's identity JSON is malformed.
    #[error("malformed probe answer: {0}")]
    BadAnswer(#[from] serde_json::Error),
}

/// Who answered a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    /// The radio's name in the air configuration.
    pub radio: String,
    /// Serial number (emulated units: `EMU` + radio number).
    pub serial: String,
    /// Device kind, e.g. `usrp2` class `n210-emulated`.
    pub kind: String,
}

/// Encodes a probe request with a nonce that the answer echoes.
pub fn encode_probe(nonce: u32) -> Vec<u8> {
    let mut v = PROBE_MAGIC.to_vec();
    v.extend_from_slice(&nonce.to_be_bytes());
    v
}

/// Decodes a probe request, returning its nonce.
pub fn decode_probe(b: &[u8]) -> Result<u32, ProbeError> {
    match (b.get(..8), b.get(8..12)) {
        (Some(m), Some(n)) if m == PROBE_MAGIC && b.len() == 12 => {
            Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
        }
        _ => Err(ProbeError::NotProbe),
    }
}

/// Whether a datagram starts like a probe request (cheap test before VRT parsing).
pub fn is_probe(b: &[u8]) -> bool {
    b.get(..8) == Some(PROBE_MAGIC.as_slice())
}

/// Encodes a probe answer.
pub fn encode_answer(nonce: u32, a: &ProbeAnswer) -> Vec<u8> {
    let mut v = ANSWER_MAGIC.to_vec();
    v.extend_from_slice(&nonce.to_be_bytes());
    // Serialising a struct of strings cannot fail.
    v.extend_from_slice(&serde_json::to_vec(a).unwrap_or_default());
    v
}

/// Decodes a probe answer into (nonce, identity).
pub fn decode_answer(b: &[u8]) -> Result<(u32, ProbeAnswer), ProbeError> {
    match (b.get(..8), b.get(8..12), b.get(12..)) {
        (Some(m), Some(n), Some(rest)) if m == ANSWER_MAGIC => Ok((
            u32::from_be_bytes([n[0], n[1], n[2], n[3]]),
            serde_json::from_slice(rest)?,
        )),
        _ => Err(ProbeError::NotProbe),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_roundtrip() {
        assert_eq!(decode_probe(&encode_probe(42)).unwrap(), 42);
        let a = ProbeAnswer {
            radio: "pool".into(),
            serial: "EMU0".into(),
            kind: "n210-emulated".into(),
        };
        let (n, b) = decode_answer(&encode_answer(7, &a)).unwrap();
        assert_eq!((n, b), (7, a));
        assert!(decode_probe(b"FERRYPRB").is_err());
        assert!(decode_answer(b"FERRYPRA\0\0\0\x01{").is_err());
    }
}
