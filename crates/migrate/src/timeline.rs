//! Migration timeline: named phases with start and duration in ms (thesis table 3-4 rows for
//! the legacy method, Ferry's own phases for make-before-break), rendered as a text table or
//! JSON.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// Table 3-4 row: get local tun ip, set destination tun ip.
pub const PHASE_TUN_IP: &str = "get local tun ip, set destination tun ip";
/// Table 3-4 row: send Control, start D2D on destination.
pub const PHASE_START_D2D: &str = "send Control, start D2D on destination";
/// Table 3-4 row: create USRP object.
pub const PHASE_MAKE_USRP: &str = "create USRP object";
/// Table 3-4 row: change eth3 address (Ferry counts the source's process kills here too).
pub const PHASE_ETH3: &str = "change eth3 address";
/// Table 3-4 row: link USRP object to the device.
pub const PHASE_LINK: &str = "link USRP object to the device";
/// Table 3-4 row: signal-processing resynchronisation.
pub const PHASE_RESYNC: &str = "signal-processing resynchronisation";
/// Chapter 4: collect and send the route list.
pub const PHASE_ROUTES: &str = "collect route list, set_route on destination";

/// One phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// What happened.
    pub name: String,
    /// Start, ms after the timeline began.
    pub start_ms: u64,
    /// Duration in ms.
    pub duration_ms: u64,
    /// Whether the phase completed successfully.
    pub ok: bool,
    /// Whether traffic is interrupted during this phase (legacy: eth3 change, link, resync).
    pub interrupts_service: bool,
}

/// A timeline being recorded or finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeline {
    /// What was timed (`M`, `MB`, `mbb out`, ...).
    pub label: String,
    /// Absolute start time in the caller's ms clock.
    pub started_at_ms: u64,
    /// Phases in order.
    pub phases: Vec<Phase>,
    /// Total duration once finished.
    pub total_ms: Option<u64>,
    /// Sum of the durations of phases that interrupt service.
    pub interruption_ms: u64,
    /// Make-before-break: the margin T was placed with, ms (from the measured round trips).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_ms: Option<u64>,
    #[serde(skip)]
    open: Option<(String, u64, bool)>,
}

impl Timeline {
    /// Start timing at `now_ms`.
    pub fn new(label: impl Into<String>, now_ms: u64) -> Timeline {
        Timeline {
            label: label.into(),
            started_at_ms: now_ms,
            phases: Vec::new(),
            total_ms: None,
            interruption_ms: 0,
            margin_ms: None,
            open: None,
        }
    }

    /// Begin a phase at `now_ms`, closing the previous one as successful.
    pub fn begin(&mut self, now_ms: u64, name: &str, interrupts_service: bool) {
        self.close(now_ms, true);
        self.open = Some((name.to_string(), now_ms, interrupts_service));
    }

    /// Close the open phase, if any, with the given success.
    pub fn close(&mut self, now_ms: u64, ok: bool) {
        if let Some((name, start, interrupts)) = self.open.take() {
            let duration_ms = now_ms.saturating_sub(start);
            if interrupts {
                self.interruption_ms += duration_ms;
            }
            self.phases.push(Phase {
                name,
                start_ms: start.saturating_sub(self.started_at_ms),
                duration_ms,
                ok,
                interrupts_service: interrupts,
            });
        }
    }

    /// Name of the phase in progress.
    pub fn current(&self) -> Option<&str> {
        self.open.as_ref().map(|(n, _, _)| n.as_str())
    }

    /// Close the open phase with `ok` and fix the total.
    pub fn finish(&mut self, now_ms: u64, ok: bool) {
        self.close(now_ms, ok);
        self.total_ms = Some(now_ms.saturating_sub(self.started_at_ms));
    }

    /// Duration of the first phase named `name`.
    pub fn duration_of(&self, name: &str) -> Option<u64> {
        self.phases
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.duration_ms)
    }

    /// A text table in the style of thesis table 3-4.
    pub fn render_table(&self) -> String {
        let width = self
            .phases
            .iter()
            .map(|p| p.name.chars().count())
            .chain([32])
            .max()
            .unwrap_or(32);
        let mut s = String::new();
        let _ = writeln!(s, "timeline: {}", self.label);
        let _ = writeln!(
            s,
            "{:<width$}  {:>8}  {:>8}  note",
            "phase", "start ms", "ms"
        );
        let _ = writeln!(s, "{}", "-".repeat(width + 26));
        for p in &self.phases {
            let mut note = String::new();
            if !p.ok {
                note.push_str("FAILED ");
            }
            if p.interrupts_service {
                note.push_str("interrupts service");
            }
            let _ = writeln!(
                s,
                "{:<width$}  {:>8}  {:>8}  {}",
                p.name,
                p.start_ms,
                p.duration_ms,
                note.trim_end()
            );
        }
        let _ = writeln!(s, "{}", "-".repeat(width + 26));
        match self.total_ms {
            Some(t) => {
                let _ = writeln!(s, "{:<width$}  {:>8}  {:>8}", "total migration", "", t);
            }
            None => {
                let _ = writeln!(
                    s,
                    "{:<width$}  {:>8}  {:>8}",
                    "total migration", "", "running"
                );
            }
        }
        let _ = writeln!(
            s,
            "{:<width$}  {:>8}  {:>8}",
            "service interruption (phases)", "", self.interruption_ms
        );
        s
    }

    /// JSON text (the same data as the table).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_table_3_4_arithmetic() {
        let mut t = Timeline::new("M", 1_000);
        let rows = [
            (PHASE_TUN_IP, 6, false),
            (PHASE_START_D2D, 53, false),
            (PHASE_MAKE_USRP, 55, false),
            (PHASE_ETH3, 6, true),
            (PHASE_LINK, 1743, true),
            (PHASE_RESYNC, 106, true),
        ];
        let mut now = 1_000;
        for (name, ms, intr) in rows {
            t.begin(now, name, intr);
            now += ms;
        }
        t.finish(now, true);
        assert_eq!(t.total_ms, Some(1969));
        assert_eq!(t.interruption_ms, 1855);
        assert_eq!(t.duration_of(PHASE_LINK), Some(1743));
        assert_eq!(t.phases.get(4).map(|p| p.start_ms), Some(120));
        let table = t.render_table();
        assert!(table.contains("link USRP object to the device"));
        assert!(table
            .lines()
            .any(|l| l.starts_with("total migration") && l.ends_with("1969")));
        let back: Timeline = serde_json::from_str(&t.to_json()).expect("json");
        assert_eq!(back.phases, t.phases);
    }

    #[test]
    fn failed_phase_is_marked() {
        let mut t = Timeline::new("DS", 0);
        t.begin(0, "set eth3", false);
        t.finish(5, false);
        assert_eq!(t.phases.first().map(|p| p.ok), Some(false));
        assert!(t.render_table().contains("FAILED"));
    }
}
