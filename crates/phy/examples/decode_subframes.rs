//! Decodes a few subframes through the seeded channel, for instruction counts that do not
//! depend on machine load:
//!
//! ```sh
//! cargo build --release -p ferry-phy --example decode_subframes
//! valgrind --tool=callgrind --toggle-collect='*SubframeDecoder::decode*' \
//!     target/release/examples/decode_subframes 20 64qam fixed 16
//! ```
//!
//! Arguments: bandwidth in MHz, modulation (qpsk, 16qam, 64qam), decoder (fixed, f32),
//! subframes (cycled over that many noise seeds at the operating SNR), and optionally
//! `fail` to decode 6 dB below the operating SNR instead (the TB fails: every iteration).

use ferry_phy::channel::{Channel, ChannelParams};
use ferry_phy::fec::DecoderKind;
use ferry_phy::sim::Impairments;
use ferry_phy::{
    Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, SubframeDecoder,
    SubframeEncoder,
};
use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| args.get(i).cloned().unwrap_or_else(|| d.to_string());
    let bw = Bandwidth::parse(&arg(1, "20"))?;
    let (m, snr) = match arg(2, "64qam").as_str() {
        "qpsk" => (Modulation::Qpsk, 2.75),
        "16qam" => (Modulation::Qam16, 8.0),
        _ => (Modulation::Qam64, 12.5),
    };
    let kind = if arg(3, "fixed") == "f32" {
        DecoderKind::Float
    } else {
        DecoderKind::Fixed16
    };
    let n: u64 = arg(4, "16").parse()?;
    let fail = arg(5, "") == "fail";
    let snr = if fail { snr - 6.0 } else { snr };
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
    let mut tx = vec![Complex32::new(0.0, 0.0); cfg.samples_per_subframe()];
    SubframeEncoder::new(cfg)?.encode(3, &tb, &mut tx)?;
    tx.extend(std::iter::repeat_n(Complex32::new(0.0, 0.0), 8));
    let imp = Impairments::typical(bw);
    let params = ChannelParams {
        snr_db: Some(snr),
        cfo_hz: imp.cfo_hz,
        delay_samples: imp.delay_samples + 8.0,
        ..ChannelParams::ideal(bw.sample_rate_hz())
    };
    let mut dec = SubframeDecoder::new(cfg)?;
    dec.set_turbo_decoder(kind);
    let (mut ok, mut iterations) = (0, 0);
    let mut rx = Vec::new();
    for seed in 0..n {
        Channel::new(params, seed).process(&tx, &mut rx);
        rx.drain(..8);
        let r = dec.decode(3, &rx, tb.len())?;
        ok += usize::from(r.payload.as_deref() == Some(&tb[..]));
        iterations += r.iterations;
    }
    println!("{bw} {m:?} {kind:?} SNR {snr} dB: {ok}/{n} decoded, {iterations} turbo iterations");
    Ok(())
}
