//! Channel estimation from the CRS: the decoder's SNR, residual-CFO and timing estimates
//! track what the simulated channel applied.

use ferry_phy::channel::{Channel, ChannelParams};
use ferry_phy::{
    Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, SubframeDecoder,
    SubframeEncoder,
};
use num_complex::Complex32;

fn measure(
    bw: Bandwidth,
    cp: CyclicPrefix,
    snr: f64,
    cfo: f64,
    delay: f64,
) -> (f32, f32, f32, f32) {
    let cfg = SubframeConfig::new(
        bw,
        cp,
        Duplex::Fdd,
        CellId::new(211).unwrap(),
        9,
        Modulation::Qpsk,
    );
    let mut enc = SubframeEncoder::new(cfg).unwrap();
    let mut dec = SubframeDecoder::new(cfg).unwrap();
    let len = cfg.samples_per_subframe();
    let params = ChannelParams {
        snr_db: Some(snr),
        cfo_hz: cfo,
        delay_samples: delay + 8.0,
        gain: Complex32::from_polar(0.25, -2.0),
        ..ChannelParams::ideal(bw.sample_rate_hz())
    };
    let mut ch = Channel::new(params, 17);
    let mut tx = vec![Complex32::new(0.0, 0.0); len];
    let mut stream = Vec::new();
    let mut rx = Vec::new();
    let (mut s, mut c, mut t, mut e) = (0.0, 0.0, 0.0, 0.0);
    let n = 10;
    for sf in 0..=n {
        enc.encode_random_load(sf % 10, 1000 + sf as u32, &mut tx)
            .unwrap();
        ch.process(&tx, &mut rx);
        stream.extend_from_slice(&rx);
    }
    // Skip the 8 samples the fractional-delay filter needs: the rest is `delay` late.
    for sf in 0..n {
        let q = dec
            .measure(sf % 10, &stream[8 + sf * len..8 + (sf + 1) * len])
            .unwrap();
        s += q.snr_db;
        c += q.residual_cfo_hz;
        t += q.timing_offset_samples;
        e += q.evm_rms;
    }
    let n = n as f32;
    (s / n, c / n, t / n, e / n)
}

#[test]
fn estimates_track_the_channel() {
    for (bw, cp, delay) in [
        (Bandwidth::Mhz1_4, CyclicPrefix::Normal, 2.25),
        (Bandwidth::Mhz5, CyclicPrefix::Normal, 9.4),
        (Bandwidth::Mhz5, CyclicPrefix::Extended, 30.0),
        (Bandwidth::Mhz20, CyclicPrefix::Normal, 40.5),
    ] {
        for (snr, cfo) in [(15.0, 150.0), (5.0, -400.0)] {
            let (s, c, t, e) = measure(bw, cp, snr, cfo, delay);
            let ctx = format!("{bw} {cp:?} snr {snr} cfo {cfo} delay {delay}: {s} dB, {c} Hz, {t} samples, EVM {e}");
            assert!((f64::from(s) - snr).abs() < 1.0, "SNR {ctx}");
            assert!((f64::from(c) - cfo).abs() < 25.0, "CFO {ctx}");
            assert!((f64::from(t) - delay).abs() < 0.5, "timing {ctx}");
            // EVM of the equalised CRS ≈ 1/√SNR.
            let want = 10f32.powf(-snr as f32 / 20.0);
            assert!((e / want - 1.0).abs() < 0.2, "EVM {ctx}");
        }
    }
}
