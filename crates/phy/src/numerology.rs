//! LTE numerology (TS 36.211 §4, §6.2): bandwidths, FFT sizes, sample rates, cyclic
//! prefixes, the 10 ms frame of ten 1 ms subframes, FDD/TDD frame structure, cell identity
//! and antenna-count validation. Every value LTE does not allow is a typed error.

use crate::{PhyError, Result};
use serde::{Deserialize, Serialize};

/// Subcarriers per resource block.
pub const SUBCARRIERS_PER_RB: usize = 12;
/// Subframes per radio frame.
pub const SUBFRAMES_PER_FRAME: usize = 10;
/// Subcarrier spacing in Hz.
pub const SUBCARRIER_SPACING_HZ: f64 = 15_000.0;
/// N_RB^max,DL of 36.211: CRS sequences are defined for this many RBs and cut to the carrier.
pub const MAX_RB: usize = 110;

/// Channel bandwidth (the thesis' `BW`); determines RB count, FFT size and sample rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Bandwidth {
    /// 1.4 MHz, 6 RB, FFT 128, 1.92 Msps.
    Mhz1_4,
    /// 3 MHz, 15 RB, FFT 256, 3.84 Msps.
    Mhz3,
    /// 5 MHz, 25 RB, FFT 512, 7.68 Msps.
    Mhz5,
    /// 10 MHz, 50 RB, FFT 1024, 15.36 Msps.
    Mhz10,
    /// 15 MHz, 75 RB, FFT 1536, 23.04 Msps.
    Mhz15,
    /// 20 MHz, 100 RB, FFT 2048, 30.72 Msps.
    Mhz20,
}

impl Bandwidth {
    /// All bandwidths, narrowest first.
    pub const ALL: [Bandwidth; 6] = [
        Bandwidth::Mhz1_4,
        Bandwidth::Mhz3,
        Bandwidth::Mhz5,
        Bandwidth::Mhz10,
        Bandwidth::Mhz15,
        Bandwidth::Mhz20,
    ];

    /// Resource blocks N_RB.
    pub fn rb_count(self) -> usize {
        match self {
            Bandwidth::Mhz1_4 => 6,
            Bandwidth::Mhz3 => 15,
            Bandwidth::Mhz5 => 25,
            Bandwidth::Mhz10 => 50,
            Bandwidth::Mhz15 => 75,
            Bandwidth::Mhz20 => 100,
        }
    }

    /// Occupied subcarriers N_RB · 12 (the DC subcarrier is not counted).
    pub fn subcarriers(self) -> usize {
        self.rb_count() * SUBCARRIERS_PER_RB
    }

    /// FFT size N.
    pub fn fft_size(self) -> usize {
        match self {
            Bandwidth::Mhz1_4 => 128,
            Bandwidth::Mhz3 => 256,
            Bandwidth::Mhz5 => 512,
            Bandwidth::Mhz10 => 1024,
            Bandwidth::Mhz15 => 1536,
            Bandwidth::Mhz20 => 2048,
        }
    }

    /// Sample rate in samples per second (N · 15 kHz).
    pub fn sample_rate_hz(self) -> f64 {
        self.fft_size() as f64 * SUBCARRIER_SPACING_HZ
    }

    /// Samples in one 1 ms subframe (30720 · N / 2048).
    pub fn samples_per_subframe(self) -> usize {
        15 * self.fft_size()
    }

    /// Samples in one 10 ms frame.
    pub fn samples_per_frame(self) -> usize {
        SUBFRAMES_PER_FRAME * self.samples_per_subframe()
    }

    /// Nominal channel bandwidth in MHz.
    pub fn mhz(self) -> f64 {
        match self {
            Bandwidth::Mhz1_4 => 1.4,
            Bandwidth::Mhz3 => 3.0,
            Bandwidth::Mhz5 => 5.0,
            Bandwidth::Mhz10 => 10.0,
            Bandwidth::Mhz15 => 15.0,
            Bandwidth::Mhz20 => 20.0,
        }
    }

    /// From a channel bandwidth in MHz (1.4, 3, 5, 10, 15, 20).
    pub fn from_mhz(mhz: f64) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| (b.mhz() - mhz).abs() < 1e-6)
            .ok_or_else(|| PhyError::invalid("BW", mhz, "1.4, 3, 5, 10, 15 or 20 MHz"))
    }

    /// From a resource-block count (6, 15, 25, 50, 75, 100).
    pub fn from_rb_count(rb: usize) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|b| b.rb_count() == rb)
            .ok_or_else(|| PhyError::invalid("RBIdx", rb, "6, 15, 25, 50, 75 or 100 resource blocks"))
    }

    /// From a textual bandwidth: `"5"`, `"1.4"`, `"5MHz"`, `"25rb"`.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim().to_ascii_lowercase();
        if let Some(rb) = t.strip_suffix("rb") {
            let rb: usize = rb
                .trim()
                .parse()
                .map_err(|_| PhyError::invalid("RBIdx", text, "an RB count such as 25rb"))?;
            return Self::from_rb_count(rb);
        }
        let num = t.strip_suffix("mhz").unwrap_or(&t).trim();
        let mhz: f64 = num
            .parse()
            .map_err(|_| PhyError::invalid("BW", text, "1.4, 3, 5, 10, 15 or 20 MHz"))?;
        Self::from_mhz(mhz)
    }

    /// Checks that the Control's `BW` (MHz) and `RBIdx` (RB count) agree.
    pub fn from_mhz_and_rb(mhz: f64, rb: usize) -> Result<Self> {
        let bw = Self::from_mhz(mhz)?;
        if bw.rb_count() != rb {
            return Err(PhyError::invalid(
                "RBIdx",
                rb,
                "the RB count of BW (1.4→6, 3→15, 5→25, 10→50, 15→75, 20→100)",
            ));
        }
        Ok(bw)
    }
}

impl std::fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} MHz", self.mhz())
    }
}

/// Cyclic prefix (the thesis' `CPtype`: 0 normal, 1 extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CyclicPrefix {
    /// 7 symbols per slot; CP 160·N/2048 for symbol 0 of a slot, 144·N/2048 otherwise.
    Normal,
    /// 6 symbols per slot; CP 512·N/2048.
    Extended,
}

impl CyclicPrefix {
    /// Both types.
    pub const ALL: [CyclicPrefix; 2] = [CyclicPrefix::Normal, CyclicPrefix::Extended];

    /// From the thesis' `CPtype` (0 normal, 1 extended).
    pub fn from_cp_type(cp_type: u8) -> Result<Self> {
        match cp_type {
            0 => Ok(CyclicPrefix::Normal),
            1 => Ok(CyclicPrefix::Extended),
            other => Err(PhyError::invalid(
                "CPtype",
                other,
                "0 (normal) or 1 (extended)",
            )),
        }
    }

    /// The thesis' `CPtype` value.
    pub fn cp_type(self) -> u8 {
        match self {
            CyclicPrefix::Normal => 0,
            CyclicPrefix::Extended => 1,
        }
    }

    /// OFDM symbols per slot, N_symb^DL.
    pub fn symbols_per_slot(self) -> usize {
        match self {
            CyclicPrefix::Normal => 7,
            CyclicPrefix::Extended => 6,
        }
    }

    /// OFDM symbols per subframe.
    pub fn symbols_per_subframe(self) -> usize {
        2 * self.symbols_per_slot()
    }

    /// CP length in samples of symbol `l` of a slot (0-based) for FFT size `fft`.
    pub fn cp_len(self, l_in_slot: usize, fft: usize) -> usize {
        match self {
            CyclicPrefix::Normal if l_in_slot == 0 => 160 * fft / 2048,
            CyclicPrefix::Normal => 144 * fft / 2048,
            CyclicPrefix::Extended => 512 * fft / 2048,
        }
    }
}

/// What a subframe is used for in the frame structure (36.211 table 4.2-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubframeKind {
    /// Downlink (D).
    Downlink,
    /// Special (S): DwPTS, guard period, UpPTS.
    Special,
    /// Uplink (U).
    Uplink,
}

/// A TDD uplink/downlink configuration 0..=6 (the thesis' `DLULAssign`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TddConfig(u8);

/// Table 4.2-2 of 36.211, one string per configuration.
const TDD_TABLE: [&[u8; 10]; 7] = [
    b"DSUUUDSUUU",
    b"DSUUDDSUUD",
    b"DSUDDDSUDD",
    b"DSUUUDDDDD",
    b"DSUUDDDDDD",
    b"DSUDDDDDDD",
    b"DSUUUDSUUD",
];

impl TddConfig {
    /// Validates `DLULAssign` 0..=6.
    pub fn new(config: u8) -> Result<Self> {
        if config <= 6 {
            Ok(TddConfig(config))
        } else {
            Err(PhyError::invalid("DLULAssign", config, "0..=6 (36.211 table 4.2-2)"))
        }
    }

    /// The configuration number.
    pub fn index(self) -> u8 {
        self.0
    }

    /// Kind of subframe `sf` (taken modulo 10).
    pub fn subframe_kind(self, sf: usize) -> SubframeKind {
        let row = TDD_TABLE[usize::from(self.0).min(6)];
        match row[sf % SUBFRAMES_PER_FRAME] {
            b'D' => SubframeKind::Downlink,
            b'S' => SubframeKind::Special,
            _ => SubframeKind::Uplink,
        }
    }

    /// The pattern as letters, e.g. `DSUUUDSUUU`.
    pub fn pattern(self) -> &'static str {
        // Table entries are ASCII.
        std::str::from_utf8(TDD_TABLE[usize::from(self.0).min(6)]).unwrap_or("??????????")
    }
}

/// Duplex mode (the thesis' `duplexMode`: 0 TDD, 1 FDD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Duplex {
    /// Frequency-division duplex: every subframe is a full subframe.
    Fdd,
    /// Time-division duplex with an uplink/downlink configuration.
    Tdd(TddConfig),
}

impl Duplex {
    /// From the thesis' `duplexMode` (0 TDD, 1 FDD) and `DLULAssign` (used for TDD only).
    pub fn from_control(duplex_mode: u8, dl_ul_assign: u8) -> Result<Self> {
        match duplex_mode {
            0 => Ok(Duplex::Tdd(TddConfig::new(dl_ul_assign)?)),
            1 => Ok(Duplex::Fdd),
            other => Err(PhyError::invalid("duplexMode", other, "0 (TDD) or 1 (FDD)")),
        }
    }

    /// Kind of subframe `sf`. In FDD every subframe is a full one, reported as `Downlink`
    /// (the modem uses the same OFDM structure in both directions, see docs/PHY.md).
    pub fn subframe_kind(self, sf: usize) -> SubframeKind {
        match self {
            Duplex::Fdd => SubframeKind::Downlink,
            Duplex::Tdd(c) => c.subframe_kind(sf),
        }
    }

    /// True for TDD.
    pub fn is_tdd(self) -> bool {
        matches!(self, Duplex::Tdd(_))
    }
}

/// OFDM symbols of the DwPTS of a special subframe. This implementation uses special
/// subframe configuration 4 for normal CP (DwPTS 26336·Ts = 12 symbols, GP 1, UpPTS 1)
/// and configuration 3 for extended CP (DwPTS 25600·Ts = 10 symbols, GP 1, UpPTS 1)
/// of 36.211 table 4.2-1.
pub fn dwpts_symbols(cp: CyclicPrefix) -> usize {
    match cp {
        CyclicPrefix::Normal => 12,
        CyclicPrefix::Extended => 10,
    }
}

/// Physical-layer cell identity N_ID^cell = 3·N_ID^(1) + N_ID^(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellId(u16);

impl CellId {
    /// From `phy_cell_ID` 0..=503.
    pub fn new(pci: u16) -> Result<Self> {
        if pci <= 503 {
            Ok(CellId(pci))
        } else {
            Err(PhyError::invalid("phy_cell_ID", pci, "0..=503"))
        }
    }

    /// From `group_ID` (N_ID^(1), 0..=167) and `cell_ID` (N_ID^(2), 0..=2).
    pub fn from_parts(group: u16, cell: u8) -> Result<Self> {
        if group > 167 {
            return Err(PhyError::invalid("group_ID", group, "0..=167"));
        }
        if cell > 2 {
            return Err(PhyError::invalid("cell_ID", cell, "0..=2"));
        }
        Ok(CellId(3 * group + u16::from(cell)))
    }

    /// Checks a Control triple: all in range and `phy_cell_ID = 3·group_ID + cell_ID`.
    pub fn from_control(pci: u16, group: u16, cell: u8) -> Result<Self> {
        let from_parts = Self::from_parts(group, cell)?;
        let id = Self::new(pci)?;
        if id != from_parts {
            return Err(PhyError::invalid(
                "phy_cell_ID",
                pci,
                "3·group_ID + cell_ID",
            ));
        }
        Ok(id)
    }

    /// N_ID^cell.
    pub fn pci(self) -> u16 {
        self.0
    }

    /// N_ID^(1), the group.
    pub fn group(self) -> u16 {
        self.0 / 3
    }

    /// N_ID^(2), the identity within the group.
    pub fn sector(self) -> u8 {
        (self.0 % 3) as u8
    }
}

/// Validates the Control's `numAntennaTX` / `numAntennaRX`: LTE allows 1, 2 or 4; this PHY
/// implements antenna port 0 only, so 2 and 4 are `Unsupported`.
pub fn check_antennas(num_tx: u8, num_rx: u8) -> Result<()> {
    for (name, n) in [("numAntennaTX", num_tx), ("numAntennaRX", num_rx)] {
        match n {
            1 => {}
            2 | 4 => {
                return Err(PhyError::Unsupported(format!(
                    "{name} = {n}: LTE allows it, but this PHY implements a single antenna \
                     port (port 0); use 1"
                )))
            }
            _ => return Err(PhyError::invalid(name, n, "1, 2 or 4 (only 1 implemented)")),
        }
    }
    Ok(())
}

/// Sample layout of one subframe: where each OFDM symbol's CP and useful part start.
#[derive(Debug, Clone, PartialEq)]
pub struct SubframeLayout {
    /// FFT size.
    pub fft: usize,
    /// Per symbol: (CP length, offset of the CP start within the subframe).
    pub symbols: Vec<(usize, usize)>,
    /// Samples in the subframe.
    pub len: usize,
}

impl SubframeLayout {
    /// Layout for a bandwidth and CP.
    pub fn new(bw: Bandwidth, cp: CyclicPrefix) -> Self {
        let fft = bw.fft_size();
        let mut symbols = Vec::with_capacity(cp.symbols_per_subframe());
        let mut pos = 0;
        for _slot in 0..2 {
            for l in 0..cp.symbols_per_slot() {
                let c = cp.cp_len(l, fft);
                symbols.push((c, pos));
                pos += c + fft;
            }
        }
        SubframeLayout {
            fft,
            symbols,
            len: pos,
        }
    }

    /// Offset of the useful (post-CP) part of symbol `l` of the subframe.
    pub fn useful_start(&self, l: usize) -> usize {
        self.symbols.get(l).map(|&(c, p)| p + c).unwrap_or(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subframe_is_one_millisecond_for_every_bandwidth_and_cp() {
        for bw in Bandwidth::ALL {
            for cp in CyclicPrefix::ALL {
                let l = SubframeLayout::new(bw, cp);
                assert_eq!(l.len, bw.samples_per_subframe(), "{bw} {cp:?}");
                assert_eq!(l.len as f64 / bw.sample_rate_hz(), 1e-3);
                assert_eq!(l.symbols.len(), cp.symbols_per_subframe());
            }
        }
    }

    #[test]
    fn exact_cp_lengths() {
        assert_eq!(CyclicPrefix::Normal.cp_len(0, 2048), 160);
        assert_eq!(CyclicPrefix::Normal.cp_len(3, 2048), 144);
        assert_eq!(CyclicPrefix::Extended.cp_len(0, 2048), 512);
        assert_eq!(CyclicPrefix::Normal.cp_len(0, 128), 10);
        assert_eq!(CyclicPrefix::Normal.cp_len(1, 128), 9);
        assert_eq!(CyclicPrefix::Normal.cp_len(0, 1536), 120);
        assert_eq!(CyclicPrefix::Normal.cp_len(6, 1536), 108);
        assert_eq!(CyclicPrefix::Extended.cp_len(2, 512), 128);
    }

    #[test]
    fn bandwidth_table() {
        let table: Vec<_> = Bandwidth::ALL
            .iter()
            .map(|b| (b.rb_count(), b.fft_size(), b.sample_rate_hz() as u64))
            .collect();
        assert_eq!(
            table,
            vec![
                (6, 128, 1_920_000),
                (15, 256, 3_840_000),
                (25, 512, 7_680_000),
                (50, 1024, 15_360_000),
                (75, 1536, 23_040_000),
                (100, 2048, 30_720_000)
            ]
        );
    }

    #[test]
    fn parsing_and_validation() {
        assert_eq!(Bandwidth::parse("1.4").unwrap(), Bandwidth::Mhz1_4);
        assert_eq!(Bandwidth::parse("20MHz").unwrap(), Bandwidth::Mhz20);
        assert_eq!(Bandwidth::parse("75rb").unwrap(), Bandwidth::Mhz15);
        assert!(Bandwidth::parse("7").is_err());
        assert!(Bandwidth::from_mhz(7.0).is_err());
        assert!(Bandwidth::from_rb_count(24).is_err());
        assert!(Bandwidth::from_mhz_and_rb(5.0, 50).is_err());
        assert_eq!(Bandwidth::from_mhz_and_rb(10.0, 50).unwrap(), Bandwidth::Mhz10);
        assert!(CellId::new(504).is_err());
        assert_eq!(CellId::new(503).unwrap().group(), 167);
        assert!(CellId::from_parts(168, 0).is_err());
        assert!(CellId::from_parts(0, 3).is_err());
        assert_eq!(CellId::from_parts(100, 2).unwrap().pci(), 302);
        assert!(CellId::from_control(302, 100, 1).is_err());
        assert!(TddConfig::new(7).is_err());
        assert!(Duplex::from_control(2, 0).is_err());
        assert!(CyclicPrefix::from_cp_type(2).is_err());
        assert!(check_antennas(1, 1).is_ok());
        assert!(matches!(check_antennas(2, 1), Err(PhyError::Unsupported(_))));
        assert!(matches!(check_antennas(1, 4), Err(PhyError::Unsupported(_))));
        assert!(matches!(
            check_antennas(3, 1),
            Err(PhyError::InvalidParameter { .. })
        ));
    }

    #[test]
    fn tdd_table_4_2_2() {
        let c = TddConfig::new(1).unwrap();
        assert_eq!(c.pattern(), "DSUUDDSUUD");
        // Subframes 0 and 5 are downlink and 1 is special in every configuration.
        for i in 0..=6 {
            let c = TddConfig::new(i).unwrap();
            assert_eq!(c.subframe_kind(0), SubframeKind::Downlink);
            assert_eq!(c.subframe_kind(5), SubframeKind::Downlink);
            assert_eq!(c.subframe_kind(1), SubframeKind::Special);
            assert_eq!(c.subframe_kind(2), SubframeKind::Uplink);
        }
        assert_eq!(TddConfig::new(5).unwrap().subframe_kind(6), SubframeKind::Downlink);
        assert_eq!(TddConfig::new(0).unwrap().subframe_kind(6), SubframeKind::Special);
    }
}
