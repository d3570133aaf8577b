//! `ferry phy`: physical-layer tools — the numerology tables, loopback BLER curves through
//! the seeded channel model, two-antenna BLER curves over fading, and cell-search success
//! rate and cost.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ferry_phy::cellsearch::CellSearcher;
use ferry_phy::channel::Fading;
use ferry_phy::numerology::{dwpts_symbols, SubframeLayout};
use ferry_phy::sim::{
    bler_point, cellsearch_capture, duplex_kind, judge, mimo_bler_point, snr_at_bler, BlerPoint,
    Impairments,
};
use ferry_phy::{Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, TddConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// Arguments of `ferry phy`.
#[derive(Args)]
pub struct PhyArgs {
    #[command(subcommand)]
    command: PhyCommand,
}

#[derive(Subcommand)]
enum PhyCommand {
    /// Print bandwidths, FFT sizes, sample rates, CP lengths and the TDD table.
    Numerology,
    /// Loopback BLER curve: encode → AWGN + residual CFO + timing offset → decode.
    Bler(BlerArgs),
    /// Two-antenna BLER curves over flat Rayleigh block fading: 1×1, 2×1 SFBC, 1×2 MRC and
    /// 2×2 SFBC+MRC, with the SNR at the target BLER and each one's gain over 1×1.
    Mimo(MimoArgs),
    /// Blind cell-search trials: success rate and time per search.
    Cellsearch(SearchArgs),
    /// Encode/decode cost per subframe: thread CPU time (robust on a loaded machine) and
    /// wall time, medians over seeded noise realisations at the operating SNR, plus the
    /// worst case (a transport block that fails and runs every turbo iteration).
    Speed(SpeedArgs),
}

#[derive(Args)]
struct SpeedArgs {
    /// Bandwidths to measure (comma-separated), e.g. `1.4,5,20`.
    #[arg(long, default_value = "1.4,3,5,10,15,20")]
    bw: String,
    /// Modulations (comma-separated).
    #[arg(long, default_value = "qpsk,16qam,64qam")]
    modulation: String,
    /// Subframes per measurement (the failing worst case runs a quarter as many).
    #[arg(long, default_value_t = 300)]
    subframes: usize,
    /// Seeded noise realisations at the operating SNR, cycled through (none is chosen for
    /// decoding: failures count as they come).
    #[arg(long, default_value_t = 16)]
    realisations: u64,
    /// Turbo decoder: fixed (16-bit fixed point, the default) or f32 (the reference).
    #[arg(long, default_value = "fixed")]
    decoder: String,
    /// Also write the rows as a JSON array to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// One row of `ferry phy speed --json`: µs per 1 ms subframe on one core.
struct SpeedRow {
    bw: f64,
    modulation: String,
    decoder: String,
    tb_bytes: usize,
    snr_db: f64,
    /// Median thread CPU time of one subframe encode.
    encode_cpu_us: f64,
    /// Median thread CPU time of one subframe decode at the operating SNR.
    decode_cpu_us: f64,
    /// 99th percentile and maximum of the same.
    decode_cpu_p99_us: f64,
    decode_cpu_max_us: f64,
    /// Median wall time of one subframe decode (inflated on a loaded machine).
    decode_wall_us: f64,
    /// Median thread CPU time of decoding a subframe 6 dB below the operating SNR: the TB
    /// fails and every code block runs every iteration (the worst case).
    decode_fail_cpu_us: f64,
    /// Fraction of operating-SNR subframes whose TB CRC passed.
    crc_ok: f64,
    /// Mean turbo iterations per TB (summed over code blocks) at the operating SNR.
    iterations: f64,
}

#[derive(Args)]
struct LinkArgs {
    /// Channel bandwidth in MHz (1.4, 3, 5, 10, 15, 20) or an RB count like `25rb`.
    #[arg(long, default_value = "5")]
    bw: String,
    /// Cyclic prefix: normal or extended.
    #[arg(long, default_value = "normal")]
    cp: String,
    /// Duplex: fdd, or tdd0 … tdd6 (TDD uplink/downlink configuration).
    #[arg(long, default_value = "fdd")]
    duplex: String,
    /// Physical cell ID 0..=503.
    #[arg(long, default_value_t = 77)]
    pci: u16,
}

#[derive(Args)]
struct BlerArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// Modulation: qpsk, 16qam, 64qam.
    #[arg(long, default_value = "qpsk")]
    modulation: String,
    /// First SNR (dB, Es/N0 per resource element).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    snr_from: f64,
    /// Last SNR (dB).
    #[arg(long, allow_hyphen_values = true, default_value_t = 6.0)]
    snr_to: f64,
    /// SNR step (dB).
    #[arg(long, default_value_t = 0.5)]
    step: f64,
    /// Subframes per SNR point.
    #[arg(long, default_value_t = 200)]
    subframes: usize,
    /// Code rate of the transport blocks (largest TB at or below it).
    #[arg(long, default_value_t = 0.5)]
    code_rate: f64,
    /// Residual CFO (Hz).
    #[arg(long, allow_hyphen_values = true, default_value_t = 80.0)]
    cfo: f64,
    /// Timing offset (samples, at most half the CP); default 0.26 of the normal CP.
    #[arg(long)]
    delay: Option<f64>,
    /// Seed of the channel and payloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct MimoArgs {
    #[command(flatten)]
    link: LinkArgs,
    /// Modulation: qpsk, 16qam, 64qam.
    #[arg(long, default_value = "qpsk")]
    modulation: String,
    /// Antenna configurations TXxRX (comma-separated; 1 or 2 each; 2 TX = SFBC).
    #[arg(long, default_value = "1x1,2x1,1x2,2x2")]
    configs: String,
    /// First SNR (dB, mean Es/N0 per resource element per receive antenna).
    #[arg(long, allow_hyphen_values = true, default_value_t = -2.0)]
    snr_from: f64,
    /// Last SNR (dB).
    #[arg(long, allow_hyphen_values = true, default_value_t = 16.0)]
    snr_to: f64,
    /// SNR step (dB).
    #[arg(long, default_value_t = 1.0)]
    step: f64,
    /// Subframes per SNR point (one fading draw each).
    #[arg(long, default_value_t = 400)]
    subframes: usize,
    /// Code rate of the transport blocks (largest TB at or below it; the modem uses 0.5).
    #[arg(long, default_value_t = 0.5)]
    code_rate: f64,
    /// BLER at which the SNR of each configuration and its gain over 1×1 are read.
    #[arg(long, default_value_t = 0.1)]
    target_bler: f64,
    /// Seed of the channel and payloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object per line (every point, then one summary per configuration).
    #[arg(long)]
    json: bool,
    /// Also draw the curves as an SVG to this file.
    #[arg(long)]
    svg: Option<std::path::PathBuf>,
}

#[derive(Args)]
struct SearchArgs {
    /// Channel bandwidth (input sample rate) in MHz or RBs.
    #[arg(long, default_value = "1.4")]
    bw: String,
    /// Duplex: fdd or tdd0 … tdd6.
    #[arg(long, default_value = "fdd")]
    duplex: String,
    /// Trials (random PCI and CP each).
    #[arg(long, default_value_t = 100)]
    trials: usize,
    /// SNR (dB, Es/N0 per resource element).
    #[arg(long, allow_hyphen_values = true, default_value_t = 0.0)]
    snr: f64,
    /// CFO (Hz); trials alternate its sign.
    #[arg(long, allow_hyphen_values = true, default_value_t = 7500.0)]
    cfo: f64,
    /// Half-frames (5 ms) accumulated per search.
    #[arg(long, default_value_t = 8)]
    half_frames: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `ferry phy`.
pub fn run(args: PhyArgs) -> anyhow::Result<()> {
    match args.command {
        PhyCommand::Numerology => numerology(),
        PhyCommand::Bler(a) => bler(a),
        PhyCommand::Mimo(a) => mimo(a),
        PhyCommand::Cellsearch(a) => cellsearch(a),
        PhyCommand::Speed(a) => speed(a),
    }
}

fn parse_cp(s: &str) -> anyhow::Result<CyclicPrefix> {
    match s.to_ascii_lowercase().as_str() {
        "normal" | "0" => Ok(CyclicPrefix::Normal),
        "extended" | "1" => Ok(CyclicPrefix::Extended),
        _ => bail!("--cp {s}: use normal or extended"),
    }
}

fn parse_duplex(s: &str) -> anyhow::Result<Duplex> {
    let s = s.to_ascii_lowercase();
    if s == "fdd" {
        return Ok(Duplex::Fdd);
    }
    if let Some(n) = s.strip_prefix("tdd") {
        let n: u8 = n
            .parse()
            .with_context(|| format!("--duplex {s}: use fdd or tdd0 … tdd6"))?;
        return Ok(Duplex::Tdd(TddConfig::new(n)?));
    }
    bail!("--duplex {s}: use fdd or tdd0 … tdd6")
}

fn parse_modulation(s: &str) -> anyhow::Result<Modulation> {
    match s.to_ascii_lowercase().as_str() {
        "qpsk" | "1" => Ok(Modulation::Qpsk),
        "16qam" | "qam16" | "2" => Ok(Modulation::Qam16),
        "64qam" | "qam64" | "3" => Ok(Modulation::Qam64),
        _ => bail!("--modulation {s}: use qpsk, 16qam or 64qam"),
    }
}

fn numerology() -> anyhow::Result<()> {
    println!("BW MHz  RB   FFT   Msps    samples/subframe  CP normal (l=0 / other)  CP extended");
    for bw in Bandwidth::ALL {
        let n = bw.fft_size();
        println!(
            "{:<6}  {:<3}  {:<4}  {:<6.2}  {:<16}  {:>4} / {:<17}  {}",
            bw.mhz(),
            bw.rb_count(),
            n,
            bw.sample_rate_hz() / 1e6,
            SubframeLayout::new(bw, CyclicPrefix::Normal).len,
            CyclicPrefix::Normal.cp_len(0, n),
            CyclicPrefix::Normal.cp_len(1, n),
            CyclicPrefix::Extended.cp_len(0, n),
        );
    }
    println!("\nFrame: 10 ms = 10 subframes of 1 ms = 20 slots; 7 (normal CP) or 6 (extended) symbols per slot.");
    println!("\nTDD uplink/downlink configurations (36.211 table 4.2-2):");
    for c in 0..=6 {
        println!("  DLULAssign {c}: {}", TddConfig::new(c)?.pattern());
    }
    println!(
        "Special subframe: DwPTS {} symbols (normal CP, config 4) / {} (extended CP, config 3), GP 1, UpPTS 1.",
        dwpts_symbols(CyclicPrefix::Normal),
        dwpts_symbols(CyclicPrefix::Extended)
    );
    Ok(())
}

fn bler(a: BlerArgs) -> anyhow::Result<()> {
    let bw = Bandwidth::parse(&a.link.bw)?;
    let cfg = SubframeConfig::new(
        bw,
        parse_cp(&a.link.cp)?,
        parse_duplex(&a.link.duplex)?,
        CellId::new(a.link.pci)?,
        0x3e9,
        parse_modulation(&a.modulation)?,
    );
    cfg.validate()?;
    if a.step.is_nan() || a.step <= 0.0 || a.snr_to < a.snr_from || a.subframes == 0 {
        bail!("need --step > 0, --snr-to ≥ --snr-from and --subframes ≥ 1");
    }
    let imp = Impairments {
        cfo_hz: a.cfo,
        delay_samples: a.delay.unwrap_or(Impairments::typical(bw).delay_samples),
    };
    if !a.json {
        println!(
            "# {} {:?} {:?} code rate ≤ {}, {} subframes/point, residual CFO {} Hz, timing +{} samples, seed {}",
            bw, cfg.modulation, cfg.cp, a.code_rate, a.subframes, imp.cfo_hz, imp.delay_samples, a.seed
        );
        println!("SNR dB   BLER      errors   est SNR dB  EVM %   iterations  TB bytes");
    }
    let steps = ((a.snr_to - a.snr_from) / a.step).round() as usize;
    for i in 0..=steps {
        let snr = a.snr_from + i as f64 * a.step;
        let p = bler_point(
            cfg,
            snr,
            a.subframes,
            a.code_rate,
            imp,
            a.seed.wrapping_add(i as u64),
        )?;
        if a.json {
            println!("{}", serde_json::to_string(&p)?);
        } else {
            println!(
                "{:<7.2}  {:<8.4}  {:<7}  {:<10.2}  {:<6.2}  {:<10.2}  {:.0}",
                snr,
                p.bler(),
                p.block_errors,
                p.est_snr_db,
                100.0 * p.evm_rms,
                p.mean_iterations,
                p.mean_tb_bytes
            );
        }
    }
    Ok(())
}

/// Parses `1x1,2x1,…` into (TX, RX) antenna counts.
fn parse_configs(s: &str) -> anyhow::Result<Vec<(u8, u8)>> {
    s.split(',')
        .map(|c| {
            let c = c.trim().to_ascii_lowercase();
            let parsed = c
                .split_once('x')
                .and_then(|(t, r)| Some((t.parse::<u8>().ok()?, r.parse::<u8>().ok()?)));
            match parsed {
                Some((t @ 1..=2, r @ 1..=2)) => Ok((t, r)),
                _ => bail!("--configs {c}: use TXxRX with 1 or 2 antennas each, e.g. 2x2"),
            }
        })
        .collect()
}

fn mimo(a: MimoArgs) -> anyhow::Result<()> {
    let bw = Bandwidth::parse(&a.link.bw)?;
    let base = SubframeConfig::new(
        bw,
        parse_cp(&a.link.cp)?,
        parse_duplex(&a.link.duplex)?,
        CellId::new(a.link.pci)?,
        0x3e9,
        parse_modulation(&a.modulation)?,
    );
    let configs = parse_configs(&a.configs)?;
    if a.step.is_nan() || a.step <= 0.0 || a.snr_to < a.snr_from || a.subframes == 0 {
        bail!("need --step > 0, --snr-to ≥ --snr-from and --subframes ≥ 1");
    }
    if !(a.target_bler > 0.0 && a.target_bler < 1.0) {
        bail!("--target-bler {}: use a value in (0, 1)", a.target_bler);
    }
    let label = |(t, r): (u8, u8)| format!("{t}x{r}");
    if !a.json {
        println!(
            "# {} {:?} {:?} code rate ≤ {}, flat Rayleigh block fading (one draw per link per subframe), {} subframes/point, seed {}",
            bw, base.modulation, base.cp, a.code_rate, a.subframes, a.seed
        );
        let head: Vec<String> = configs
            .iter()
            .map(|&c| format!("{:<9}", label(c) + " BLER"))
            .collect();
        println!("SNR dB   {}", head.join(" "));
    }
    let steps = ((a.snr_to - a.snr_from) / a.step).round() as usize;
    let mut curves: Vec<Vec<BlerPoint>> = vec![Vec::new(); configs.len()];
    for i in 0..=steps {
        let snr = a.snr_from + i as f64 * a.step;
        let mut row = Vec::new();
        for (c, &(tx, rx)) in configs.iter().enumerate() {
            let cfg = SubframeConfig {
                num_antenna_tx: tx,
                num_antenna_rx: rx,
                ..base
            };
            let p = mimo_bler_point(
                cfg,
                Fading::Rayleigh,
                snr,
                a.subframes,
                a.code_rate,
                a.seed.wrapping_add(i as u64),
            )?;
            if a.json {
                let mut v = serde_json::to_value(p)?;
                v["config"] = label((tx, rx)).into();
                v["bler"] = p.bler().into();
                println!("{v}");
            }
            row.push(format!("{:<9.4}", p.bler()));
            curves[c].push(p);
        }
        if !a.json {
            println!("{:<7.2}  {}", snr, row.join(" "));
        }
    }
    let at: Vec<Option<f64>> = curves
        .iter()
        .map(|c| snr_at_bler(c, a.target_bler))
        .collect();
    let reference = configs
        .iter()
        .position(|&c| c == (1, 1))
        .and_then(|i| at[i]);
    if !a.json {
        println!(
            "\n# SNR at {} % BLER and gain over 1x1:",
            100.0 * a.target_bler
        );
    }
    for (c, &cfg) in configs.iter().enumerate() {
        let gain = at[c].zip(reference).map(|(s, r)| r - s);
        let tb = curves[c].iter().map(|p| p.mean_tb_bytes).sum::<f32>() / curves[c].len() as f32;
        if a.json {
            println!(
                "{}",
                serde_json::json!({
                    "config": label(cfg),
                    "target_bler": a.target_bler,
                    "snr_at_target_db": at[c],
                    "gain_over_1x1_db": gain,
                    "mean_tb_bytes": tb,
                })
            );
        } else {
            let show = |v: Option<f64>, sign: bool| match v {
                Some(v) if sign => format!("{v:+.1} dB"),
                Some(v) => format!("{v:.1} dB"),
                None => "outside the range".into(),
            };
            println!(
                "{:<4}  {:<18}  gain {:<18}  TB {:.0} B",
                label(cfg),
                show(at[c], false),
                show(gain, true),
                tb
            );
        }
    }
    if let Some(path) = &a.svg {
        let named: Vec<(String, Vec<(f64, f64)>)> = configs
            .iter()
            .zip(&curves)
            .map(|(&c, pts)| (label(c), pts.iter().map(|p| (p.snr_db, p.bler())).collect()))
            .collect();
        let title = format!(
            "BLER over flat Rayleigh block fading, {} {:?} rate {}, {} subframes/point",
            bw, base.modulation, a.code_rate, a.subframes
        );
        let svg =
            crate::phy_plot::bler_svg(&title, &named, 0.5 / a.subframes as f64, a.target_bler)?;
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn cellsearch(a: SearchArgs) -> anyhow::Result<()> {
    let bw = Bandwidth::parse(&a.bw)?;
    let duplex = parse_duplex(&a.duplex)?;
    let searcher = CellSearcher::new(bw, duplex_kind(duplex), a.half_frames)?;
    let mut rng = ChaCha8Rng::seed_from_u64(a.seed);
    let mut good = 0;
    let mut busy = std::time::Duration::ZERO;
    let mut worst_t: f64 = 0.0;
    let mut worst_f: f64 = 0.0;
    for i in 0..a.trials {
        let cfo = if i % 2 == 0 { a.cfo } else { -a.cfo };
        let (capture, truth) = cellsearch_capture(&searcher, duplex, cfo, a.snr, &mut rng)?;
        let t0 = Instant::now();
        let found = searcher.search(&capture)?;
        busy += t0.elapsed();
        let t = judge(&searcher, &truth, found.as_ref());
        if t.correct {
            good += 1;
            worst_t = worst_t.max(t.timing_error.unwrap_or(0.0).abs());
            worst_f = worst_f.max(t.cfo_error_hz.unwrap_or(0.0).abs());
        }
    }
    let per_search = busy / a.trials.max(1) as u32;
    let capture_ms = searcher.required_samples() as f64 / bw.sample_rate_hz() * 1e3;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "bandwidth_mhz": bw.mhz(), "trials": a.trials, "correct": good,
                "snr_db": a.snr, "cfo_hz": a.cfo, "half_frames": a.half_frames,
                "capture_ms": capture_ms, "search_ms": per_search.as_secs_f64() * 1e3,
                "worst_timing_error_samples": worst_t, "worst_cfo_error_hz": worst_f,
            })
        );
    } else {
        println!(
            "cell search {bw}, {:?}, SNR {} dB, CFO ±{} Hz, {} half-frames ({capture_ms:.1} ms of capture):",
            duplex, a.snr, a.cfo, a.half_frames
        );
        println!(
            "  correct {good}/{} = {:.1} %  (PCI, CP, frame start, CFO within 100 Hz)",
            a.trials,
            100.0 * good as f64 / a.trials.max(1) as f64
        );
        println!("  worst correct-trial errors: timing {worst_t:.2} samples, CFO {worst_f:.1} Hz");
        println!(
            "  search time {:.2} ms per capture (mean over the trials, this machine)",
            per_search.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

impl SpeedRow {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "bw": self.bw,
            "modulation": self.modulation,
            "decoder": self.decoder,
            "tb_bytes": self.tb_bytes,
            "snr_db": self.snr_db,
            "encode_cpu_us": self.encode_cpu_us,
            "decode_cpu_us": self.decode_cpu_us,
            "decode_cpu_p99_us": self.decode_cpu_p99_us,
            "decode_cpu_max_us": self.decode_cpu_max_us,
            "decode_wall_us": self.decode_wall_us,
            "decode_fail_cpu_us": self.decode_fail_cpu_us,
            "crc_ok": self.crc_ok,
            "iterations": self.iterations,
        })
    }
}

/// Thread CPU time in ns (`CLOCK_THREAD_CPUTIME_ID`: nanosecond resolution).
fn thread_cpu_exact_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The q-quantile (0..=1) of `v` in µs (sorted in place).
fn quantile_us(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v[i] as f64 / 1e3
}

/// Operating SNR of the loopback tests (1 % BLER point + about 1 dB at 5 MHz).
fn operating_snr(m: Modulation) -> f64 {
    match m {
        Modulation::Qpsk => 2.75,
        Modulation::Qam16 => 8.0,
        Modulation::Qam64 => 12.5,
    }
}

fn speed(a: SpeedArgs) -> anyhow::Result<()> {
    use ferry_phy::channel::{Channel, ChannelParams};
    use ferry_phy::fec::DecoderKind;
    use ferry_phy::{SubframeDecoder, SubframeEncoder};
    use num_complex::Complex32;
    use rand::Rng;
    let n = a.subframes.max(1);
    let kind = match a.decoder.to_ascii_lowercase().as_str() {
        "fixed" | "fixed16" => DecoderKind::Fixed16,
        "f32" | "float" => DecoderKind::Float,
        d => bail!("--decoder {d}: use fixed or f32"),
    };
    let realisations = a.realisations.max(1);
    println!(
        "# {n} subframes each (subframe 3, code rate ≤ 0.5), {realisations} noise realisations at the operating SNR, {:?} turbo decoder; thread CPU µs per subframe (medians)",
        kind
    );
    println!("BW MHz  modulation  TB bytes  SNR dB  encode CPU  decode CPU  p99     max     decode wall  failing-TB CPU  CRC ok  iterations  (FFT+chest CPU)");
    let mut rows = Vec::new();
    for bw_text in a.bw.split(',') {
        let bw = Bandwidth::parse(bw_text)?;
        for m_text in a.modulation.split(',') {
            let m = parse_modulation(m_text)?;
            let cfg = SubframeConfig::new(
                bw,
                CyclicPrefix::Normal,
                Duplex::Fdd,
                CellId::new(77)?,
                0x3e9,
                m,
            );
            let cap = cfg.capacity(3, 0.5)?;
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let tb: Vec<u8> = (0..cap.max_tb_bytes).map(|_| rng.random()).collect();
            let mut enc = SubframeEncoder::new(cfg)?;
            let mut dec = SubframeDecoder::new(cfg)?;
            dec.set_turbo_decoder(kind);
            let mut tx = vec![Complex32::new(0.0, 0.0); cfg.samples_per_subframe()];
            let mut enc_cpu = Vec::with_capacity(n);
            for _ in 0..n {
                let c0 = thread_cpu_exact_ns();
                enc.encode(3, std::hint::black_box(&tb), &mut tx)?;
                enc_cpu.push(thread_cpu_exact_ns().saturating_sub(c0));
            }
            let imp = Impairments::typical(bw);
            tx.extend(std::iter::repeat_n(Complex32::new(0.0, 0.0), 8));
            let through = |snr: f64, seed: u64| {
                let params = ChannelParams {
                    snr_db: Some(snr),
                    cfo_hz: imp.cfo_hz,
                    delay_samples: imp.delay_samples + 8.0,
                    ..ChannelParams::ideal(bw.sample_rate_hz())
                };
                let mut rx = Vec::new();
                Channel::new(params, seed).process(&tx, &mut rx);
                rx.drain(..8);
                rx
            };
            let snr = operating_snr(m);
            let inputs: Vec<Vec<Complex32>> =
                (0..realisations).map(|seed| through(snr, seed)).collect();
            let (mut dec_cpu, mut dec_wall) = (Vec::with_capacity(n), Vec::with_capacity(n));
            let (mut ok, mut iterations) = (0usize, 0usize);
            for i in 0..n {
                let rx = &inputs[i % inputs.len()];
                let (w0, c0) = (Instant::now(), thread_cpu_exact_ns());
                let r = dec.decode(3, std::hint::black_box(rx), tb.len())?;
                dec_cpu.push(thread_cpu_exact_ns().saturating_sub(c0));
                dec_wall.push(w0.elapsed().as_nanos() as u64);
                ok += usize::from(r.payload.as_deref() == Some(&tb[..]));
                iterations += r.iterations;
            }
            let failing = through(snr - 6.0, 99);
            let mut fail_cpu = Vec::new();
            for _ in 0..n.div_ceil(4) {
                let c0 = thread_cpu_exact_ns();
                let r = dec.decode(3, std::hint::black_box(&failing), tb.len())?;
                fail_cpu.push(thread_cpu_exact_ns().saturating_sub(c0));
                if r.payload.is_some() {
                    bail!(
                        "{bw} {m_text}: the worst-case input 6 dB below the operating SNR decoded"
                    );
                }
            }
            let c4 = thread_cpu_exact_ns();
            for _ in 0..n {
                std::hint::black_box(dec.measure(3, std::hint::black_box(&inputs[0]))?);
            }
            let front = (thread_cpu_exact_ns() - c4) as f64 / 1e3 / n as f64;
            let row = SpeedRow {
                bw: bw.mhz(),
                modulation: m_text.to_string(),
                decoder: format!("{kind:?}"),
                tb_bytes: tb.len(),
                snr_db: snr,
                encode_cpu_us: quantile_us(&mut enc_cpu, 0.5),
                decode_cpu_us: quantile_us(&mut dec_cpu, 0.5),
                decode_cpu_p99_us: quantile_us(&mut dec_cpu, 0.99),
                decode_cpu_max_us: quantile_us(&mut dec_cpu, 1.0),
                decode_wall_us: quantile_us(&mut dec_wall, 0.5),
                decode_fail_cpu_us: quantile_us(&mut fail_cpu, 0.5),
                crc_ok: ok as f64 / n as f64,
                iterations: iterations as f64 / n as f64,
            };
            println!(
                "{:<6}  {:<10}  {:<8}  {:<6}  {:<10.1}  {:<10.1}  {:<6.0}  {:<6.0}  {:<11.1}  {:<14.1}  {:<6.3}  {:<10.2}  {:.1}",
                row.bw,
                row.modulation,
                row.tb_bytes,
                row.snr_db,
                row.encode_cpu_us,
                row.decode_cpu_us,
                row.decode_cpu_p99_us,
                row.decode_cpu_max_us,
                row.decode_wall_us,
                row.decode_fail_cpu_us,
                row.crc_ok,
                row.iterations,
                front,
            );
            rows.push(row);
        }
    }
    if let Some(path) = a.json {
        let rows: Vec<serde_json::Value> = rows.iter().map(SpeedRow::to_json).collect();
        std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
