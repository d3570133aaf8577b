//! Seeded link-level simulations shared by the tests, the benches and `ferry phy`: BLER of
//! encode → channel → decode, and cell-search trials. Deterministic for a given seed.

use crate::cellsearch::{CellSearcher, DuplexKind};
use crate::channel::{Channel, ChannelParams, Fading, FadingChannel};
use crate::mimo::{MimoDecoder, MimoEncoder};
use crate::numerology::{Bandwidth, CellId, CyclicPrefix, Duplex};
use crate::subframe::{SubframeConfig, SubframeDecoder, SubframeEncoder};
use crate::{PhyError, Result};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Impairments of a loopback run besides the noise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Impairments {
    /// Residual CFO (Hz) left after synchronisation.
    pub cfo_hz: f64,
    /// Timing offset (samples, ≥ 0, at most half the CP) of the received subframes.
    pub delay_samples: f64,
}

impl Impairments {
    /// What a tracking receiver leaves: 80 Hz residual CFO and a timing offset of 0.26 of
    /// the normal CP (9.4 samples at 5 MHz, 2.35 at 1.4 MHz, 37.6 at 20 MHz).
    pub fn typical(bw: Bandwidth) -> Self {
        Impairments {
            cfo_hz: 80.0,
            delay_samples: 9.4 * bw.fft_size() as f64 / 512.0,
        }
    }
}

/// Extra channel delay the receiver skips, so the fractional-delay filter (which needs a
/// few samples of delay itself) can realise any small timing offset exactly.
const SKIP: usize = 8;

/// One point of a BLER curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlerPoint {
    /// Es/N0 per RE set in the channel (dB).
    pub snr_db: f64,
    /// Subframes decoded.
    pub subframes: usize,
    /// Subframes whose transport block failed its CRC.
    pub block_errors: usize,
    /// Mean SNR estimated by the receiver (dB).
    pub est_snr_db: f32,
    /// Mean EVM estimated by the receiver (fraction).
    pub evm_rms: f32,
    /// Mean turbo iterations per subframe.
    pub mean_iterations: f32,
    /// Mean transport-block size (bytes).
    pub mean_tb_bytes: f32,
}

impl BlerPoint {
    /// Block error ratio.
    pub fn bler(&self) -> f64 {
        self.block_errors as f64 / self.subframes.max(1) as f64
    }
}

/// Sends `subframes` random transport blocks (the largest at `code_rate` in each subframe,
/// subframes 0..9 in turn) through a seeded channel at `snr_db` and decodes them.
pub fn bler_point(
    cfg: SubframeConfig,
    snr_db: f64,
    subframes: usize,
    code_rate: f64,
    imp: Impairments,
    seed: u64,
) -> Result<BlerPoint> {
    if imp.delay_samples.is_nan() || imp.delay_samples < 0.0 {
        return Err(PhyError::invalid("delay_samples", imp.delay_samples, "≥ 0"));
    }
    let mut enc = SubframeEncoder::new(cfg)?;
    let mut dec = SubframeDecoder::new(cfg)?;
    let len = cfg.samples_per_subframe();
    let params = ChannelParams {
        sample_rate_hz: cfg.bandwidth.sample_rate_hz(),
        snr_db: Some(snr_db),
        cfo_hz: imp.cfo_hz,
        delay_samples: imp.delay_samples + SKIP as f64,
        gain: Complex32::from_polar(2.0, 0.7),
    };
    let mut ch = Channel::new(params, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_1e55);
    let mut tx = vec![Complex32::new(0.0, 0.0); len];
    let mut rx = Vec::new();
    let mut stream: Vec<Complex32> = Vec::with_capacity(3 * len);
    let mut sent: std::collections::VecDeque<(usize, Vec<u8>)> = Default::default();
    let mut p = BlerPoint {
        snr_db,
        subframes,
        block_errors: 0,
        est_snr_db: 0.0,
        evm_rms: 0.0,
        mean_iterations: 0.0,
        mean_tb_bytes: 0.0,
    };
    // The receiver cuts subframes at the nominal boundaries of a stream that arrives
    // `delay_samples` late (after skipping SKIP samples): the timing offset the decoder sees.
    let mut skipped = false;
    let mut i = 0;
    let mut decoded = 0;
    while decoded < subframes {
        let sf = i % 10;
        let cap = cfg.capacity(sf, code_rate)?;
        if cap.max_tb_bytes == 0 {
            return Err(PhyError::invalid(
                "code_rate",
                code_rate,
                "large enough for 1 byte",
            ));
        }
        let tb: Vec<u8> = (0..cap.max_tb_bytes).map(|_| rng.random()).collect();
        enc.encode(sf, &tb, &mut tx)?;
        ch.process(&tx, &mut rx);
        stream.extend_from_slice(&rx);
        if !skipped {
            stream.drain(..SKIP);
            skipped = true;
        }
        sent.push_back((sf, tb));
        i += 1;
        while stream.len() >= len && decoded < subframes {
            let Some((sf, tb)) = sent.pop_front() else {
                break;
            };
            let r = dec.decode(sf, &stream[..len], tb.len())?;
            stream.drain(..len);
            decoded += 1;
            p.est_snr_db += r.quality.snr_db;
            p.evm_rms += r.quality.evm_rms;
            p.mean_iterations += r.iterations as f32;
            p.mean_tb_bytes += tb.len() as f32;
            if r.payload.as_deref() != Some(&tb[..]) {
                p.block_errors += 1;
            }
        }
    }
    let n = subframes.max(1) as f32;
    p.est_snr_db /= n;
    p.evm_rms /= n;
    p.mean_iterations /= n;
    p.mean_tb_bytes /= n;
    Ok(p)
}

/// Sends `subframes` random transport blocks (the largest at `code_rate` in each subframe,
/// subframes 0..9 in turn) from `cfg.num_antenna_tx` antennas (SFBC with two) through a
/// seeded flat block-fading channel (one Rayleigh draw per link per subframe, or `fixed`
/// gains) at a mean Es/N0 of `snr_db` per receive antenna, and decodes them on
/// `cfg.num_antenna_rx` antennas. Subframes arrive time-aligned (no CFO, no delay).
pub fn mimo_bler_point(
    cfg: SubframeConfig,
    fading: Fading,
    snr_db: f64,
    subframes: usize,
    code_rate: f64,
    seed: u64,
) -> Result<BlerPoint> {
    let mut enc = MimoEncoder::new(cfg)?;
    let mut dec = MimoDecoder::new(cfg)?;
    let (n_tx, n_rx) = dec.antennas();
    let mut ch = FadingChannel::new(n_tx, n_rx, fading, Some(snr_db), seed)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_1e55);
    let mut tx = vec![vec![Complex32::new(0.0, 0.0); cfg.samples_per_subframe()]; n_tx];
    let mut rx = Vec::new();
    let mut p = BlerPoint {
        snr_db,
        subframes,
        block_errors: 0,
        est_snr_db: 0.0,
        evm_rms: 0.0,
        mean_iterations: 0.0,
        mean_tb_bytes: 0.0,
    };
    for i in 0..subframes {
        let sf = i % 10;
        let tb_bytes = enc.max_tb_bytes(sf, code_rate);
        if tb_bytes == 0 {
            return Err(PhyError::invalid(
                "code_rate",
                code_rate,
                "large enough for 1 byte",
            ));
        }
        let tb: Vec<u8> = (0..tb_bytes).map(|_| rng.random()).collect();
        enc.encode(sf, &tb, &mut tx)?;
        ch.process(&tx, &mut rx)?;
        let r = dec.decode(sf, &rx, tb.len())?;
        p.est_snr_db += r.quality.snr_db;
        p.evm_rms += r.quality.evm_rms;
        p.mean_iterations += r.iterations as f32;
        p.mean_tb_bytes += tb.len() as f32;
        if r.payload.as_deref() != Some(&tb[..]) {
            p.block_errors += 1;
        }
    }
    let n = subframes.max(1) as f32;
    p.est_snr_db /= n;
    p.evm_rms /= n;
    p.mean_iterations /= n;
    p.mean_tb_bytes /= n;
    Ok(p)
}

/// The SNR (dB) where a BLER curve first falls to `target`: points sorted by SNR, the
/// crossing interpolated linearly in log10(BLER) (BLER 0 taken as 1e-4). `None` when the
/// curve never reaches the target, or starts below it (the crossing is outside the range).
pub fn snr_at_bler(points: &[BlerPoint], target: f64) -> Option<f64> {
    let lg = |b: f64| b.max(1e-4).log10();
    let first = points.first()?;
    if first.bler() <= target {
        return None;
    }
    points.windows(2).find_map(|w| {
        let (a, b) = (&w[0], &w[1]);
        if a.bler() > target && b.bler() <= target {
            let t = (lg(a.bler()) - lg(target)) / (lg(a.bler()) - lg(b.bler()));
            Some(a.snr_db + t.clamp(0.0, 1.0) * (b.snr_db - a.snr_db))
        } else {
            None
        }
    })
}

/// Outcome of one cell-search trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchTrial {
    /// The cell that was transmitted.
    pub pci: u16,
    /// Its CP type (0 normal, 1 extended).
    pub cp_type: u8,
    /// The CFO applied (Hz).
    pub cfo_hz: f64,
    /// PCI, CP, frame start and CFO right (see [`judge`]).
    pub correct: bool,
    /// Frame-start error (samples at the input rate), when found.
    pub timing_error: Option<f64>,
    /// CFO error (Hz), when found.
    pub cfo_error_hz: Option<f64>,
}

/// What was transmitted in a simulated capture.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CaptureTruth {
    /// The cell's PCI.
    pub pci: u16,
    /// Its CP type (0 normal, 1 extended).
    pub cp_type: u8,
    /// The CFO applied (Hz).
    pub cfo_hz: f64,
    /// Where frames start in the capture (samples, fractional).
    pub frame_start: f64,
}

/// Builds a fully loaded cell with a random PCI and CP and captures
/// `searcher.required_samples()` of it at a random point through AWGN at `snr_db`,
/// `cfo_hz`, a random fractional delay and a random complex gain.
pub fn cellsearch_capture(
    searcher: &CellSearcher,
    duplex: Duplex,
    cfo_hz: f64,
    snr_db: f64,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<Complex32>, CaptureTruth)> {
    let bw = searcher.bandwidth();
    let pci = rng.random_range(0..504u16);
    let cp = if rng.random::<bool>() {
        CyclicPrefix::Normal
    } else {
        CyclicPrefix::Extended
    };
    let cfg = SubframeConfig::new(
        bw,
        cp,
        duplex,
        CellId::new(pci)?,
        1,
        crate::Modulation::Qpsk,
    );
    let mut enc = SubframeEncoder::new(cfg)?;
    let frame = bw.samples_per_frame();
    let sf_len = bw.samples_per_subframe();
    let off = rng.random_range(0..frame);
    let need = searcher.required_samples();
    let n_sf = (off + need + 64).div_ceil(sf_len);
    let mut tx = vec![Complex32::new(0.0, 0.0); n_sf * sf_len];
    let seed0: u32 = rng.random();
    for (i, chunk) in tx.chunks_mut(sf_len).enumerate() {
        enc.encode_random_load(i % 10, seed0.wrapping_add(i as u32) & 0x7fff_ffff, chunk)?;
    }
    let params = ChannelParams {
        sample_rate_hz: bw.sample_rate_hz(),
        snr_db: Some(snr_db),
        cfo_hz,
        delay_samples: 7.0 + rng.random_range(0.0..30.0f64),
        gain: Complex32::from_polar(0.3, rng.random_range(0.0..std::f32::consts::TAU)),
    };
    let mut ch = Channel::new(params, rng.random());
    let mut rx = Vec::new();
    ch.process(&tx, &mut rx);
    rx.drain(..off);
    rx.truncate(need);
    let truth = CaptureTruth {
        pci,
        cp_type: cp.cp_type(),
        cfo_hz,
        frame_start: (ch.applied_delay() - off as f64).rem_euclid(frame as f64),
    };
    Ok((rx, truth))
}

/// Judges a search result against the truth: PCI, CP, frame start (within 2 samples at
/// 1.92 Msps, scaled to the input rate) and CFO (within 100 Hz) all right.
pub fn judge(
    searcher: &CellSearcher,
    truth: &CaptureTruth,
    found: Option<&crate::cellsearch::CellSearchResult>,
) -> SearchTrial {
    let bw = searcher.bandwidth();
    let frame = bw.samples_per_frame() as f64;
    let tol = (bw.fft_size() / 128 * 2) as f64 + 1.0;
    let (correct, timing_error, cfo_error_hz) = match found {
        None => (false, None, None),
        Some(r) => {
            let mut terr = r.frame_start as f64 - truth.frame_start;
            if terr > frame / 2.0 {
                terr -= frame;
            } else if terr < -frame / 2.0 {
                terr += frame;
            }
            let cerr = r.cfo_hz - truth.cfo_hz;
            let ok = r.cell.pci() == truth.pci
                && r.cp.cp_type() == truth.cp_type
                && terr.abs() <= tol
                && cerr.abs() < 100.0;
            (ok, Some(terr), Some(cerr))
        }
    };
    SearchTrial {
        pci: truth.pci,
        cp_type: truth.cp_type,
        cfo_hz: truth.cfo_hz,
        correct,
        timing_error,
        cfo_error_hz,
    }
}

/// One trial: [`cellsearch_capture`], search, [`judge`].
pub fn cellsearch_trial(
    searcher: &CellSearcher,
    duplex: Duplex,
    cfo_hz: f64,
    snr_db: f64,
    rng: &mut ChaCha8Rng,
) -> Result<SearchTrial> {
    let (capture, truth) = cellsearch_capture(searcher, duplex, cfo_hz, snr_db, rng)?;
    let found = searcher.search(&capture)?;
    Ok(judge(searcher, &truth, found.as_ref()))
}

/// The searcher's frame structure for a duplex mode.
pub fn duplex_kind(d: Duplex) -> DuplexKind {
    if d.is_tdd() {
        DuplexKind::Tdd
    } else {
        DuplexKind::Fdd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(snr_db: f64, errors: usize) -> BlerPoint {
        BlerPoint {
            snr_db,
            subframes: 100,
            block_errors: errors,
            est_snr_db: 0.0,
            evm_rms: 0.0,
            mean_iterations: 0.0,
            mean_tb_bytes: 0.0,
        }
    }

    #[test]
    fn ten_percent_crossing_is_interpolated_in_log_bler() {
        let curve = [pt(0.0, 100), pt(2.0, 100), pt(4.0, 100), pt(6.0, 1)];
        // 1.0 at 4 dB (log 0) to 0.01 at 6 dB (log −2): 0.1 (log −1) half way.
        assert_eq!(snr_at_bler(&curve, 0.1), Some(5.0));
        assert_eq!(snr_at_bler(&[pt(0.0, 50), pt(1.0, 10)], 0.1), Some(1.0));
        assert_eq!(
            snr_at_bler(&[pt(0.0, 5), pt(1.0, 1)], 0.1),
            None,
            "starts below"
        );
        assert_eq!(
            snr_at_bler(&[pt(0.0, 90), pt(1.0, 50)], 0.1),
            None,
            "never reaches"
        );
        assert_eq!(snr_at_bler(&[], 0.1), None);
    }
}
