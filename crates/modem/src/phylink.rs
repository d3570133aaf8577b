//! The link's waveform, fixed by `Control`: which subframes carry what, TB sizes, encoding
//! and decoding of one 1 ms subframe, CFO (de)rotation on absolute radio time. Pure.
//!
//! Antennas: `numAntennaTX` is the link's TX port count (every node of the link transmits
//! with it, as a cell's CRS port count is cell-wide), `numAntennaRX` this node's receive
//! antennas. One TX port and one RX antenna is the single-antenna PHY
//! ([`ferry_phy::SubframeEncoder`] / [`ferry_phy::SubframeDecoder`]); anything else goes
//! through [`ferry_phy::mimo`] (SFBC with `trans_mode` 2, MRC over two RX antennas).

use ferry_migrate::control::{CpType, Duplex as CDuplex, Modulation as CMod};
use ferry_migrate::Control;
use ferry_phy::mimo::{MimoDecoder, MimoEncoder, TxScheme};
use ferry_phy::subframe::CONTROL_BYTES;
use ferry_phy::{
    CellId, ChannelQuality, CyclicPrefix, DecodeReport, Duplex, Modulation, SoftBuffer,
    SubframeConfig, SubframeDecoder, SubframeEncoder, SubframeKind,
};
use num_complex::Complex32;

/// Code rate the TB sizes are chosen for: robust at the air's default 30 dB SNR with margin.
pub const CODE_RATE: f64 = 0.5;
/// Cell-wide scrambling RNTI: every node decodes every TB (MAC headers carry real RNTIs).
pub const LINK_RNTI: u16 = 0xFFF3;
/// First byte of every encoded TB: real MAC data follows.
pub const TB_DATA: u8 = 0xA5;
/// First byte of a master's filler TB (keeps D subframes decodable and tracked when idle).
pub const TB_FILLER: u8 = 0x00;
/// Transmit level: about −10 dBFS total power, as the air's link budget assumes.
pub const TX_POWER: f32 = 0.1;

/// Why a Control cannot run on this modem.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A value valid in table 3-3 that this modem (or the emulated air) cannot do.
    #[error("{0}")]
    Unsupported(String),
    /// The PHY refused the configuration.
    #[error("PHY: {0}")]
    Phy(#[from] ferry_phy::PhyError),
}

/// The subframe waveform of one link.
pub struct PhyLink {
    cfg: SubframeConfig,
    enc: SubframeEncoder,
    dec: SubframeDecoder,
    /// Two TX ports: the SFBC encoder (the single-port one above stays for nothing else).
    mimo_enc: Option<MimoEncoder>,
    /// Two TX ports or two RX antennas: the combining decoder.
    mimo_dec: Option<MimoDecoder>,
    /// TB bytes per subframe of the frame (0 where no TB goes: special / none).
    tb_bytes: [usize; 10],
    sample_rate: f64,
    scale: f32,
}

/// Map the Control's fields onto the PHY's types.
pub fn subframe_config(c: &Control) -> Result<SubframeConfig, LinkError> {
    let bw = c.bandwidth;
    let cp = match c.cp_type {
        CpType::Normal => CyclicPrefix::Normal,
        CpType::Extended => CyclicPrefix::Extended,
    };
    let antennas = (c.antennas_tx, c.antennas_rx);
    if antennas != (1, 1) {
        // trans_mode 1 (one port) or 2 (SFBC over two); spatial multiplexing and four
        // antennas are refused by the PHY naming the reason.
        TxScheme::from_control(c.trans_mode, c.antennas_tx)?;
        if c.harq {
            return Err(LinkError::Unsupported(format!(
                "HARQ = 1 with numAntennaTX/RX = {}/{}: the HARQ control message and \
                 soft combining are built for one antenna only; use HARQ = 0 with two \
                 antennas",
                c.antennas_tx, c.antennas_rx
            )));
        }
    }
    if c.harq && c.workmode == ferry_migrate::control::WorkMode::BaseStation {
        return Err(LinkError::Unsupported(
            "HARQ = 1 with workmode 2 (base station) is not built: a retransmitted TB's uplink \
             grant would name the wrong subframe; use HARQ with workmode 0/1"
                .into(),
        ));
    }
    // FDD: DLULAssign is carried but unused (every subframe is full, on two carriers).
    let duplex = Duplex::from_control(u8::from(c.duplex == CDuplex::Fdd), c.dl_ul_assign)?;
    let cell = CellId::from_control(c.phy_cell_id, u16::from(c.group_id), c.cell_id)?;
    let m = match c.modulation {
        CMod::Qpsk => Modulation::Qpsk,
        CMod::Qam16 => Modulation::Qam16,
        CMod::Qam64 => Modulation::Qam64,
    };
    let mut cfg = SubframeConfig::new(bw, cp, duplex, cell, LINK_RNTI, m);
    cfg.validate()?;
    if antennas != (1, 1) {
        cfg.num_antenna_tx = c.antennas_tx;
        cfg.num_antenna_rx = c.antennas_rx;
        ferry_phy::mimo::check_link(&cfg)?;
    }
    Ok(cfg)
}

impl PhyLink {
    /// The link for `control`.
    pub fn new(control: &Control) -> Result<PhyLink, LinkError> {
        let cfg = subframe_config(control)?;
        let single = SubframeConfig {
            num_antenna_tx: 1,
            num_antenna_rx: 1,
            ..cfg
        };
        let mut mimo_enc = (cfg.num_antenna_tx > 1)
            .then(|| MimoEncoder::new(cfg))
            .transpose()?;
        let mimo_dec = (cfg.num_antenna_tx > 1 || cfg.num_antenna_rx > 1)
            .then(|| MimoDecoder::new(cfg))
            .transpose()?;
        let mut tb_bytes = [0usize; 10];
        for (sf, b) in tb_bytes.iter_mut().enumerate() {
            if cfg.duplex.subframe_kind(sf) != SubframeKind::Special {
                *b = match &mimo_enc {
                    // Two ports' CRS leave fewer data REs.
                    Some(e) => e.max_tb_bytes(sf, CODE_RATE),
                    None => single.capacity(sf, CODE_RATE)?.max_tb_bytes,
                };
            }
        }
        let mut enc = SubframeEncoder::new(single)?;
        // Scale the encoder's output to the transmit level (measured once on an idle-free
        // data subframe so every subframe goes out at the same gain); with two TX antennas
        // their total is the single antenna's level (diversity at equal power).
        let n = cfg.samples_per_subframe();
        let tb = vec![0x5Au8; tb_bytes[0].max(1)];
        let p = match &mut mimo_enc {
            Some(e) => {
                let mut probe = vec![vec![Complex32::new(0.0, 0.0); n]; e.antennas()];
                e.encode(0, &tb, &mut probe)?;
                probe.iter().flatten().map(|s| s.norm_sqr()).sum::<f32>() / n as f32
            }
            None => {
                let mut probe = vec![Complex32::new(0.0, 0.0); n];
                enc.encode(0, &tb, &mut probe)?;
                probe.iter().map(|s| s.norm_sqr()).sum::<f32>() / n as f32
            }
        };
        let scale = if p > 0.0 { (TX_POWER / p).sqrt() } else { 1.0 };
        Ok(PhyLink {
            dec: SubframeDecoder::new(single)?,
            mimo_enc,
            mimo_dec,
            enc,
            tb_bytes,
            sample_rate: cfg.bandwidth.sample_rate_hz(),
            scale,
            cfg,
        })
    }

    /// The PHY configuration.
    pub fn config(&self) -> &SubframeConfig {
        &self.cfg
    }

    /// TX antennas (ports) of the link.
    pub fn tx_antennas(&self) -> usize {
        usize::from(self.cfg.num_antenna_tx.max(1))
    }

    /// This node's RX antennas.
    pub fn rx_antennas(&self) -> usize {
        usize::from(self.cfg.num_antenna_rx.max(1))
    }

    /// Samples per subframe.
    pub fn sps(&self) -> usize {
        self.cfg.samples_per_subframe()
    }

    /// Radio sample rate (Hz).
    pub fn sample_rate(&self) -> f64 {
        self.sample_rate
    }

    /// Kind of subframe `sf` (0..=9). FDD reports every subframe as `Downlink` (a full
    /// subframe); the direction then comes from the carrier, see [`PhyLink::is_fdd`].
    pub fn kind(&self, sf: usize) -> SubframeKind {
        self.cfg.duplex.subframe_kind(sf)
    }

    /// Two carriers: the master transmits on one and hears the slaves on the other in every
    /// subframe.
    pub fn is_fdd(&self) -> bool {
        !self.cfg.duplex.is_tdd()
    }

    /// MAC bytes a TB in subframe `sf` carries (after the modem's 1-byte kind).
    pub fn mac_capacity(&self, sf: usize) -> usize {
        self.tb_bytes
            .get(sf)
            .copied()
            .unwrap_or(0)
            .saturating_sub(1)
    }

    /// Encode `mac_tb` (or a filler when `None`) into `out` (one buffer per TX antenna);
    /// `special` subframes carry only the reference and sync signals.
    pub fn encode(
        &mut self,
        sf: usize,
        mac_tb: Option<&[u8]>,
        out: &mut [Vec<Complex32>],
        tb_buf: &mut Vec<u8>,
    ) -> Result<(), LinkError> {
        let sps = self.sps();
        for o in out.iter_mut() {
            o.resize(sps, Complex32::new(0.0, 0.0));
        }
        let size = self.tb_bytes.get(sf).copied().unwrap_or(0);
        if size > 0 {
            tb_buf.clear();
            match mac_tb {
                Some(b) => {
                    tb_buf.push(TB_DATA);
                    tb_buf.extend_from_slice(b);
                }
                None => tb_buf.push(TB_FILLER),
            }
            tb_buf.resize(size, 0);
        }
        match (&mut self.mimo_enc, &mut *out) {
            (Some(e), out) if size == 0 => e.encode_idle(sf, out)?,
            (Some(e), out) => e.encode(sf, tb_buf, out)?,
            (None, [one]) if size == 0 => self.enc.encode_idle(sf, one)?,
            (None, [one]) => self.enc.encode(sf, tb_buf, one)?,
            (None, out) => {
                return Err(LinkError::Unsupported(format!(
                    "{} TX buffers for a one-port link",
                    out.len()
                )))
            }
        }
        self.scale_out(out);
        Ok(())
    }

    /// Scales encoded antenna buffers to the transmit level.
    fn scale_out(&self, out: &mut [Vec<Complex32>]) {
        let k = self.scale;
        out.iter_mut().flatten().for_each(|s| *s *= k);
    }

    /// TB bytes (with the modem's kind byte) of subframe `sf`'s size; 0 for none.
    pub fn tb_bytes(&self, sf: usize) -> usize {
        self.tb_bytes.get(sf).copied().unwrap_or(0)
    }

    /// Encode subframe `sf` for HARQ: `data` (the MAC bytes, a filler, or nothing), at
    /// redundancy version `rv`, framed to the TB size of subframe `size_sf` (a retransmission
    /// keeps its first transmission's size), with the control message `control`.
    pub fn encode_harq(
        &mut self,
        sf: usize,
        data: TxData<'_>,
        control: &[u8; CONTROL_BYTES],
        out: &mut Vec<Complex32>,
        tb_buf: &mut Vec<u8>,
    ) -> Result<(), LinkError> {
        out.resize(self.sps(), Complex32::new(0.0, 0.0));
        let framed = match data {
            TxData::None => None,
            TxData::Filler => {
                let size = self.tb_bytes(sf);
                tb_buf.clear();
                tb_buf.push(TB_FILLER);
                tb_buf.resize(size.max(1), 0);
                Some(0)
            }
            TxData::Mac { bytes, rv, size_sf } => {
                let size = self.tb_bytes(size_sf);
                if size == 0 || bytes.len() + 1 > size {
                    return Err(LinkError::Unsupported(format!(
                        "TB of {} bytes does not fit subframe {size_sf}'s size {size}",
                        bytes.len() + 1
                    )));
                }
                tb_buf.clear();
                tb_buf.push(TB_DATA);
                tb_buf.extend_from_slice(bytes);
                tb_buf.resize(size, 0);
                Some(rv)
            }
        };
        let with_tb = framed.filter(|_| self.tb_bytes(sf) > 0);
        self.enc.encode_with(
            sf,
            with_tb.map(|rv| (tb_buf.as_slice(), rv)),
            Some(control),
            out,
        )?;
        let k = self.scale;
        out.iter_mut().for_each(|s| *s *= k);
        Ok(())
    }

    /// Demodulate subframe `sf` and estimate the channel (before [`PhyLink::decode_control`]
    /// and [`PhyLink::decode_received`]).
    pub fn receive(&mut self, sf: usize, samples: &[Complex32]) -> Option<ChannelQuality> {
        self.dec.measure(sf, samples).ok()
    }

    /// The control message of the subframe last received.
    pub fn decode_control(&mut self, sf: usize) -> Option<[u8; CONTROL_BYTES]> {
        self.dec.decode_control(sf).ok().flatten()
    }

    /// Decode the TB of the subframe last received: size of subframe `size_sf`, redundancy
    /// version `rv`, combined with `soft` when given (HARQ).
    pub fn decode_received(
        &mut self,
        sf: usize,
        quality: ChannelQuality,
        size_sf: usize,
        rv: u8,
        soft: Option<&mut SoftBuffer>,
    ) -> Decoded {
        let size = self.tb_bytes(size_sf);
        if size == 0 {
            return Decoded::NoTb;
        }
        classify(self.dec.decode_data(sf, quality, size, rv, soft))
    }

    /// Decode subframe `sf` received on this node's RX antennas (one buffer each): SFBC
    /// and/or MRC combining when the link has two TX ports or two RX antennas.
    pub fn decode_antennas(&mut self, sf: usize, samples: &[&mut [Complex32]]) -> Decoded {
        let size = self.tb_bytes.get(sf).copied().unwrap_or(0);
        if size == 0 {
            return Decoded::NoTb;
        }
        match (&mut self.mimo_dec, samples) {
            (Some(d), s) => classify(d.decode(sf, s, size)),
            (None, [one]) => classify(self.dec.decode(sf, one, size)),
            (None, _) => Decoded::CrcFail { snr_db: f32::NAN },
        }
    }

    /// Decode subframe `sf`: `Ok(Some(mac bytes))` for data, `Ok(None)` for a filler, `Err`
    /// with the SNR for a CRC failure. Also returns the channel quality.
    pub fn decode(&mut self, sf: usize, samples: &[Complex32]) -> Decoded {
        let size = self.tb_bytes.get(sf).copied().unwrap_or(0);
        if size == 0 {
            return Decoded::NoTb;
        }
        classify(self.dec.decode(sf, samples, size))
    }
}

/// What to put in a subframe's data region.
#[derive(Debug, Clone, Copy)]
pub enum TxData<'a> {
    /// Nothing (control region and reference signals only).
    None,
    /// A master's filler TB.
    Filler,
    /// MAC bytes at redundancy version `rv`, sized like subframe `size_sf`'s TB.
    Mac {
        /// The MAC TB.
        bytes: &'a [u8],
        /// Redundancy version.
        rv: u8,
        /// Subframe whose TB size applies.
        size_sf: usize,
    },
}

fn classify(r: Result<DecodeReport, ferry_phy::PhyError>) -> Decoded {
    match r {
        Ok(r) => match r.payload {
            Some(p) if p.first() == Some(&TB_DATA) => Decoded::Data {
                mac: p.get(1..).map(<[u8]>::to_vec).unwrap_or_default(),
                snr_db: r.quality.snr_db,
                residual_cfo_hz: r.quality.residual_cfo_hz,
            },
            Some(_) => Decoded::Filler {
                snr_db: r.quality.snr_db,
                residual_cfo_hz: r.quality.residual_cfo_hz,
            },
            None => Decoded::CrcFail {
                snr_db: r.quality.snr_db,
            },
        },
        Err(_) => Decoded::CrcFail { snr_db: f32::NAN },
    }
}

/// Outcome of decoding one subframe.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// This subframe carries no TB.
    NoTb,
    /// A MAC transport block.
    Data {
        /// MAC bytes.
        mac: Vec<u8>,
        /// SNR (dB).
        snr_db: f32,
        /// CFO left after derotation (Hz).
        residual_cfo_hz: f32,
    },
    /// A master's idle filler.
    Filler {
        /// SNR (dB).
        snr_db: f32,
        /// CFO left after derotation (Hz).
        residual_cfo_hz: f32,
    },
    /// CRC failed.
    CrcFail {
        /// SNR (dB), NaN if not measurable.
        snr_db: f32,
    },
}

/// Rotate `samples` (starting at absolute radio sample `t0`) by `-cfo_hz`, phase continuous
/// in absolute time so successive subframes join up.
pub fn derotate(samples: &mut [Complex32], t0: u64, cfo_hz: f64, sample_rate: f64) {
    rotate(samples, t0, -cfo_hz, sample_rate);
}

/// Rotate by `+f_hz` (TX pre-compensation).
pub fn rotate(samples: &mut [Complex32], t0: u64, f_hz: f64, sample_rate: f64) {
    if f_hz == 0.0 || sample_rate <= 0.0 {
        return;
    }
    let w = 2.0 * std::f64::consts::PI * f_hz / sample_rate;
    // Start phase from absolute time, reduced modulo 2π to keep f64 precision.
    let cycles = (f_hz * (t0 as f64) / sample_rate).fract();
    let mut ph = Complex32::from_polar(1.0, (2.0 * std::f64::consts::PI * cycles) as f32);
    let step = Complex32::from_polar(1.0, w as f32);
    for (i, s) in samples.iter_mut().enumerate() {
        *s *= ph;
        ph *= step;
        // Renormalise now and then: the recursive phasor drifts in magnitude.
        if i % 256 == 255 {
            ph /= ph.norm();
        }
    }
}

/// Mean power of a block.
pub fn mean_power(s: &[Complex32]) -> f32 {
    if s.is_empty() {
        return 0.0;
    }
    s.iter().map(|x| x.norm_sqr()).sum::<f32>() / s.len() as f32
}
