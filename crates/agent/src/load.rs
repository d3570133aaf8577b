//! A modem's measured CPU load, from the kernel's own accounting: `utime + stime` of
//! `/proc/PID/stat` (every thread of the process), sampled twice → cores used between the
//! samples. The pool's per-server reporter (`ferry pool register --slot …`) turns it into
//! each cell's `demand_cores` in etcd, so the scheduler acts on measured load.

use std::time::Instant;

/// `utime + stime` in clock ticks from the text of `/proc/PID/stat`; `None` if malformed.
/// The command name (field 2) may hold spaces and parentheses: fields are counted after the
/// last `)`.
pub fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15 (proc(5)).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU seconds used so far by process `pid` (`None`: gone or unreadable).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_stat_ticks(&text)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

/// Cores used by one process between successive samples.
#[derive(Debug, Default)]
pub struct CpuMeter {
    last: Option<(u32, f64, Instant)>,
}

impl CpuMeter {
    /// Takes a sample of `pid`; the cores it used since the previous sample of the same
    /// process (`None` on the first sample, after the process changed, or if unreadable).
    pub fn sample(&mut self, pid: u32) -> Option<f64> {
        let now = Instant::now();
        let cpu = cpu_seconds(pid)?;
        let previous = self.last.replace((pid, cpu, now));
        match previous {
            Some((p, c, t)) if p == pid => {
                let wall = now.duration_since(t).as_secs_f64();
                (wall > 0.0).then(|| ((cpu - c) / wall).max(0.0))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_are_utime_plus_stime_even_with_odd_names() {
        let stat = "4242 (ferry (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 56 0 0 20 0 \
                    9 0 100 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(1290));
        assert_eq!(parse_stat_ticks("garbage"), None);
        assert_eq!(parse_stat_ticks("1 (a) S 1 2"), None);
    }

    #[test]
    fn a_busy_process_measures_more_than_nothing() {
        let me = std::process::id();
        let mut m = CpuMeter::default();
        assert_eq!(m.sample(me), None);
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 200 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let cores = m.sample(me).expect("second sample");
        assert!(cores > 0.0, "{cores}");
        assert!(cpu_seconds(u32::MAX).is_none());
    }
}
