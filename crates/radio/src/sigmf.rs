//! SigMF capture files (`.sigmf-meta` JSON + `.sigmf-data` samples, `ci16_le` or `cf32_le`)
//! of a radio's RX or TX, readable by GNU Radio, inspectrum and the SigMF tools.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_fronthaul::control::CaptureFormat;
use ferry_fronthaul::vrt::{cf32_to_sc16, SampleTime};
use num_complex::Complex32;
use serde_json::json;

/// Streams samples into a SigMF recording.
#[derive(Debug)]
pub struct SigMfWriter {
    data: BufWriter<File>,
    meta_file: File,
    format: CaptureFormat,
    meta: serde_json::Value,
    written: u64,
}

/// Create a new file for writing, never following a symlink and never reusing an existing
/// file (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600): a planted link or file makes this fail.
pub fn create_exclusive(path: &Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW).mode(0o600);
    }
    o.open(path)
}

fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(ext);
    PathBuf::from(s)
}

/// ISO 8601 UTC time (`2026-11-30T01:02:03.456Z`) of a system time.
pub fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

impl SigMfWriter {
    /// Creates `base.sigmf-data` and `base.sigmf-meta` for a recording that starts at radio
    /// sample time `start` (kept as `ferry:sample_time`) and wall-clock time `datetime`.
    pub fn create(
        base: &Path,
        format: CaptureFormat,
        rate_hz: u32,
        freq_hz: f64,
        start: SampleTime,
        datetime: SystemTime,
        description: &str,
    ) -> io::Result<Self> {
        let datatype = match format {
            CaptureFormat::Ci16Le => "ci16_le",
            CaptureFormat::Cf32Le => "cf32_le",
        };
        let meta = json!({
            "global": {
                "core:datatype": datatype,
                "core:sample_rate": rate_hz,
                "core:version": "1.0.0",
                "core:description": description,
                "core:recorder": "ferry air",
                "core:hw": "emulated USRP N210 + WBX",
            },
            "captures": [{
                "core:sample_start": 0,
                "core:frequency": freq_hz,
                "core:datetime": iso8601(datetime),
                "ferry:sample_time": start,
            }],
            "annotations": [],
        });
        let meta_file = create_exclusive(&with_ext(base, ".sigmf-meta"))?;
        let data = BufWriter::new(create_exclusive(&with_ext(base, ".sigmf-data"))?);
        let mut w = Self {
            data,
            meta_file,
            format,
            meta,
            written: 0,
        };
        w.write_meta()?;
        Ok(w)
    }

    fn write_meta(&mut self) -> io::Result<()> {
        use std::io::Seek;
        let text = serde_json::to_string_pretty(&self.meta).map_err(io::Error::other)?;
        // Through the handle opened at create: the path is never looked up again.
        self.meta_file.set_len(0)?;
        self.meta_file.seek(io::SeekFrom::Start(0))?;
        self.meta_file.write_all(text.as_bytes())
    }

    /// Appends samples.
    pub fn write(&mut self, samples: &[Complex32]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(samples.len() * 8);
        for &s in samples {
            match self.format {
                CaptureFormat::Ci16Le => {
                    let ((i, q), _) = cf32_to_sc16(s);
                    buf.extend_from_slice(&i.to_le_bytes());
                    buf.extend_from_slice(&q.to_le_bytes());
                }
                CaptureFormat::Cf32Le => {
                    buf.extend_from_slice(&s.re.to_le_bytes());
                    buf.extend_from_slice(&s.im.to_le_bytes());
                }
            }
        }
        self.written += samples.len() as u64;
        self.data.write_all(&buf)
    }

    /// Flushes the data and rewrites the metadata; returns the sample count.
    pub fn finish(mut self) -> io::Result<u64> {
        self.data.flush()?;
        if let Some(g) = self.meta.get_mut("global") {
            g["ferry:samples"] = json!(self.written);
        }
        self.write_meta()?;
        Ok(self.written)
    }
}

/// Reads a recording back: its metadata and samples (for tests and tools).
pub fn read(base: &Path) -> io::Result<(serde_json::Value, Vec<Complex32>)> {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(with_ext(base, ".sigmf-meta"))?)
            .map_err(io::Error::other)?;
    let mut raw = Vec::new();
    File::open(with_ext(base, ".sigmf-data"))?.read_to_end(&mut raw)?;
    let dt = meta["global"]["core:datatype"].as_str().unwrap_or("");
    let samples = match dt {
        "ci16_le" => raw
            .chunks_exact(4)
            .map(|c| {
                ferry_fronthaul::vrt::sc16_to_cf32(
                    i16::from_le_bytes([c[0], c[1]]),
                    i16::from_le_bytes([c[2], c[3]]),
                )
            })
            .collect(),
        "cf32_le" => raw
            .chunks_exact(8)
            .map(|c| {
                Complex32::new(
                    f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                    f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect(),
        other => {
            return Err(io::Error::other(format!(
                "unsupported SigMF datatype {other:?}"
            )));
        }
    };
    Ok((meta, samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_709_210_096_789);
        assert_eq!(iso8601(t), "2024-02-29T12:34:56.789Z");
    }

    #[test]
    fn both_formats_roundtrip() {
        let dir = std::env::temp_dir().join(format!("ferry-sigmf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s: Vec<_> = (0..100)
            .map(|k| Complex32::new(k as f32 / 32768.0, -(k as f32) / 32768.0))
            .collect();
        for (f, name) in [
            (CaptureFormat::Ci16Le, "ci16_le"),
            (CaptureFormat::Cf32Le, "cf32_le"),
        ] {
            let base = dir.join(name);
            let mut w = SigMfWriter::create(&base, f, 1_920_000, 1.9e9, 42, SystemTime::now(), "t")
                .unwrap();
            w.write(&s[..60]).unwrap();
            w.write(&s[60..]).unwrap();
            assert_eq!(w.finish().unwrap(), 100);
            let (meta, back) = read(&base).unwrap();
            assert_eq!(meta["global"]["core:datatype"], name);
            assert_eq!(meta["global"]["core:sample_rate"], 1_920_000);
            assert_eq!(meta["captures"][0]["core:frequency"], 1.9e9);
            assert_eq!(meta["captures"][0]["ferry:sample_time"], 42);
            assert!(meta["captures"][0]["core:datetime"]
                .as_str()
                .unwrap()
                .ends_with('Z'));
            assert_eq!(back, s);
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
