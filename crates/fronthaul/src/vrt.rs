//! VITA-49.0 (VRT) packets as Ferry's radios and hosts exchange them: IF data packets with a
//! stream ID, integer (TSI "other" = seconds of the radio sample clock) and fractional
//! (TSF "sample count" within that second) timestamps and an sc16 payload; IF context packets
//! carrying bandwidth, RF frequency, gain and sample rate.
//!
//! [`Packet`] is a checked view over bytes (all accessors are bounds-safe after
//! [`Packet::new_checked`]); [`DataRepr`] and [`ContextRepr`] are validated values that can be
//! parsed from and emitted into a packet.

use num_complex::Complex32;
use thiserror::Error;

/// A sample instant on a radio's sample clock: the number of samples since the clock's epoch
/// (the start of `ferry air`).
pub type SampleTime = u64;

/// Everything that can be wrong with bytes claiming to be a VRT packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// Fewer bytes than the header says, or than the mandatory fields need.
    #[error("truncated VRT packet: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    /// The datagram is longer or shorter than the header's size field.
    #[error("VRT size field says {declared} bytes but the datagram has {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    /// A packet type Ferry does not speak (extension packets, commands).
    #[error("unsupported VRT packet type {0}")]
    UnsupportedType(u8),
    /// Ferry needs TSI != none and TSF = sample count on data and context packets.
    #[error("unsupported timestamp mode TSI={tsi} TSF={tsf} (Ferry needs TSI=3, TSF=1)")]
    UnsupportedTimestamp { tsi: u8, tsf: u8 },
    /// The fractional sample count must be below the sample rate.
    #[error("fractional timestamp {frac} is not below the sample rate {rate}")]
    FracOutOfRange { frac: u64, rate: u32 },
    /// Sample time too large for a 32-bit seconds field, or a rate of zero.
    #[error("sample time {0} cannot be expressed as a VRT timestamp at this rate")]
    TimeOutOfRange(u64),
    /// A context indicator bit Ferry does not know (its field length is unknown to us).
    #[error("context indicator field has unsupported bits {0:#010x}")]
    UnknownContextFields(u32),
    /// The context payload is shorter or longer than its indicator bits require.
    #[error("context payload length {have} does not match indicator fields ({need} bytes)")]
    ContextLength { need: usize, have: usize },
    /// A value that cannot be represented on the wire (NaN, out of fixed-point range).
    #[error("value out of range for field {0}")]
    ValueOutOfRange(&'static str),
    /// Too many samples for one packet (16-bit size field).
    #[error("{0} samples do not fit in one VRT packet (max {MAX_SAMPLES})")]
    TooManySamples(usize),
    /// The output buffer is too small for the packet.
    #[error("output buffer of {have} bytes too small, need {need}")]
    BufferTooSmall { need: usize, have: usize },
}

/// VRT packet types (header bits 31..28).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// 0: IF data without stream ID.
    IfDataNoStreamId,
    /// 1: IF data with stream ID (Ferry's IQ packets).
    IfData,
    /// 2: extension data without stream ID.
    ExtDataNoStreamId,
    /// 3: extension data with stream ID.
    ExtData,
    /// 4: IF context (Ferry's context packets).
    IfContext,
    /// 5: extension context.
    ExtContext,
}

impl PacketType {
    /// Decodes the 4-bit type field.
    pub fn from_bits(bits: u8) -> Result<Self, WireError> {
        Ok(match bits {
            0 => Self::IfDataNoStreamId,
            1 => Self::IfData,
            2 => Self::ExtDataNoStreamId,
            3 => Self::ExtData,
            4 => Self::IfContext,
            5 => Self::ExtContext,
            other => return Err(WireError::UnsupportedType(other)),
        })
    }
    fn bits(self) -> u32 {
        match self {
            Self::IfDataNoStreamId => 0,
            Self::IfData => 1,
            Self::ExtDataNoStreamId => 2,
            Self::ExtData => 3,
            Self::IfContext => 4,
            Self::ExtContext => 5,
        }
    }
    fn has_stream_id(self) -> bool {
        !matches!(self, Self::IfDataNoStreamId | Self::ExtDataNoStreamId)
    }
    fn is_data(self) -> bool {
        matches!(
            self,
            Self::IfDataNoStreamId | Self::IfData | Self::ExtDataNoStreamId | Self::ExtData
        )
    }
}

/// Direction of a stream, as seen from the radio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Radio to host: received samples.
    Rx,
    /// Host to radio: samples to transmit.
    Tx,
}

/// A VRT stream identifier. Ferry's layout: bits 31..16 radio number, 15..8 channel,
/// 7..0 direction (0 = RX, radio to host; 1 = TX, host to radio).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StreamId(pub u32);

impl StreamId {
    /// The stream of `radio`'s channel 0 in direction `dir`.
    pub fn new(radio: u16, dir: Direction) -> Self {
        let d = match dir {
            Direction::Rx => 0,
            Direction::Tx => 1,
        };
        Self((u32::from(radio) << 16) | d)
    }
    /// The stream of `radio`'s channel `channel` (antenna) in direction `dir`.
    pub fn for_channel(radio: u16, channel: u8, dir: Direction) -> Self {
        Self(Self::new(radio, dir).0 | (u32::from(channel) << 8))
    }
    /// The channel (antenna) of the radio.
    pub fn channel(self) -> u8 {
        (self.0 >> 8) as u8
    }
    /// The radio number.
    pub fn radio(self) -> u16 {
        (self.0 >> 16) as u16
    }
    /// The direction, if the low byte is a known one.
    pub fn direction(self) -> Option<Direction> {
        match self.0 & 0xff {
            0 => Some(Direction::Rx),
            1 => Some(Direction::Tx),
            _ => None,
        }
    }
}

/// TSI = "other" (3): seconds of the radio sample clock since its epoch.
pub const TSI_OTHER: u8 = 3;
/// TSF = "sample count" (1): samples since the start of the current integer second.
pub const TSF_SAMPLE_COUNT: u8 = 1;
/// Largest sc16 sample count in one packet: 16-bit word count minus 4 header words.
pub const MAX_SAMPLES: usize = 0xffff - 4;
/// Bytes of Ferry's data packet header: header word, stream ID, TSI, TSF (2 words).
pub const DATA_HEADER_LEN: usize = 20;
/// Bytes one sc16 sample takes on the wire (Ferry sends no trailer).
pub const SAMPLE_BYTES: usize = 4;
/// IPv4 header (no options) plus UDP header around every fronthaul datagram.
pub const IPV4_UDP_OVERHEAD: usize = 20 + 8;
/// The fronthaul LAN's MTU unless configured otherwise (plain Ethernet).
pub const DEFAULT_MTU: usize = 1500;
/// Samples per data packet on a [`DEFAULT_MTU`] link: 363 (20 + 8 + 20 + 363 × 4 = 1500).
pub const DEFAULT_SAMPLES_PER_PACKET: usize = samples_per_packet_for_mtu(DEFAULT_MTU);

/// The most sc16 samples whose data packet, as one IPv4/UDP datagram, fits in `mtu` bytes
/// (never IP-fragmented): `(mtu − 28 − 20) / 4`, at least 1, at most [`MAX_SAMPLES`].
pub const fn samples_per_packet_for_mtu(mtu: usize) -> usize {
    let n = mtu.saturating_sub(IPV4_UDP_OVERHEAD + DATA_HEADER_LEN) / SAMPLE_BYTES;
    if n == 0 {
        1
    } else if n > MAX_SAMPLES {
        MAX_SAMPLES
    } else {
        n
    }
}

/// Size of the IPv4 datagram that carries a data packet of `samples` samples.
pub const fn ip_datagram_len(samples: usize) -> usize {
    IPV4_UDP_OVERHEAD + DATA_HEADER_LEN + SAMPLE_BYTES * samples
}

/// A VRT timestamp: integer seconds plus a sample count within the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp {
    /// Integer part (TSI): whole seconds of the sample clock.
    pub secs: u32,
    /// Fractional part (TSF): samples since the start of `secs`.
    pub frac: u64,
}

impl Timestamp {
    /// Splits a sample time into seconds and samples at integer rate `rate` (Hz).
    pub fn from_sample_time(t: SampleTime, rate: u32) -> Result<Self, WireError> {
        if rate == 0 {
            return Err(WireError::TimeOutOfRange(t));
        }
        let secs = u32::try_from(t / u64::from(rate)).map_err(|_| WireError::TimeOutOfRange(t))?;
        Ok(Self {
            secs,
            frac: t % u64::from(rate),
        })
    }
    /// Joins seconds and samples back into a sample time; the fraction must be below `rate`.
    pub fn to_sample_time(self, rate: u32) -> Result<SampleTime, WireError> {
        if self.frac >= u64::from(rate) {
            return Err(WireError::FracOutOfRange {
                frac: self.frac,
                rate,
            });
        }
        Ok(u64::from(self.secs) * u64::from(rate) + self.frac)
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some((u64::from(be32(b, at)?) << 32) | u64::from(be32(b, at + 4)?))
}

/// A checked read-only view of a VRT packet in a buffer (one UDP datagram).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps bytes without checking; accessors may then return garbage but never panic
    /// (they return `None` or zero where bytes are missing). Prefer [`Packet::new_checked`].
    pub fn new_unchecked(buffer: T) -> Self {
        Self { buffer }
    }

    /// Wraps bytes after checking that the header, the size field and the optional fields
    /// agree with the buffer's length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self { buffer };
        p.check_len()?;
        Ok(p)
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// Validates lengths: called by [`Packet::new_checked`].
    pub fn check_len(&self) -> Result<(), WireError> {
        let have = self.bytes().len();
        let header = be32(self.bytes(), 0).ok_or(WireError::Truncated { need: 4, have })?;
        let declared = ((header & 0xffff) as usize) * 4;
        if declared != have {
            return Err(WireError::LengthMismatch {
                declared,
                actual: have,
            });
        }
        let ty = PacketType::from_bits((header >> 28) as u8)?;
        let need = self.header_len_for(header, ty) + self.trailer_len_for(header, ty);
        if need > have {
            return Err(WireError::Truncated { need, have });
        }
        Ok(())
    }

    fn header_len_for(&self, header: u32, ty: PacketType) -> usize {
        let mut n = 4;
        if ty.has_stream_id() {
            n += 4;
        }
        if header & (1 << 27) != 0 {
            n += 8;
        }
        if (header >> 22) & 3 != 0 {
            n += 4;
        }
        if (header >> 20) & 3 != 0 {
            n += 8;
        }
        n
    }

    fn trailer_len_for(&self, header: u32, ty: PacketType) -> usize {
        // Bit 26 means "trailer present" only on data packets.
        if ty.is_data() && header & (1 << 26) != 0 {
            4
        } else {
            0
        }
    }

    /// The raw header word.
    pub fn header(&self) -> u32 {
        be32(self.bytes(), 0).unwrap_or(0)
    }
    /// Packet type.
    pub fn packet_type(&self) -> Result<PacketType, WireError> {
        PacketType::from_bits((self.header() >> 28) as u8)
    }
    /// Class ID present (C bit).
    pub fn has_class_id(&self) -> bool {
        self.header() & (1 << 27) != 0
    }
    /// Trailer present (T bit; data packets only).
    pub fn has_trailer(&self) -> bool {
        self.packet_type().map(|t| t.is_data()).unwrap_or(false) && self.header() & (1 << 26) != 0
    }
    /// Integer timestamp type (TSI).
    pub fn tsi(&self) -> u8 {
        ((self.header() >> 22) & 3) as u8
    }
    /// Fractional timestamp type (TSF).
    pub fn tsf(&self) -> u8 {
        ((self.header() >> 20) & 3) as u8
    }
    /// 4-bit packet count, modulo 16 per stream.
    pub fn packet_count(&self) -> u8 {
        ((self.header() >> 16) & 0xf) as u8
    }
    /// Packet size in 32-bit words, header included.
    pub fn size_words(&self) -> u16 {
        (self.header() & 0xffff) as u16
    }
    /// Stream identifier, if the type carries one.
    pub fn stream_id(&self) -> Option<StreamId> {
        if self.packet_type().ok()?.has_stream_id() {
            be32(self.bytes(), 4).map(StreamId)
        } else {
            None
        }
    }
    fn after_sid(&self) -> usize {
        let ty_sid = self
            .packet_type()
            .map(|t| t.has_stream_id())
            .unwrap_or(false);
        4 + if ty_sid { 4 } else { 0 } + if self.has_class_id() { 8 } else { 0 }
    }
    /// Integer timestamp, if TSI != none.
    pub fn integer_timestamp(&self) -> Option<u32> {
        if self.tsi() == 0 {
            return None;
        }
        be32(self.bytes(), self.after_sid())
    }
    /// Fractional timestamp, if TSF != none.
    pub fn fractional_timestamp(&self) -> Option<u64> {
        if self.tsf() == 0 {
            return None;
        }
        let at = self.after_sid() + if self.tsi() != 0 { 4 } else { 0 };
        be64(self.bytes(), at)
    }
    /// The payload between the header fields and the optional trailer (empty when the
    /// packet is inconsistent).
    pub fn payload(&self) -> &[u8] {
        let Ok(ty) = self.packet_type() else {
            return &[];
        };
        let h = self.header();
        let start = self.header_len_for(h, ty);
        let end = (self.size_words() as usize * 4).saturating_sub(self.trailer_len_for(h, ty));
        self.bytes().get(start..end).unwrap_or(&[])
    }
}

fn timestamp_of<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Timestamp, WireError> {
    let (tsi, tsf) = (p.tsi(), p.tsf());
    if tsi == 0 || tsf != TSF_SAMPLE_COUNT {
        return Err(WireError::UnsupportedTimestamp { tsi, tsf });
    }
    match (p.integer_timestamp(), p.fractional_timestamp()) {
        (Some(secs), Some(frac)) => Ok(Timestamp { secs, frac }),
        _ => Err(WireError::Truncated {
            need: p.after_sid() + 12,
            have: p.bytes().len(),
        }),
    }
}

fn header_word(ty: PacketType, trailer: bool, count: u8, words: usize) -> u32 {
    (ty.bits() << 28)
        | (u32::from(trailer) << 26)
        | (u32::from(TSI_OTHER) << 22)
        | (u32::from(TSF_SAMPLE_COUNT) << 20)
        | (u32::from(count & 0xf) << 16)
        | (words as u32 & 0xffff)
}

/// A validated IF data packet: one block of sc16 samples for one stream at one time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// Which radio and direction.
    pub stream_id: StreamId,
    /// 4-bit packet count.
    pub count: u8,
    /// Time of the first sample.
    pub timestamp: Timestamp,
    /// sc16 samples: each a big-endian 32-bit word, I in bits 31..16, Q in 15..0.
    pub payload: &'a [u8],
    /// End of burst (header bit 24, as UHD's VRT packer sets it for USRP2/N2x0): the
    /// host's transmission stops after this packet's samples; the silence that follows is
    /// not an underflow. A burst ends with a packet of no samples stamped at its end.
    pub end_of_burst: bool,
}

/// Header bit 24 of an IF data packet: end of burst (UHD's `eob` for USRP2/N2x0).
pub const EOB_BIT: u32 = 1 << 24;

/// Sets the end-of-burst bit of an emitted IF data packet in `packet` (its first word).
pub fn mark_end_of_burst(packet: &mut [u8]) {
    if let Some(w) = packet.get_mut(0..4) {
        let h = u32::from_be_bytes([w[0], w[1], w[2], w[3]]) | EOB_BIT;
        w.copy_from_slice(&h.to_be_bytes());
    }
}

impl<'a> DataRepr<'a> {
    /// Parses a datagram (one IF data packet with stream ID and timestamps). A trailer or
    /// class ID sent by a peer is accepted and ignored.
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Self, WireError> {
        let p = Packet::new_checked(bytes)?;
        let ty = p.packet_type()?;
        if ty != PacketType::IfData {
            return Err(WireError::UnsupportedType(ty.bits() as u8));
        }
        let timestamp = timestamp_of(&p)?;
        let stream_id = p.stream_id().ok_or(WireError::Truncated {
            need: 8,
            have: bytes.len(),
        })?;
        Ok(Self {
            stream_id,
            count: p.packet_count(),
            timestamp,
            payload: p.payload_static(),
            end_of_burst: p.header() & EOB_BIT != 0,
        })
    }

    /// Number of samples in the payload.
    pub fn num_samples(&self) -> usize {
        self.payload.len() / 4
    }

    /// Iterates the samples as (I, Q) pairs.
    pub fn samples_i16(&self) -> impl Iterator<Item = (i16, i16)> + 'a {
        self.payload.chunks_exact(4).map(|c| {
            (
                i16::from_be_bytes([c[0], c[1]]),
                i16::from_be_bytes([c[2], c[3]]),
            )
        })
    }

    /// Appends the samples as complex floats scaled so that full scale (32768) is 1.0.
    pub fn samples_cf32_into(&self, out: &mut Vec<Complex32>) {
        out.extend(self.samples_i16().map(|(i, q)| sc16_to_cf32(i, q)));
    }

    /// Total length of the emitted packet.
    pub fn buffer_len(&self) -> usize {
        DATA_HEADER_LEN + self.payload.len()
    }

    /// Writes the packet into `out` (exactly [`DataRepr::buffer_len`] bytes are used).
    pub fn emit(&self, out: &mut [u8]) -> Result<usize, WireError> {
        let n = self.num_samples();
        if n > MAX_SAMPLES || self.payload.len() % 4 != 0 {
            return Err(WireError::TooManySamples(n));
        }
        let len = self.buffer_len();
        let have = out.len();
        let dst = out
            .get_mut(..len)
            .ok_or(WireError::BufferTooSmall { need: len, have })?;
        write_data_header(
            dst,
            self.stream_id,
            self.count,
            self.timestamp,
            self.num_samples(),
        );
        dst[DATA_HEADER_LEN..].copy_from_slice(self.payload);
        if self.end_of_burst {
            mark_end_of_burst(dst);
        }
        Ok(len)
    }
}

impl<'a> Packet<&'a [u8]> {
    /// Payload with the buffer's lifetime (for zero-copy [`DataRepr`]).
    pub fn payload_static(&self) -> &'a [u8] {
        let Ok(ty) = self.packet_type() else {
            return &[];
        };
        let h = self.header();
        let start = self.header_len_for(h, ty);
        let end = (self.size_words() as usize * 4).saturating_sub(self.trailer_len_for(h, ty));
        self.buffer.get(start..end).unwrap_or(&[])
    }
}

fn write_data_header(dst: &mut [u8], sid: StreamId, count: u8, ts: Timestamp, samples: usize) {
    let words = DATA_HEADER_LEN / 4 + samples;
    let h = header_word(PacketType::IfData, false, count, words);
    dst[0..4].copy_from_slice(&h.to_be_bytes());
    dst[4..8].copy_from_slice(&sid.0.to_be_bytes());
    dst[8..12].copy_from_slice(&ts.secs.to_be_bytes());
    dst[12..20].copy_from_slice(&ts.frac.to_be_bytes());
}

/// Converts one sc16 sample to a complex float (full scale 32768 → 1.0).
#[inline]
pub fn sc16_to_cf32(i: i16, q: i16) -> Complex32 {
    const S: f32 = 1.0 / 32768.0;
    Complex32::new(f32::from(i) * S, f32::from(q) * S)
}

/// Quantises one float (full scale 1.0) to int16, rounding half away from zero and
/// saturating; returns whether it clipped. NaN becomes 0. Written without `f32::round`
/// (a libm call on baseline x86-64, 10x the cost) and without Rust's saturating float cast
/// (its NaN and range checks keep the loop from vectorising): the value is clamped in
/// floating point first, so the unchecked conversion is always in range.
#[inline]
fn quantise(x: f32) -> (i16, bool) {
    let r = x * 32768.0 + 0.5f32.copysign(x);
    // Truncation of r leaves [-32768, 32767] exactly when r is in (-32769, 32768).
    let clipped = r >= 32768.0 || r <= -32769.0;
    let c = if r.is_nan() {
        0.0
    } else {
        r.clamp(-32768.0, 32767.0)
    };
    // SAFETY: c is finite and within i32 (clamped above; NaN replaced by 0).
    let v = unsafe { c.to_int_unchecked::<i32>() };
    (v as i16, clipped)
}

/// Converts a complex float to sc16, rounding and saturating (returns whether it clipped).
#[inline]
pub fn cf32_to_sc16(c: Complex32) -> ((i16, i16), bool) {
    let (i, ci) = quantise(c.re);
    let (q, cq) = quantise(c.im);
    ((i, q), ci || cq)
}

/// Emits a complete IF data packet from complex floats, appending to `out` (no intermediate
/// sc16 buffer). Returns how many samples clipped.
pub fn emit_data_cf32(
    sid: StreamId,
    count: u8,
    ts: Timestamp,
    samples: &[Complex32],
    out: &mut Vec<u8>,
) -> Result<usize, WireError> {
    if samples.len() > MAX_SAMPLES {
        return Err(WireError::TooManySamples(samples.len()));
    }
    let base = out.len();
    out.resize(base + DATA_HEADER_LEN + 4 * samples.len(), 0);
    let (head, body) = out[base..].split_at_mut(DATA_HEADER_LEN);
    write_data_header(head, sid, count, ts, samples.len());
    Ok(quantise_into(samples, body))
}

/// Writes `samples` as big-endian sc16 words into `dst` (4 bytes each); returns how many
/// clipped. On x86-64 four samples at a time with SSE2 (part of the baseline, so no
/// detection): the air quantises every sample it sends, ~123 M/s for four 20 MHz radios.
fn quantise_into(samples: &[Complex32], dst: &mut [u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let whole = samples.len() / 4 * 4;
        // SAFETY: SSE2 is always present on x86-64; the slices hold `whole` samples and
        // `4 * whole` bytes (checked by the caller's sizing, asserted here).
        assert!(dst.len() >= 4 * samples.len());
        let mut clipped = unsafe { quantise_sse2(&samples[..whole], &mut dst[..4 * whole]) };
        clipped += quantise_scalar(&samples[whole..], &mut dst[4 * whole..]);
        clipped
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        quantise_scalar(samples, dst)
    }
}

fn quantise_scalar(samples: &[Complex32], dst: &mut [u8]) -> usize {
    let mut clipped = 0;
    for (d, &c) in dst.chunks_exact_mut(4).zip(samples) {
        let ((i, q), clip) = cf32_to_sc16(c);
        clipped += usize::from(clip);
        let word = (u32::from(i as u16) << 16) | u32::from(q as u16);
        d.copy_from_slice(&word.to_be_bytes());
    }
    clipped
}

/// [`quantise`] for four samples per step: NaN to 0, ×32768, round half away from zero,
/// clamp, truncate, pack to i16, swap to big-endian; clip flags from the same compares.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
unsafe fn quantise_sse2(samples: &[Complex32], dst: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    let scale = _mm_set1_ps(32768.0);
    let half = _mm_set1_ps(0.5);
    let sign = _mm_set1_ps(-0.0);
    let hi = _mm_set1_ps(32767.0);
    let lo = _mm_set1_ps(-32768.0);
    let clip_hi = _mm_set1_ps(32768.0);
    let clip_lo = _mm_set1_ps(-32769.0);
    let mut clipped = 0usize;
    let src = samples.as_ptr() as *const f32;
    let step = |v: __m128| -> (__m128i, i32) {
        let v = _mm_and_ps(v, _mm_cmpord_ps(v, v)); // NaN → 0
        let x = _mm_mul_ps(v, scale);
        let r = _mm_add_ps(x, _mm_or_ps(half, _mm_and_ps(x, sign)));
        let clip = _mm_or_ps(_mm_cmpge_ps(r, clip_hi), _mm_cmple_ps(r, clip_lo));
        let c = _mm_max_ps(_mm_min_ps(r, hi), lo);
        (_mm_cvttps_epi32(c), _mm_movemask_ps(clip))
    };
    for k in 0..samples.len() / 4 {
        // Complex32 is repr(C) {re, im}: 4 samples are 8 consecutive floats.
        let a = _mm_loadu_ps(src.add(8 * k));
        let b = _mm_loadu_ps(src.add(8 * k + 4));
        let (ia, ma) = step(a);
        let (ib, mb) = step(b);
        let packed = _mm_packs_epi32(ia, ib); // I0 Q0 I1 Q1 I2 Q2 I3 Q3, in range already
        let be = _mm_or_si128(_mm_slli_epi16(packed, 8), _mm_srli_epi16(packed, 8));
        _mm_storeu_si128(dst.as_mut_ptr().add(16 * k) as *mut __m128i, be);
        // A sample clipped when its I or its Q did: bits (0|1) and (2|3) of each mask.
        let m = (ma | (mb << 4)) as u32;
        clipped += ((m | (m >> 1)) & 0x55).count_ones() as usize;
    }
    clipped
}

/// Emits a complete IF data packet from (I, Q) pairs, appending to `out`.
pub fn emit_data_i16(
    sid: StreamId,
    count: u8,
    ts: Timestamp,
    samples: &[(i16, i16)],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    if samples.len() > MAX_SAMPLES {
        return Err(WireError::TooManySamples(samples.len()));
    }
    let base = out.len();
    out.resize(base + DATA_HEADER_LEN, 0);
    write_data_header(&mut out[base..], sid, count, ts, samples.len());
    out.reserve(samples.len() * 4);
    for &(i, q) in samples {
        out.extend_from_slice(&i.to_be_bytes());
        out.extend_from_slice(&q.to_be_bytes());
    }
    Ok(())
}

/// Context indicator field 0 bits Ferry uses.
pub mod cif0 {
    /// Context field change indicator.
    pub const CHANGE: u32 = 1 << 31;
    /// Bandwidth (64-bit, Hz, radix 20).
    pub const BANDWIDTH: u32 = 1 << 29;
    /// RF reference frequency (64-bit, Hz, radix 20).
    pub const RF_FREQ: u32 = 1 << 27;
    /// Gain (32-bit: stage 2 in 31..16, stage 1 in 15..0, dB radix 7).
    pub const GAIN: u32 = 1 << 23;
    /// Sample rate (64-bit, Hz, radix 20).
    pub const SAMPLE_RATE: u32 = 1 << 21;
    /// All the bits Ferry understands.
    pub const KNOWN: u32 = CHANGE | BANDWIDTH | RF_FREQ | GAIN | SAMPLE_RATE;
}

/// A validated IF context packet describing a stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContextRepr {
    /// Stream the context describes (same ID as its data stream).
    pub stream_id: StreamId,
    /// 4-bit packet count of the context stream.
    pub count: u8,
    /// Time at which the context holds.
    pub timestamp: Timestamp,
    /// Whether any field changed since the previous context packet.
    pub changed: bool,
    /// Analog bandwidth in Hz.
    pub bandwidth_hz: Option<f64>,
    /// RF centre frequency in Hz.
    pub rf_freq_hz: Option<f64>,
    /// Gain in dB (stage 1; stage 2 is sent as zero).
    pub gain_db: Option<f64>,
    /// Sample rate in Hz.
    pub sample_rate_hz: Option<f64>,
}

fn fixed64(v: f64, field: &'static str) -> Result<u64, WireError> {
    let x = (v * (1u64 << 20) as f64).round();
    if !x.is_finite() || x < i64::MIN as f64 || x >= i64::MAX as f64 {
        return Err(WireError::ValueOutOfRange(field));
    }
    Ok(x as i64 as u64)
}

fn unfixed64(v: u64) -> f64 {
    (v as i64) as f64 / (1u64 << 20) as f64
}

fn fixed16(v: f64, field: &'static str) -> Result<u16, WireError> {
    let x = (v * 128.0).round();
    if !x.is_finite() || x < i16::MIN as f64 || x > i16::MAX as f64 {
        return Err(WireError::ValueOutOfRange(field));
    }
    Ok(x as i16 as u16)
}

impl ContextRepr {
    fn cif0(&self) -> u32 {
        let mut c = 0;
        if self.changed {
            c |= cif0::CHANGE;
        }
        if self.bandwidth_hz.is_some() {
            c |= cif0::BANDWIDTH;
        }
        if self.rf_freq_hz.is_some() {
            c |= cif0::RF_FREQ;
        }
        if self.gain_db.is_some() {
            c |= cif0::GAIN;
        }
        if self.sample_rate_hz.is_some() {
            c |= cif0::SAMPLE_RATE;
        }
        c
    }

    fn fields_len(cif: u32) -> usize {
        let mut n = 0;
        for (bit, len) in [
            (cif0::BANDWIDTH, 8),
            (cif0::RF_FREQ, 8),
            (cif0::GAIN, 4),
            (cif0::SAMPLE_RATE, 8),
        ] {
            if cif & bit != 0 {
                n += len;
            }
        }
        n
    }

    /// Parses an IF context packet.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let p = Packet::new_checked(bytes)?;
        let ty = p.packet_type()?;
        if ty != PacketType::IfContext {
            return Err(WireError::UnsupportedType(ty.bits() as u8));
        }
        let timestamp = timestamp_of(&p)?;
        let stream_id = p.stream_id().ok_or(WireError::Truncated {
            need: 8,
            have: bytes.len(),
        })?;
        let payload = p.payload();
        let have = payload.len();
        let cif = be32(payload, 0).ok_or(WireError::ContextLength { need: 4, have })?;
        if cif & !cif0::KNOWN != 0 {
            return Err(WireError::UnknownContextFields(cif & !cif0::KNOWN));
        }
        let need = 4 + Self::fields_len(cif);
        if need != have {
            return Err(WireError::ContextLength { need, have });
        }
        // Fields follow in descending bit order (VITA-49.0 7.1.5).
        let mut at = 4;
        let mut take64 = |bit: u32| -> Option<f64> {
            if cif & bit == 0 {
                return None;
            }
            let v = be64(payload, at).map(unfixed64);
            at += 8;
            v
        };
        let bandwidth_hz = take64(cif0::BANDWIDTH);
        let rf_freq_hz = take64(cif0::RF_FREQ);
        let gain_db = if cif & cif0::GAIN != 0 {
            let g = be32(payload, at).map(|w| f64::from((w & 0xffff) as u16 as i16) / 128.0);
            at += 4;
            g
        } else {
            None
        };
        let sample_rate_hz = if cif & cif0::SAMPLE_RATE != 0 {
            be64(payload, at).map(unfixed64)
        } else {
            None
        };
        Ok(Self {
            stream_id,
            count: p.packet_count(),
            timestamp,
            changed: cif & cif0::CHANGE != 0,
            bandwidth_hz,
            rf_freq_hz,
            gain_db,
            sample_rate_hz,
        })
    }

    /// Appends the emitted packet to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let cif = self.cif0();
        let len = 20 + 4 + Self::fields_len(cif);
        let mut fields = Vec::with_capacity(len);
        fields.extend_from_slice(
            &header_word(PacketType::IfContext, false, self.count, len / 4).to_be_bytes(),
        );
        fields.extend_from_slice(&self.stream_id.0.to_be_bytes());
        fields.extend_from_slice(&self.timestamp.secs.to_be_bytes());
        fields.extend_from_slice(&self.timestamp.frac.to_be_bytes());
        fields.extend_from_slice(&cif.to_be_bytes());
        if let Some(v) = self.bandwidth_hz {
            fields.extend_from_slice(&fixed64(v, "bandwidth")?.to_be_bytes());
        }
        if let Some(v) = self.rf_freq_hz {
            fields.extend_from_slice(&fixed64(v, "rf_freq")?.to_be_bytes());
        }
        if let Some(v) = self.gain_db {
            fields.extend_from_slice(&u32::from(fixed16(v, "gain")?).to_be_bytes());
        }
        if let Some(v) = self.sample_rate_hz {
            fields.extend_from_slice(&fixed64(v, "sample_rate")?.to_be_bytes());
        }
        out.extend_from_slice(&fields);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_roundtrip_and_layout() {
        let samples = [(1i16, -2i16), (0x1234, -0x1235), (i16::MIN, i16::MAX)];
        let sid = StreamId::new(3, Direction::Tx);
        let ts = Timestamp::from_sample_time(1_920_000 * 7 + 5, 1_920_000).unwrap();
        let mut out = Vec::new();
        emit_data_i16(sid, 9, ts, &samples, &mut out).unwrap();
        assert_eq!(out.len(), 20 + 12);
        // header: type 1, TSI 3, TSF 1, count 9, 8 words
        assert_eq!(&out[0..4], &[0x10, 0xd9, 0x00, 0x08]);
        assert_eq!(&out[4..8], &[0x00, 0x03, 0x00, 0x01]);
        assert_eq!(&out[8..12], &7u32.to_be_bytes());
        assert_eq!(&out[12..20], &5u64.to_be_bytes());
        assert_eq!(&out[24..28], &[0x12, 0x34, 0xed, 0xcb]);
        let r = DataRepr::parse_bytes(&out).unwrap();
        assert_eq!(r.stream_id, sid);
        assert_eq!(r.count, 9);
        assert_eq!(
            r.timestamp.to_sample_time(1_920_000).unwrap(),
            1_920_000 * 7 + 5
        );
        assert_eq!(r.samples_i16().collect::<Vec<_>>(), samples);
        let mut again = vec![0u8; r.buffer_len()];
        r.emit(&mut again).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn block_quantiser_matches_the_scalar_one() {
        let mut xs: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            1.000_01,
            -1.000_02,
            2.0,
            -2.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            0.5 / 32768.0,
            -0.5 / 32768.0,
            32767.5 / 32768.0,
            -32768.5 / 32768.0,
            -32768.49 / 32768.0,
        ];
        xs.extend((-70_000..70_000).step_by(7).map(|k| k as f32 / 65_536.0));
        let samples: Vec<Complex32> = xs
            .iter()
            .zip(xs.iter().rev())
            .map(|(&a, &b)| Complex32::new(a, b))
            .collect();
        for n in [0, 1, 3, 4, 5, 363, samples.len()] {
            let s = &samples[..n];
            let mut fast = vec![0u8; 4 * n];
            let mut slow = vec![0u8; 4 * n];
            assert_eq!(
                quantise_into(s, &mut fast),
                quantise_scalar(s, &mut slow),
                "{n}"
            );
            assert_eq!(fast, slow, "{n}");
        }
        let clipping = [
            Complex32::new(2.0, 0.0),
            Complex32::new(0.0, -2.0),
            Complex32::new(2.0, 2.0),
            Complex32::new(0.1, 0.1),
        ];
        assert_eq!(quantise_into(&clipping, &mut [0u8; 16]), 3);
    }

    #[test]
    fn quantise_matches_round_half_away_and_saturation() {
        // The reference: round half away from zero, saturate, NaN to 0.
        let reference = |x: f32| -> (i16, bool) {
            if x.is_nan() {
                return (0, false);
            }
            let v = (f64::from(x) * 32768.0).round();
            let c = v.clamp(-32768.0, 32767.0);
            (c as i16, c != v)
        };
        let mut xs: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.999_99,
            -0.999_99,
            1.000_01,
            -1.000_02,
            2.0,
            -2.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MAX,
            f32::MIN,
            0.5 / 32768.0,
            -0.5 / 32768.0,
            1.5 / 32768.0,
            -1.5 / 32768.0,
            32767.5 / 32768.0,
            -32768.5 / 32768.0,
            -32768.49 / 32768.0,
        ];
        xs.extend((-70_000..70_000).map(|k| k as f32 / 65_536.0));
        for x in xs {
            assert_eq!(quantise(x), reference(x), "{x}");
        }
    }

    #[test]
    fn cf32_roundtrip_is_exact_for_integers() {
        for v in [-32768i16, -1, 0, 1, 12345, 32767] {
            let c = sc16_to_cf32(v, v);
            assert_eq!(cf32_to_sc16(c), ((v, v), false));
        }
        assert_eq!(
            cf32_to_sc16(Complex32::new(2.0, -2.0)),
            ((i16::MAX, i16::MIN), true)
        );
    }

    #[test]
    fn end_of_burst_is_header_bit_24_and_survives_a_round_trip() {
        let sid = StreamId::new(3, Direction::Tx);
        let ts = Timestamp::from_sample_time(1000, 1_920_000).unwrap();
        let mut out = Vec::new();
        emit_data_i16(sid, 5, ts, &[(1, 2), (3, 4)], &mut out).unwrap();
        let d = DataRepr::parse_bytes(&out).unwrap();
        assert!(!d.end_of_burst);
        mark_end_of_burst(&mut out);
        assert_eq!(
            u32::from_be_bytes([out[0], out[1], out[2], out[3]]) & (1 << 24),
            1 << 24
        );
        let d = DataRepr::parse_bytes(&out).unwrap();
        assert!(d.end_of_burst);
        assert_eq!((d.count, d.num_samples()), (5, 2), "nothing else changed");
        let mut again = vec![0; d.buffer_len()];
        d.emit(&mut again).unwrap();
        assert_eq!(again, out);
        // An empty packet marks a burst's end.
        let mut e = Vec::new();
        emit_data_i16(sid, 6, ts, &[], &mut e).unwrap();
        mark_end_of_burst(&mut e);
        let d = DataRepr::parse_bytes(&e).unwrap();
        assert!(d.end_of_burst && d.num_samples() == 0);
    }

    #[test]
    fn trailer_and_class_id_from_peer_are_skipped() {
        // type 1, C=1, T=1, TSI 3, TSF 1, size: 1+1+2+1+2+1 sample+1 trailer = 9 words
        let mut b = Vec::new();
        b.extend_from_slice(&(0x1cd0_0009u32).to_be_bytes());
        b.extend_from_slice(&0x0001_0000u32.to_be_bytes());
        b.extend_from_slice(&[0xaa; 8]);
        b.extend_from_slice(&1u32.to_be_bytes());
        b.extend_from_slice(&2u64.to_be_bytes());
        b.extend_from_slice(&[0, 7, 0, 8]);
        b.extend_from_slice(&[0xff; 4]);
        let r = DataRepr::parse_bytes(&b).unwrap();
        assert_eq!(r.samples_i16().collect::<Vec<_>>(), vec![(7, 8)]);
        assert_eq!(r.timestamp, Timestamp { secs: 1, frac: 2 });
    }

    #[test]
    fn malformed_is_error() {
        assert!(matches!(
            DataRepr::parse_bytes(&[]),
            Err(WireError::Truncated { .. })
        ));
        assert!(matches!(
            DataRepr::parse_bytes(&[0x10, 0xd0, 0, 9, 0, 0, 0, 0]),
            Err(WireError::LengthMismatch { .. })
        ));
        // size says 2 words but data needs 5
        assert!(matches!(
            DataRepr::parse_bytes(&[0x10, 0xd0, 0, 2, 0, 0, 0, 0]),
            Err(WireError::Truncated { .. })
        ));
        // no timestamps
        assert!(matches!(
            DataRepr::parse_bytes(&[0x10, 0x00, 0, 2, 0, 0, 0, 0]),
            Err(WireError::UnsupportedTimestamp { .. })
        ));
        assert!(matches!(
            DataRepr::parse_bytes(&[0xf0, 0x00, 0, 1]),
            Err(WireError::UnsupportedType(15))
        ));
        let ts = Timestamp { secs: 0, frac: 10 };
        assert!(ts.to_sample_time(10).is_err());
        assert!(Timestamp::from_sample_time(u64::MAX, 1).is_err());
    }

    #[test]
    fn context_roundtrip() {
        let c = ContextRepr {
            stream_id: StreamId::new(1, Direction::Rx),
            count: 2,
            timestamp: Timestamp { secs: 3, frac: 4 },
            changed: true,
            bandwidth_hz: Some(1.4e6),
            rf_freq_hz: Some(1.9e9),
            gain_db: Some(20.5),
            sample_rate_hz: Some(1.92e6),
        };
        let mut out = Vec::new();
        c.emit(&mut out).unwrap();
        assert_eq!(out.len(), 24 + 28);
        let back = ContextRepr::parse_bytes(&out).unwrap();
        assert_eq!(back, c);
        let bad = ContextRepr {
            gain_db: Some(f64::NAN),
            ..c
        };
        assert!(bad.emit(&mut Vec::new()).is_err());
    }

    #[test]
    fn default_packets_fit_a_1500_byte_mtu() {
        assert_eq!(DEFAULT_SAMPLES_PER_PACKET, 363);
        // The emitted buffer is the UDP payload: with IP and UDP headers it is the MTU.
        let mut out = Vec::new();
        let samples = vec![(1i16, -1i16); DEFAULT_SAMPLES_PER_PACKET];
        emit_data_i16(
            StreamId::new(1, Direction::Rx),
            0,
            Timestamp { secs: 0, frac: 0 },
            &samples,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len() + IPV4_UDP_OVERHEAD, 1500);
        assert_eq!(ip_datagram_len(DEFAULT_SAMPLES_PER_PACKET), 1500);
        assert!(ip_datagram_len(364) > DEFAULT_MTU, "364 samples fragment");
        // Jumbo frames and silly values.
        assert_eq!(samples_per_packet_for_mtu(9000), (9000 - 48) / 4);
        assert_eq!(samples_per_packet_for_mtu(10), 1);
        assert_eq!(samples_per_packet_for_mtu(usize::MAX), MAX_SAMPLES);
    }
}
