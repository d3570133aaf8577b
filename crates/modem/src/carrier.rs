//! Carrier frequencies, pure: the E-UTRA band table (36.101 table 5.7.3-1, the bands a
//! WBX-class radio or the common LTE deployments use), EARFCN → downlink and uplink centre
//! frequency, and which LO each role tunes where. Table 3-3 has no frequency field, so the
//! Control carries one DL EARFCN (Ferry's `EARFCN` extension) and the uplink follows from the
//! band's default duplex spacing.

use crate::proto::Role;
use ferry_migrate::control::Duplex;
use ferry_migrate::Control;

/// One operating band.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Band {
    /// E-UTRA band number.
    pub number: u8,
    /// F_DL_low in MHz.
    pub dl_low_mhz: f64,
    /// N_Offs-DL.
    pub dl_offset: u32,
    /// How many DL EARFCNs the band has.
    pub count: u32,
    /// F_UL_low in MHz (FDD), or `None` (TDD: uplink on the downlink frequency).
    pub ul_low_mhz: Option<f64>,
}

const fn fdd(number: u8, dl_low_mhz: f64, dl_offset: u32, count: u32, ul_low_mhz: f64) -> Band {
    Band {
        number,
        dl_low_mhz,
        dl_offset,
        count,
        ul_low_mhz: Some(ul_low_mhz),
    }
}

const fn tdd(number: u8, low_mhz: f64, offset: u32, count: u32) -> Band {
    Band {
        number,
        dl_low_mhz: low_mhz,
        dl_offset: offset,
        count,
        ul_low_mhz: None,
    }
}

/// 36.101 table 5.7.3-1 (subset): F_DL = F_DL_low + 0.1 (N_DL − N_Offs-DL) MHz, and for FDD
/// the paired uplink F_UL = F_UL_low + 0.1 (N_DL − N_Offs-DL) MHz (the band's default
/// TX–RX separation F_DL_low − F_UL_low).
pub const BANDS: [Band; 19] = [
    fdd(1, 2110.0, 0, 600, 1920.0),
    fdd(2, 1930.0, 600, 600, 1850.0),
    fdd(3, 1805.0, 1200, 750, 1710.0),
    fdd(4, 2110.0, 1950, 450, 1710.0),
    fdd(5, 869.0, 2400, 250, 824.0),
    fdd(7, 2620.0, 2750, 700, 2500.0),
    fdd(8, 925.0, 3450, 350, 880.0),
    fdd(12, 729.0, 5010, 170, 699.0),
    fdd(13, 746.0, 5180, 100, 777.0),
    fdd(17, 734.0, 5730, 120, 704.0),
    fdd(20, 791.0, 6150, 300, 832.0),
    fdd(25, 1930.0, 8040, 650, 1850.0),
    fdd(28, 758.0, 9210, 450, 703.0),
    tdd(33, 1900.0, 36000, 200),
    tdd(34, 2010.0, 36200, 150),
    tdd(38, 2570.0, 37750, 500),
    tdd(39, 1880.0, 38250, 400),
    tdd(40, 2300.0, 38650, 1000),
    tdd(41, 2496.0, 39650, 1940),
];

/// Default FDD carrier: band 1, DL 2140 MHz / UL 1950 MHz (190 MHz apart), inside the WBX's
/// 50 MHz–2.2 GHz (band 7's 2.6 GHz is not).
pub const DEFAULT_FDD_EARFCN: u32 = 300;

/// A carrier that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CarrierError {
    /// Not a DL EARFCN of any band in the table.
    #[error("EARFCN {0} is not a downlink EARFCN of a known band (e.g. 0..=599 band 1 FDD, 38250..=38649 band 39 TDD; table in docs/MODEM.md)")]
    Unknown(u32),
    /// The band's duplexing contradicts Control's duplexMode.
    #[error("EARFCN {earfcn} is in {kind} band {band}, but duplexMode = {mode} asks for {want}")]
    DuplexMismatch {
        /// Requested.
        earfcn: u32,
        /// Its band.
        band: u8,
        /// "FDD" or "TDD".
        kind: &'static str,
        /// Control's duplexMode.
        mode: u8,
        /// "an FDD band" or "a TDD band".
        want: &'static str,
    },
}

/// A carrier (pair): what the cell uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Carrier {
    /// Band number.
    pub band: u8,
    /// DL EARFCN.
    pub earfcn: u32,
    /// Downlink centre frequency, Hz.
    pub dl_hz: f64,
    /// Uplink centre frequency, Hz (TDD: equal to `dl_hz`).
    pub ul_hz: f64,
}

/// Where one radio's two LOs go.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// TX centre frequency, Hz.
    pub tx_hz: f64,
    /// RX centre frequency, Hz.
    pub rx_hz: f64,
}

impl Carrier {
    /// The carrier of a DL EARFCN.
    pub fn from_earfcn(earfcn: u32) -> Result<Carrier, CarrierError> {
        let b = BANDS
            .iter()
            .find(|b| earfcn >= b.dl_offset && earfcn - b.dl_offset < b.count)
            .ok_or(CarrierError::Unknown(earfcn))?;
        // Work in units of 100 kHz so the frequencies are exact integers of Hz.
        let steps = f64::from(earfcn - b.dl_offset);
        let dl_hz = (b.dl_low_mhz * 10.0 + steps) * 100e3;
        let ul_hz = b.ul_low_mhz.map_or(dl_hz, |ul| (ul * 10.0 + steps) * 100e3);
        Ok(Carrier {
            band: b.number,
            earfcn,
            dl_hz,
            ul_hz,
        })
    }

    /// Whether the band is paired (FDD).
    pub fn is_fdd(&self) -> bool {
        self.dl_hz != self.ul_hz
    }

    /// F_DL − F_UL (positive for most bands; band 13 and 20 have the uplink above).
    pub fn duplex_spacing_hz(&self) -> f64 {
        self.dl_hz - self.ul_hz
    }

    /// The master (and base station) transmits on the downlink and receives the uplink; a
    /// slave the opposite. TDD: both LOs on the one carrier.
    pub fn tuning(&self, role: Role) -> Tuning {
        match role {
            Role::Master | Role::BaseStation => Tuning {
                tx_hz: self.dl_hz,
                rx_hz: self.ul_hz,
            },
            Role::Slave => Tuning {
                tx_hz: self.ul_hz,
                rx_hz: self.dl_hz,
            },
        }
    }
}

/// The carrier a modem with `control` uses, from its `EARFCN`: FDD needs a paired band
/// (default [`DEFAULT_FDD_EARFCN`]); TDD without an EARFCN keeps the radio where its one-time
/// initialisation tuned it (`None`: no tuning, as before FDD existed).
pub fn carrier_for(control: &Control) -> Result<Option<Carrier>, CarrierError> {
    let fdd_wanted = control.duplex == Duplex::Fdd;
    let Some(n) = control.earfcn.or(fdd_wanted.then_some(DEFAULT_FDD_EARFCN)) else {
        return Ok(None);
    };
    let c = Carrier::from_earfcn(n)?;
    if c.is_fdd() != fdd_wanted {
        return Err(CarrierError::DuplexMismatch {
            earfcn: n,
            band: c.band,
            kind: if c.is_fdd() { "FDD" } else { "TDD" },
            mode: u8::from(fdd_wanted),
            want: if fdd_wanted {
                "an FDD band"
            } else {
                "a TDD band"
            },
        });
    }
    Ok(Some(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn control(duplex: u8, earfcn: Option<u32>) -> Control {
        let mut c = Control::from_value(&json!({
            "workmode": 0, "phy_cell_ID": 1, "group_ID": 0, "cell_ID": 1, "CPtype": 0,
            "BW": 1.4, "RBIdx": 6, "duplexMode": duplex, "numAntennaTX": 1, "numAntennaRX": 1,
            "DLULAssign": 1, "trans_mode": 1, "type_mode": 1, "RNTI": 265
        }))
        .unwrap();
        c.earfcn = earfcn;
        c
    }

    #[test]
    fn earfcn_to_frequencies_and_duplex_spacing() {
        let c = Carrier::from_earfcn(300).unwrap();
        assert_eq!((c.band, c.dl_hz, c.ul_hz), (1, 2140e6, 1950e6));
        assert_eq!(c.duplex_spacing_hz(), 190e6);
        // Band 7 (the common 2655/2535 MHz pair), 120 MHz apart.
        let c = Carrier::from_earfcn(3100).unwrap();
        assert_eq!((c.band, c.dl_hz, c.ul_hz), (7, 2655e6, 2535e6));
        // Band 3: 95 MHz. Band 20: uplink above downlink.
        assert_eq!(
            Carrier::from_earfcn(1575).unwrap().duplex_spacing_hz(),
            95e6
        );
        let c = Carrier::from_earfcn(6300).unwrap();
        assert_eq!((c.band, c.dl_hz, c.ul_hz), (20, 806e6, 847e6));
        // Band 39 TDD: one carrier, 1.9 GHz at 38450 (the air's default).
        let c = Carrier::from_earfcn(38450).unwrap();
        assert_eq!((c.band, c.dl_hz, c.ul_hz), (39, 1900e6, 1900e6));
        assert!(!c.is_fdd());
        // Edges of band 1 and holes between bands.
        assert_eq!(Carrier::from_earfcn(599).unwrap().dl_hz, 2169.9e6);
        assert_eq!(Carrier::from_earfcn(0).unwrap().dl_hz, 2110e6);
        assert_eq!(Carrier::from_earfcn(3800), Err(CarrierError::Unknown(3800)));
        assert_eq!(
            Carrier::from_earfcn(99_999),
            Err(CarrierError::Unknown(99_999))
        );
    }

    #[test]
    fn roles_tune_opposite_directions() {
        let c = Carrier::from_earfcn(300).unwrap();
        let m = c.tuning(Role::Master);
        let s = c.tuning(Role::Slave);
        assert_eq!((m.tx_hz, m.rx_hz), (2140e6, 1950e6));
        assert_eq!((s.tx_hz, s.rx_hz), (1950e6, 2140e6));
        assert_eq!(c.tuning(Role::BaseStation), m);
    }

    #[test]
    fn duplex_mode_and_band_must_agree() {
        // TDD without an EARFCN: no tuning (unchanged behaviour).
        assert_eq!(carrier_for(&control(0, None)), Ok(None));
        // FDD without one: band 1 default.
        let c = carrier_for(&control(1, None)).unwrap().unwrap();
        assert_eq!(c.earfcn, 300);
        let c = carrier_for(&control(0, Some(38450))).unwrap().unwrap();
        assert_eq!(c.dl_hz, 1900e6);
        let e = carrier_for(&control(1, Some(38450))).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("TDD band 39") && e.contains("duplexMode = 1"),
            "{e}"
        );
        let e = carrier_for(&control(0, Some(300))).unwrap_err().to_string();
        assert!(e.contains("FDD band 1") && e.contains("a TDD band"), "{e}");
        assert!(carrier_for(&control(1, Some(3800))).is_err());
    }
}
