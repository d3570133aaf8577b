//! `ferry phy`: physical-layer tools — the numerology tables, loopback BLER curves through
//! the seeded channel model, and cell-search success rate and cost.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use ferry_phy::cellsearch::CellSearcher;
use ferry_phy::numerology::{dwpts_symbols, SubframeLayout};
use ferry_phy::sim::{bler_point, cellsearch_capture, duplex_kind, judge, Impairments};
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
    /// Blind cell-search trials: success rate and time per search.
    Cellsearch(SearchArgs),
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
    /// Timing offset (samples, inside the CP).
    #[arg(long, default_value_t = 9.4)]
    delay: f64,
    /// Seed of the channel and payloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
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
        PhyCommand::Cellsearch(a) => cellsearch(a),
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
    if !(a.step > 0.0) || a.snr_to < a.snr_from || a.subframes == 0 {
        bail!("need --step > 0, --snr-to ≥ --snr-from and --subframes ≥ 1");
    }
    let imp = Impairments {
        cfo_hz: a.cfo,
        delay_samples: a.delay,
    };
    if !a.json {
        println!(
            "# {} {:?} {:?} code rate ≤ {}, {} subframes/point, residual CFO {} Hz, timing +{} samples, seed {}",
            bw, cfg.modulation, cfg.cp, a.code_rate, a.subframes, a.cfo, a.delay, a.seed
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
            "  correct {good}/{} = {:.1} %  (PCI, CP, frame start, CFO within 200 Hz)",
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
