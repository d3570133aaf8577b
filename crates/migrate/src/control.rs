//! The state that moves with the task: thesis table 3-3 `Control` (plus Ferry's warm-start
//! timing) and the relay's `route_list`, validated on receipt.
//!
//! JSON uses the thesis' own field names so a Python controller can send the same dict.
//! Parsing collects *every* invalid field (with what is allowed) and never panics.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// One invalid field: which, what it held, what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field name as on the wire (`phy_cell_ID`, `route_list[2]`, ...).
    pub field: String,
    /// The offending value as JSON text, or `missing`.
    pub value: String,
    /// What is allowed.
    pub allowed: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}", self.field, self.value, self.allowed)
    }
}

/// Every problem found in a `Control` or `route_list` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} invalid: {}", join(.errors))]
pub struct ValidationError {
    /// `Control` or `route_list`.
    pub what: &'static str,
    /// One entry per invalid field, in wire order.
    pub errors: Vec<FieldError>,
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `workmode`: the D2D program's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkMode {
    /// 0: master terminal (elects itself timing source without a base station).
    Master,
    /// 1: slave terminal (syncs to a master).
    Slave,
    /// 2: syncs to a base station.
    BaseStation,
    /// 3 (Ferry extension): D2D without a base station, roles elected among terminals
    /// (listen for a master; claim the role after a randomised silence; lowest node ID wins
    /// when two masters meet). TDD only. See docs/MODEM.md, "Master election".
    Auto,
}

/// `CPtype`: cyclic prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpType {
    /// 0: normal CP (14 symbols per subframe).
    Normal,
    /// 1: extended CP (12 symbols per subframe).
    Extended,
}

/// `BW`: LTE channel bandwidth — the PHY's own type (RB count, sample rate, MHz).
pub use ferry_phy::Bandwidth;

/// `duplexMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplex {
    /// 0: TDD (`DLULAssign` selects the uplink/downlink configuration).
    Tdd,
    /// 1: FDD (`DLULAssign` is carried but unused).
    Fdd,
}

/// `type_mode`: modulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modulation {
    /// 1: QPSK.
    Qpsk,
    /// 2: 16QAM.
    Qam16,
    /// 3: 64QAM.
    Qam64,
}

/// What makes a warm start real beyond table 3-3: where the frame grid sits in radio sample
/// time, and the frequency offset already estimated (so the destination skips cell search
/// and CFO acquisition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmStart {
    /// `frame_start_sample`: radio sample index at which a radio frame (subframe 0) starts.
    pub frame_start_sample: u64,
    /// `SFN`: system frame number of that frame, 0..=1023.
    pub sfn: u16,
    /// `sample_rate`: radio sample rate in Hz; a whole number of samples per millisecond.
    pub sample_rate: u64,
    /// `CFO_Hz`: carrier frequency offset estimate, |CFO| ≤ 15 kHz (one subcarrier).
    pub cfo_hz: f64,
}

impl WarmStart {
    /// Samples in one 1 ms subframe.
    pub fn samples_per_subframe(&self) -> u64 {
        self.sample_rate / 1000
    }
}

/// Thesis table 3-3: the slowly-changing control state of the D2D program, validated.
///
/// Construct with [`Control::from_json`] / [`Control::from_value`] (or serde), which check
/// every field and the cross-field rules:
/// `phy_cell_ID = 3·group_ID + cell_ID`, `RBIdx` matches `BW`, transmission modes 2–6 need
/// at least 2 TX antennas.
#[derive(Debug, Clone, PartialEq)]
pub struct Control {
    /// `workmode`.
    pub workmode: WorkMode,
    /// `phy_cell_ID`, 0..=503.
    pub phy_cell_id: u16,
    /// `group_ID`, 0..=167 (the SSS group, N_ID^(1)).
    pub group_id: u8,
    /// `cell_ID`, 0..=2 (the PSS index, N_ID^(2)).
    pub cell_id: u8,
    /// `CPtype`.
    pub cp_type: CpType,
    /// `BW`.
    pub bandwidth: Bandwidth,
    /// `RBIdx`: resource blocks, equal to `bandwidth.rb_count()`.
    pub rb_count: u8,
    /// `duplexMode`.
    pub duplex: Duplex,
    /// `numAntennaTX`: 1, 2 or 4.
    pub antennas_tx: u8,
    /// `numAntennaRX`: 1, 2 or 4.
    pub antennas_rx: u8,
    /// `DLULAssign`: TDD uplink/downlink configuration 0..=6 (36.211 table 4.2-2).
    pub dl_ul_assign: u8,
    /// `trans_mode`: LTE transmission mode 1..=9 (see docs/MIGRATION.md for which apply).
    pub trans_mode: u8,
    /// `type_mode`.
    pub modulation: Modulation,
    /// `RNTI`: C-RNTI 0x003D..=0xFFF3 (36.321 table 7.1-1).
    pub rnti: u16,
    /// Warm-start timing (`frame_start_sample`, `SFN`, `sample_rate`, `CFO_Hz`): all or none.
    pub warm: Option<WarmStart>,
    /// `EARFCN` (Ferry extension; table 3-3 has no frequency field): the downlink EARFCN of
    /// the cell's carrier (36.101), 0..=262143, so the carrier migrates with the Control.
    /// Absent: the modem's default (FDD band 1 EARFCN 300; TDD the radio as initialised).
    /// Whether its band fits `duplexMode` is checked by the modem (docs/MODEM.md, FDD).
    pub earfcn: Option<u32>,
    /// `HARQ` (Ferry extension, 0 or 1, absent = 0): the link runs HARQ (stop-and-wait
    /// processes, ACK/NACK, soft combining; docs/MODEM.md "HARQ"). Every node of the link
    /// must agree; it migrates with the Control.
    pub harq: bool,
    /// `elected_master` (Ferry extension, only with `workmode` 3): the node ID (0..=255) of
    /// the master this terminal had elected when the Control was read from it, so a migrated
    /// terminal resumes its role without an election (its own ID: it is the master).
    pub elected_master: Option<u8>,
}

/// Largest E-UTRA EARFCN (36.101 table 5.7.3-1, extended range).
pub const EARFCN_MAX: u32 = 262_143;

/// Lowest valid C-RNTI (36.321 table 7.1-1).
pub const RNTI_MIN: u16 = 0x003D;
/// Highest valid C-RNTI (36.321 table 7.1-1).
pub const RNTI_MAX: u16 = 0xFFF3;
/// Largest |CFO| a warm start may carry, in Hz (one 15 kHz subcarrier).
pub const CFO_LIMIT_HZ: f64 = 15_000.0;

const CONTROL_FIELDS: [&str; 14] = [
    "workmode",
    "phy_cell_ID",
    "group_ID",
    "cell_ID",
    "CPtype",
    "BW",
    "RBIdx",
    "duplexMode",
    "numAntennaTX",
    "numAntennaRX",
    "DLULAssign",
    "trans_mode",
    "type_mode",
    "RNTI",
];
const WARM_FIELDS: [&str; 4] = ["frame_start_sample", "SFN", "sample_rate", "CFO_Hz"];

/// Field-by-field reader that records errors instead of stopping at the first one.
struct Reader<'a> {
    map: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Reader<'_> {
    fn err(&mut self, field: &str, value: Option<&Value>, allowed: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            value: value.map_or_else(|| "missing".to_string(), short_json),
            allowed: allowed.into(),
        });
    }

    /// An integer field within `lo..=hi`.
    fn int(&mut self, field: &str, lo: u64, hi: u64, allowed: &str) -> Option<u64> {
        let v = self.map.get(field);
        match v.and_then(Value::as_u64) {
            Some(n) if (lo..=hi).contains(&n) => Some(n),
            _ => {
                self.err(field, v, allowed);
                None
            }
        }
    }

    /// An integer field that must be one of `set`.
    fn one_of(&mut self, field: &str, set: &[u64], allowed: &str) -> Option<u64> {
        let v = self.map.get(field);
        match v.and_then(Value::as_u64) {
            Some(n) if set.contains(&n) => Some(n),
            _ => {
                self.err(field, v, allowed);
                None
            }
        }
    }
}

/// JSON text of a value, shortened so an error message stays readable.
fn short_json(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(37).collect();
        format!("{cut}...")
    } else {
        s
    }
}

impl Control {
    /// Parse and validate `Control` from JSON text.
    pub fn from_json(text: &str) -> Result<Control, ValidationError> {
        match serde_json::from_str::<Value>(text) {
            Ok(v) => Control::from_value(&v),
            Err(e) => Err(ValidationError {
                what: "Control",
                errors: vec![FieldError {
                    field: "Control".into(),
                    value: "(not JSON)".into(),
                    allowed: format!("a JSON object ({e})"),
                }],
            }),
        }
    }

    /// Validate `Control` from a parsed JSON value, reporting every invalid field.
    pub fn from_value(v: &Value) -> Result<Control, ValidationError> {
        let Some(map) = v.as_object() else {
            return Err(ValidationError {
                what: "Control",
                errors: vec![FieldError {
                    field: "Control".into(),
                    value: short_json(v),
                    allowed: "must be a JSON object with the table 3-3 fields".into(),
                }],
            });
        };
        let mut r = Reader {
            map,
            errors: Vec::new(),
        };
        let workmode = r
            .int(
                "workmode",
                0,
                3,
                "must be 0 (master), 1 (slave), 2 (base station) or 3 (auto: elected)",
            )
            .map(|n| match n {
                0 => WorkMode::Master,
                1 => WorkMode::Slave,
                2 => WorkMode::BaseStation,
                _ => WorkMode::Auto,
            });
        let phy = r.int("phy_cell_ID", 0, 503, "must be 0..=503");
        let group = r.int("group_ID", 0, 167, "must be 0..=167");
        let cell = r.int("cell_ID", 0, 2, "must be 0..=2");
        let cp = r
            .int("CPtype", 0, 1, "must be 0 (normal) or 1 (extended)")
            .map(|n| {
                if n == 0 {
                    CpType::Normal
                } else {
                    CpType::Extended
                }
            });
        let bw_raw = map.get("BW");
        let bw = bw_raw
            .and_then(Value::as_f64)
            .and_then(|v| Bandwidth::from_mhz(v).ok());
        if bw.is_none() {
            r.err("BW", bw_raw, "must be 1.4, 3, 5, 10, 15 or 20 (MHz)");
        }
        let rb = r.one_of(
            "RBIdx",
            &[6, 15, 25, 50, 75, 100],
            "must be 6, 15, 25, 50, 75 or 100",
        );
        let duplex = r
            .int("duplexMode", 0, 1, "must be 0 (TDD) or 1 (FDD)")
            .map(|n| if n == 0 { Duplex::Tdd } else { Duplex::Fdd });
        let tx = r.one_of("numAntennaTX", &[1, 2, 4], "must be 1, 2 or 4");
        let rx = r.one_of("numAntennaRX", &[1, 2, 4], "must be 1, 2 or 4");
        let dlul = r.int("DLULAssign", 0, 6, "must be 0..=6 (TDD configuration)");
        let tm = r.int("trans_mode", 1, 9, "must be 1..=9 (LTE transmission mode)");
        let modulation = r
            .int(
                "type_mode",
                1,
                3,
                "must be 1 (QPSK), 2 (16QAM) or 3 (64QAM)",
            )
            .map(|n| match n {
                1 => Modulation::Qpsk,
                2 => Modulation::Qam16,
                _ => Modulation::Qam64,
            });
        let rnti = r.int(
            "RNTI",
            u64::from(RNTI_MIN),
            u64::from(RNTI_MAX),
            "must be a C-RNTI 61..=65523 (0x003D..=0xFFF3)",
        );

        // Cross-field rules, only when both sides parsed (otherwise already reported).
        if let (Some(p), Some(g), Some(c)) = (phy, group, cell) {
            if p != 3 * g + c {
                r.err(
                    "phy_cell_ID",
                    map.get("phy_cell_ID"),
                    format!("must equal 3*group_ID + cell_ID = {}", 3 * g + c),
                );
            }
        }
        if let (Some(b), Some(n)) = (bw, rb) {
            if b.rb_count() as u64 != n {
                r.err(
                    "RBIdx",
                    map.get("RBIdx"),
                    format!("must be {} for BW = {} MHz", b.rb_count(), b.mhz()),
                );
            }
        }
        if let (Some(m), Some(t)) = (tm, tx) {
            if (2..=6).contains(&m) && t < 2 {
                r.err(
                    "trans_mode",
                    map.get("trans_mode"),
                    "transmission modes 2..=6 need numAntennaTX >= 2",
                );
            }
        }

        let warm = read_warm(&mut r, bw);
        let earfcn = if map.contains_key("EARFCN") {
            let n = r.int(
                "EARFCN",
                0,
                u64::from(EARFCN_MAX),
                "must be a downlink EARFCN 0..=262143 (36.101)",
            );
            // Checked above; `None` here means an error was recorded.
            n.map(|n| Some(n as u32))
        } else {
            Some(None)
        };

        let harq = if map.contains_key("HARQ") {
            r.int("HARQ", 0, 1, "must be 0 (off) or 1 (on)")
                .map(|v| v == 1)
        } else {
            Some(false)
        };

        let elected_master = if map.contains_key("elected_master") {
            let n = r.int("elected_master", 0, 255, "must be a node ID 0..=255");
            if workmode.is_some_and(|w| w != WorkMode::Auto) {
                r.err(
                    "elected_master",
                    map.get("elected_master"),
                    "only with workmode 3 (auto)",
                );
            }
            n.map(|n| Some(n as u8))
        } else {
            Some(None)
        };

        for key in map.keys() {
            if !CONTROL_FIELDS.contains(&key.as_str())
                && !WARM_FIELDS.contains(&key.as_str())
                && key != "EARFCN"
                && key != "HARQ"
                && key != "elected_master"
            {
                r.err(key, map.get(key), "unknown field");
            }
        }

        match (
            workmode, phy, group, cell, cp, bw, rb, duplex, tx, rx, dlul, tm, modulation, rnti,
        ) {
            (
                Some(workmode),
                Some(phy),
                Some(group),
                Some(cell),
                Some(cp_type),
                Some(bandwidth),
                Some(rb),
                Some(duplex),
                Some(tx),
                Some(rx),
                Some(dlul),
                Some(tm),
                Some(modulation),
                Some(rnti),
            ) if r.errors.is_empty() => Ok(Control {
                workmode,
                // Ranges were checked above, so these narrowings cannot truncate.
                phy_cell_id: phy as u16,
                group_id: group as u8,
                cell_id: cell as u8,
                cp_type,
                bandwidth,
                rb_count: rb as u8,
                duplex,
                antennas_tx: tx as u8,
                antennas_rx: rx as u8,
                dl_ul_assign: dlul as u8,
                trans_mode: tm as u8,
                modulation,
                rnti: rnti as u16,
                warm: warm.flatten(),
                earfcn: earfcn.flatten(),
                harq: harq.unwrap_or(false),
                elected_master: elected_master.flatten(),
            }),
            _ => Err(ValidationError {
                what: "Control",
                errors: r.errors,
            }),
        }
    }

    /// The JSON value with the thesis' field names (the inverse of [`Control::from_value`]).
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        let wm = match self.workmode {
            WorkMode::Master => 0,
            WorkMode::Slave => 1,
            WorkMode::BaseStation => 2,
            WorkMode::Auto => 3,
        };
        m.insert("workmode".into(), wm.into());
        m.insert("phy_cell_ID".into(), self.phy_cell_id.into());
        m.insert("group_ID".into(), self.group_id.into());
        m.insert("cell_ID".into(), self.cell_id.into());
        m.insert(
            "CPtype".into(),
            u8::from(self.cp_type == CpType::Extended).into(),
        );
        let bw: Value = match self.bandwidth {
            Bandwidth::Mhz1_4 => 1.4.into(),
            b => (b.mhz() as u64).into(),
        };
        m.insert("BW".into(), bw);
        m.insert("RBIdx".into(), self.rb_count.into());
        m.insert(
            "duplexMode".into(),
            u8::from(self.duplex == Duplex::Fdd).into(),
        );
        m.insert("numAntennaTX".into(), self.antennas_tx.into());
        m.insert("numAntennaRX".into(), self.antennas_rx.into());
        m.insert("DLULAssign".into(), self.dl_ul_assign.into());
        m.insert("trans_mode".into(), self.trans_mode.into());
        let tm = match self.modulation {
            Modulation::Qpsk => 1,
            Modulation::Qam16 => 2,
            Modulation::Qam64 => 3,
        };
        m.insert("type_mode".into(), tm.into());
        m.insert("RNTI".into(), self.rnti.into());
        if let Some(w) = &self.warm {
            m.insert("frame_start_sample".into(), w.frame_start_sample.into());
            m.insert("SFN".into(), w.sfn.into());
            m.insert("sample_rate".into(), w.sample_rate.into());
            m.insert("CFO_Hz".into(), w.cfo_hz.into());
        }
        if let Some(n) = self.earfcn {
            m.insert("EARFCN".into(), n.into());
        }
        if self.harq {
            m.insert("HARQ".into(), 1.into());
        }
        if let Some(n) = self.elected_master {
            m.insert("elected_master".into(), n.into());
        }
        Value::Object(m)
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        self.to_value().to_string()
    }
}

/// Warm-start fields: `None` if absent, `Some(None)` if present but invalid (errors recorded).
fn read_warm(r: &mut Reader<'_>, bw: Option<Bandwidth>) -> Option<Option<WarmStart>> {
    let present: Vec<&str> = WARM_FIELDS
        .iter()
        .copied()
        .filter(|f| r.map.contains_key(*f))
        .collect();
    if present.is_empty() {
        return None;
    }
    let start = r.int(
        "frame_start_sample",
        0,
        u64::MAX,
        "must be a sample index >= 0",
    );
    let sfn = r.int("SFN", 0, 1023, "must be 0..=1023");
    let rate = r.int(
        "sample_rate",
        1_000,
        200_000_000,
        "must be an integer rate in Hz, 1000..=200000000",
    );
    if let Some(rt) = rate {
        if rt % 1000 != 0 {
            r.err(
                "sample_rate",
                r.map.get("sample_rate"),
                "must be a multiple of 1000 Hz (whole samples per subframe)",
            );
        } else if let Some(b) = bw {
            if rt < (b.sample_rate_hz() as u64) {
                r.err(
                    "sample_rate",
                    r.map.get("sample_rate"),
                    format!(
                        "must be >= {} Hz for BW = {} MHz",
                        (b.sample_rate_hz() as u64),
                        b.mhz()
                    ),
                );
            }
        }
    }
    let cfo_raw = r.map.get("CFO_Hz");
    let cfo = cfo_raw
        .and_then(Value::as_f64)
        .filter(|c| c.is_finite() && c.abs() <= CFO_LIMIT_HZ);
    if cfo.is_none() {
        r.err(
            "CFO_Hz",
            cfo_raw,
            "must be a number within -15000..=15000 (Hz)",
        );
    }
    match (start, sfn, rate, cfo) {
        (Some(frame_start_sample), Some(sfn), Some(sample_rate), Some(cfo_hz))
            if sample_rate % 1000 == 0 =>
        {
            Some(Some(WarmStart {
                frame_start_sample,
                sfn: sfn as u16,
                sample_rate,
                cfo_hz,
            }))
        }
        _ => Some(None),
    }
}

impl Serialize for Control {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Control {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Control, D::Error> {
        let v = Value::deserialize(d)?;
        Control::from_value(&v).map_err(serde::de::Error::custom)
    }
}

/// One relay route: traffic for terminal `dest_id` goes to `nexthop` (thesis table 4-1;
/// terminals are identified by index, not address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    /// `destID`: the final destination terminal.
    pub dest_id: u16,
    /// `nexthop`: the terminal to hand the packet to (equal to `dest_id` when direct).
    pub nexthop: u16,
}

/// The relay's `route_list = [(destID, nexthop), ...]`, validated: at most
/// [`RouteList::MAX_ROUTES`] entries, one route per destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteList(Vec<Route>);

impl RouteList {
    /// Most routes a list may hold (far above any relay table the thesis describes).
    pub const MAX_ROUTES: usize = 4096;

    /// Build a validated list.
    pub fn new(routes: Vec<Route>) -> Result<RouteList, ValidationError> {
        let mut errors = Vec::new();
        if routes.len() > Self::MAX_ROUTES {
            errors.push(FieldError {
                field: "route_list".into(),
                value: format!("({} entries)", routes.len()),
                allowed: format!("at most {} routes", Self::MAX_ROUTES),
            });
        }
        let mut seen = BTreeSet::new();
        for (i, r) in routes.iter().enumerate() {
            if !seen.insert(r.dest_id) {
                errors.push(FieldError {
                    field: format!("route_list[{i}]"),
                    value: format!("[{}, {}]", r.dest_id, r.nexthop),
                    allowed: format!("destID {} already has a route", r.dest_id),
                });
            }
        }
        if errors.is_empty() {
            Ok(RouteList(routes))
        } else {
            Err(ValidationError {
                what: "route_list",
                errors,
            })
        }
    }

    /// The routes, in the order received.
    pub fn routes(&self) -> &[Route] {
        &self.0
    }

    /// Next hop towards `dest_id`, if routed.
    pub fn nexthop(&self, dest_id: u16) -> Option<u16> {
        self.0
            .iter()
            .find(|r| r.dest_id == dest_id)
            .map(|r| r.nexthop)
    }

    /// Parse `[[destID, nexthop], ...]`, reporting every bad entry.
    pub fn from_value(v: &Value) -> Result<RouteList, ValidationError> {
        let Some(items) = v.as_array() else {
            return Err(ValidationError {
                what: "route_list",
                errors: vec![FieldError {
                    field: "route_list".into(),
                    value: short_json(v),
                    allowed: "must be a list of [destID, nexthop] pairs".into(),
                }],
            });
        };
        let mut errors = Vec::new();
        let mut routes = Vec::with_capacity(items.len().min(RouteList::MAX_ROUTES));
        for (i, item) in items.iter().enumerate() {
            let pair = item.as_array().filter(|a| a.len() == 2);
            let ids = pair.and_then(|a| {
                let d = a.first()?.as_u64().and_then(|n| u16::try_from(n).ok())?;
                let n = a.get(1)?.as_u64().and_then(|n| u16::try_from(n).ok())?;
                Some((d, n))
            });
            match ids {
                Some((dest_id, nexthop)) => routes.push(Route { dest_id, nexthop }),
                None => errors.push(FieldError {
                    field: format!("route_list[{i}]"),
                    value: short_json(item),
                    allowed: "must be [destID, nexthop], each an index 0..=65535".into(),
                }),
            }
        }
        match RouteList::new(routes) {
            Ok(list) if errors.is_empty() => Ok(list),
            Ok(_) => Err(ValidationError {
                what: "route_list",
                errors,
            }),
            Err(mut e) => {
                errors.append(&mut e.errors);
                Err(ValidationError {
                    what: "route_list",
                    errors,
                })
            }
        }
    }

    /// `[[destID, nexthop], ...]`.
    pub fn to_value(&self) -> Value {
        Value::Array(
            self.0
                .iter()
                .map(|r| Value::Array(vec![r.dest_id.into(), r.nexthop.into()]))
                .collect(),
        )
    }
}

impl Serialize for RouteList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for RouteList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RouteList, D::Error> {
        let v = Value::deserialize(d)?;
        RouteList::from_value(&v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn sample() -> Value {
        json!({
            "workmode": 1, "phy_cell_ID": 301, "group_ID": 100, "cell_ID": 1,
            "CPtype": 0, "BW": 5, "RBIdx": 25, "duplexMode": 0,
            "numAntennaTX": 1, "numAntennaRX": 2, "DLULAssign": 1,
            "trans_mode": 1, "type_mode": 2, "RNTI": 61,
            "frame_start_sample": 7680, "SFN": 12, "sample_rate": 7680000, "CFO_Hz": -312.5
        })
    }

    #[test]
    fn valid_control_round_trips() {
        let c = Control::from_value(&sample()).expect("valid");
        assert_eq!(c.phy_cell_id, 301);
        assert_eq!(c.bandwidth, Bandwidth::Mhz5);
        assert_eq!(c.warm.map(|w| w.samples_per_subframe()), Some(7680));
        assert_eq!(c.to_value(), sample());
        let text = serde_json::to_string(&c).expect("serialises");
        let back: Control = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, c);
    }

    #[test]
    fn bw_1_4_is_accepted_and_round_trips() {
        let mut v = sample();
        v["BW"] = json!(1.4);
        v["RBIdx"] = json!(6);
        v["sample_rate"] = json!(1_920_000);
        let c = Control::from_value(&v).expect("valid");
        assert_eq!(c.bandwidth, Bandwidth::Mhz1_4);
        assert_eq!(c.to_value(), v);
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let mut v = sample();
        v["phy_cell_ID"] = json!(504);
        v["BW"] = json!(7);
        v["RNTI"] = json!(0);
        v["numAntennaTX"] = json!(3);
        v["bogus"] = json!(true);
        let e = Control::from_value(&v).expect_err("invalid");
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["phy_cell_ID", "BW", "numAntennaTX", "RNTI", "bogus"]
        );
        let first = e.errors.first().map(ToString::to_string);
        assert_eq!(first.as_deref(), Some("phy_cell_ID = 504: must be 0..=503"));
    }

    #[test]
    fn cross_field_rules() {
        let mut v = sample();
        v["phy_cell_ID"] = json!(302);
        v["RBIdx"] = json!(50);
        v["trans_mode"] = json!(3);
        let e = Control::from_value(&v).expect_err("invalid");
        let msgs: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "phy_cell_ID = 302: must equal 3*group_ID + cell_ID = 301",
                "RBIdx = 50: must be 25 for BW = 5 MHz",
                "trans_mode = 3: transmission modes 2..=6 need numAntennaTX >= 2",
            ]
        );
    }

    #[test]
    fn harq_is_optional_validated_and_round_trips() {
        assert_eq!(Control::from_value(&sample()).map(|c| c.harq), Ok(false));
        let mut v = sample();
        v["HARQ"] = json!(1);
        let c = Control::from_value(&v).unwrap();
        assert!(c.harq);
        assert_eq!(Control::from_value(&c.to_value()), Ok(c.clone()));
        assert!(c.to_value().get("HARQ").is_some());
        v["HARQ"] = json!(2);
        let e = Control::from_value(&v).unwrap_err();
        assert!(
            e.errors
                .iter()
                .any(|m| m.to_string().starts_with("HARQ = ")),
            "{e:?}"
        );
        // Off is the default and is not written out (the thesis' Control stays as it was).
        let off = Control::from_value(&sample()).unwrap();
        assert!(off.to_value().get("HARQ").is_none());
    }

    #[test]
    fn earfcn_is_optional_validated_and_round_trips() {
        assert_eq!(Control::from_value(&sample()).map(|c| c.earfcn), Ok(None));
        let mut v = sample();
        v["duplexMode"] = json!(1);
        v["EARFCN"] = json!(300);
        let c = Control::from_value(&v).expect("valid");
        assert_eq!(c.earfcn, Some(300));
        assert_eq!(c.to_value(), v);
        for bad in [json!(262_144), json!(-1), json!("300"), json!(1.5)] {
            v["EARFCN"] = bad;
            let e = Control::from_value(&v).expect_err("invalid");
            let msgs: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
            assert_eq!(msgs.len(), 1, "{msgs:?}");
            assert!(
                msgs[0].starts_with("EARFCN = ") && msgs[0].contains("0..=262143"),
                "{msgs:?}"
            );
        }
    }

    #[test]
    fn auto_workmode_and_elected_master_round_trip() {
        let mut v = sample();
        v["workmode"] = json!(3);
        v["elected_master"] = json!(9);
        let c = Control::from_value(&v).expect("valid");
        assert_eq!(c.workmode, WorkMode::Auto);
        assert_eq!(c.elected_master, Some(9));
        assert_eq!(c.to_value(), v);
        v["elected_master"] = json!(256);
        assert!(Control::from_value(&v).is_err());
        // Only an elected terminal has an elected master.
        v["elected_master"] = json!(9);
        v["workmode"] = json!(1);
        let e = Control::from_value(&v).expect_err("invalid");
        assert!(e.to_string().contains("only with workmode 3"), "{e}");
        v["workmode"] = json!(4);
        assert!(Control::from_value(&v).is_err());
    }

    #[test]
    fn missing_and_partial_warm_fields() {
        let mut v = sample();
        if let Some(m) = v.as_object_mut() {
            m.remove("RNTI");
            m.remove("SFN");
        }
        let e = Control::from_value(&v).expect_err("invalid");
        let msgs: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            [
                "RNTI = missing: must be a C-RNTI 61..=65523 (0x003D..=0xFFF3)",
                "SFN = missing: must be 0..=1023"
            ]
        );
        // Without any warm field the Control is a cold one.
        let mut cold = sample();
        if let Some(m) = cold.as_object_mut() {
            for f in WARM_FIELDS {
                m.remove(f);
            }
        }
        assert_eq!(Control::from_value(&cold).map(|c| c.warm), Ok(None));
    }

    #[test]
    fn sample_rate_must_fit_bandwidth_and_grid() {
        let mut v = sample();
        v["sample_rate"] = json!(1_920_500);
        let e = Control::from_value(&v).expect_err("invalid");
        assert_eq!(e.errors.len(), 1);
        v["sample_rate"] = json!(1_920_000);
        let e = Control::from_value(&v).expect_err("invalid");
        assert_eq!(
            e.errors.first().map(|f| f.allowed.clone()).as_deref(),
            Some("must be >= 7680000 Hz for BW = 5 MHz")
        );
    }

    #[test]
    fn route_list_parses_and_rejects() {
        let ok = RouteList::from_value(&json!([[3, 2], [4, 4]])).expect("valid");
        assert_eq!(ok.nexthop(3), Some(2));
        assert_eq!(ok.to_value(), json!([[3, 2], [4, 4]]));
        let e = RouteList::from_value(&json!([[3, 2], [3, 4], [1], [70000, 1], "x"]))
            .expect_err("invalid");
        let fields: Vec<&str> = e.errors.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "route_list[2]",
                "route_list[3]",
                "route_list[4]",
                "route_list[1]"
            ]
        );
    }
}
