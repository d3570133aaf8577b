//! The cyclic redundancy checks of TS 36.212 §5.1.1 (CRC24A, CRC24B, CRC16, CRC8), on
//! bytes and on bit vectors, table-driven, plus bit packing helpers.
//!
//! All four are plain MSB-first CRCs with a zero initial register and no final XOR, so the
//! parity bits appended after the data make the CRC of the whole sequence zero.

/// One CRC of §5.1.1: generator polynomial (without the leading D^L term) and length L.
#[derive(Debug, Clone)]
pub struct Crc {
    poly: u32,
    len: u32,
    table: [u32; 256],
}

/// gCRC24A(D) = D^24 + D^23 + D^18 + D^17 + D^14 + D^11 + D^10 + D^7 + D^6 + D^5 + D^4 + D^3 + D + 1
/// (transport blocks).
pub static CRC24A: Crc = Crc::new(0x86_4CFB, 24);
/// gCRC24B(D) = D^24 + D^23 + D^6 + D^5 + D + 1 (code blocks after segmentation).
pub static CRC24B: Crc = Crc::new(0x80_0063, 24);
/// gCRC16(D) = D^16 + D^12 + D^5 + 1.
pub static CRC16: Crc = Crc::new(0x1021, 16);
/// gCRC8(D) = D^8 + D^7 + D^4 + D^3 + D + 1.
pub static CRC8: Crc = Crc::new(0x9B, 8);

impl Crc {
    /// Builds the CRC and its byte table at compile time. `len` must be 8..=32.
    pub const fn new(poly: u32, len: u32) -> Self {
        assert!(len >= 8 && len <= 32);
        let mask = mask(len);
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut r = (i as u32) << (len - 8);
            let mut b = 0;
            while b < 8 {
                let top = (r >> (len - 1)) & 1;
                r = (r << 1) & mask;
                if top == 1 {
                    r ^= poly;
                }
                b += 1;
            }
            table[i] = r;
            i += 1;
        }
        Crc { poly, len, table }
    }

    /// Number of parity bits L.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a CRC has parity bits (keeps clippy's `len` convention happy).
    pub fn is_empty(&self) -> bool {
        false
    }

    #[inline]
    fn byte_step(&self, r: u32, byte: u8) -> u32 {
        let idx = ((r >> (self.len - 8)) ^ u32::from(byte)) & 0xFF;
        ((r << 8) ^ self.table[idx as usize]) & mask(self.len)
    }

    #[inline]
    fn bit_step(&self, r: u32, bit: u8) -> u32 {
        let top = ((r >> (self.len - 1)) ^ u32::from(bit & 1)) & 1;
        let r = (r << 1) & mask(self.len);
        if top == 1 {
            r ^ self.poly
        } else {
            r
        }
    }

    /// CRC of a byte sequence (MSB of each byte first).
    pub fn bytes(&self, data: &[u8]) -> u32 {
        data.iter().fold(0, |r, &b| self.byte_step(r, b))
    }

    /// CRC of a bit sequence (`u8` 0/1 values, first bit first; only bit 0 of each is used).
    pub fn bits(&self, bits: &[u8]) -> u32 {
        // Leading remainder bitwise, then whole bytes through the table: with a zero initial
        // register the bit order is all that matters.
        let head = bits.len() % 8;
        let mut r = bits[..head].iter().fold(0, |r, &b| self.bit_step(r, b));
        for chunk in bits[head..].chunks_exact(8) {
            r = self.byte_step(r, pack8(chunk));
        }
        r
    }

    /// Appends the L parity bits of `bits` (as 0/1 values).
    pub fn attach_bits(&self, bits: &mut Vec<u8>) {
        let p = self.bits(bits);
        bits.extend((0..self.len).rev().map(|i| (p >> i & 1) as u8));
    }

    /// True when `bits` (data followed by L parity bits) has a zero syndrome.
    pub fn check_bits(&self, bits: &[u8]) -> bool {
        bits.len() >= self.len() && self.bits(bits) == 0
    }

    /// Appends the L/8 parity bytes of `data` (L is a multiple of 8 for every LTE CRC).
    pub fn attach_bytes(&self, data: &mut Vec<u8>) {
        let p = self.bytes(data);
        data.extend((0..self.len / 8).rev().map(|i| (p >> (8 * i)) as u8));
    }

    /// True when `data` (bytes followed by the L/8 parity bytes) has a zero syndrome.
    pub fn check_bytes(&self, data: &[u8]) -> bool {
        data.len() >= self.len() / 8 && self.bytes(data) == 0
    }
}

const fn mask(len: u32) -> u32 {
    if len == 32 {
        u32::MAX
    } else {
        (1 << len) - 1
    }
}

/// Packs 8 bits (0/1, first = MSB) into a byte with one multiply: byte j's bit 0 lands at
/// bit 63 − j of the product, and no two partial products collide.
#[inline]
pub fn pack8(bits: &[u8]) -> u8 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bits[..8]);
    let x = u64::from_le_bytes(a) & 0x0101_0101_0101_0101;
    (x.wrapping_mul(0x8040_2010_0804_0201) >> 56) as u8
}

/// Packs bits (0/1, MSB first) into bytes; a final partial byte is zero-padded at the end.
pub fn pack_bits(bits: &[u8], out: &mut Vec<u8>) {
    let mut chunks = bits.chunks_exact(8);
    for c in &mut chunks {
        out.push(pack8(c));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let b = rest
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &v)| acc | ((v & 1) << (7 - i)));
        out.push(b);
    }
}

/// Unpacks bytes into bits (0/1, MSB first), appending to `out`.
pub fn unpack_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() * 8);
    for &b in bytes {
        out.extend((0..8).rev().map(|i| (b >> i) & 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECK: &[u8] = b"123456789";

    /// The reveng catalogue's check values for the LTE CRCs (init 0, no reflection, no xorout).
    #[test]
    fn catalogue_check_values() {
        assert_eq!(CRC24A.bytes(CHECK), 0xCD_E703); // CRC-24/LTE-A
        assert_eq!(CRC24B.bytes(CHECK), 0x23_EF52); // CRC-24/LTE-B
        assert_eq!(CRC16.bytes(CHECK), 0x31C3); // CRC-16/XMODEM, same polynomial and init
        assert_eq!(CRC8.bytes(CHECK), 0xEA); // CRC-8/LTE
    }

    /// Plain shift-register transcription of §5.1.1 as a reference.
    fn reference(poly: u32, len: u32, bits: &[u8]) -> u32 {
        let mut r = 0u32;
        for &b in bits {
            let fb = ((r >> (len - 1)) & 1) ^ u32::from(b);
            r = (r << 1) & ((1u64 << len) - 1) as u32;
            if fb == 1 {
                r ^= poly;
            }
        }
        r
    }

    #[test]
    fn bit_path_equals_byte_path_and_reference() {
        let mut bits = Vec::new();
        unpack_bytes(CHECK, &mut bits);
        for crc in [&CRC24A, &CRC24B, &CRC16, &CRC8] {
            assert_eq!(crc.bits(&bits), crc.bytes(CHECK));
            // Lengths that are not a multiple of 8 (filler bits make code blocks like that).
            for cut in [1usize, 5, 13, 37, 71] {
                let b = &bits[..cut];
                assert_eq!(crc.bits(b), reference(crc.poly, crc.len, b), "cut {cut}");
            }
        }
    }

    #[test]
    fn leading_zero_bits_do_not_change_the_crc() {
        // Why filler bits (zeros before the data) are harmless to CRC24B.
        let mut bits = Vec::new();
        unpack_bytes(b"ferry", &mut bits);
        let mut padded = vec![0u8; 11];
        padded.extend_from_slice(&bits);
        assert_eq!(CRC24B.bits(&bits), CRC24B.bits(&padded));
    }

    #[test]
    fn attach_then_check_and_detect_single_errors() {
        for crc in [&CRC24A, &CRC24B, &CRC16, &CRC8] {
            let mut bytes = b"live migration".to_vec();
            crc.attach_bytes(&mut bytes);
            assert!(crc.check_bytes(&bytes));
            let mut bits = Vec::new();
            unpack_bytes(&bytes, &mut bits);
            assert!(crc.check_bits(&bits));
            let mut b2 = Vec::new();
            unpack_bytes(b"live migration", &mut b2);
            crc.attach_bits(&mut b2);
            assert_eq!(b2, bits);
            for i in 0..bits.len() {
                bits[i] ^= 1;
                assert!(!crc.check_bits(&bits), "flip {i} undetected");
                bits[i] ^= 1;
            }
        }
        assert!(!CRC24A.check_bits(&[0; 5]));
    }

    #[test]
    fn pack_unpack_round_trip() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut bits = Vec::new();
        unpack_bytes(&bytes, &mut bits);
        let mut back = Vec::new();
        pack_bits(&bits, &mut back);
        assert_eq!(back, bytes);
        let mut odd = Vec::new();
        pack_bits(&[1, 0, 1], &mut odd);
        assert_eq!(odd, vec![0b1010_0000]);
    }
}
