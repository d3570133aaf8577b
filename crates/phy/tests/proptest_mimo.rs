//! Property tests of the two-antenna PHY: arbitrary link configurations and Control fields
//! are validated (never a panic), and arbitrary samples on every antenna decode to a CRC
//! failure or a typed error.

use ferry_phy::mimo::{check_link, MimoDecoder, MimoEncoder, TxScheme};
use ferry_phy::{Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, SubframeConfig, TddConfig};
use num_complex::Complex32;
use proptest::prelude::*;

fn any_sample() -> impl Strategy<Value = Complex32> {
    prop_oneof![
        8 => (-4.0f32..4.0, -4.0f32..4.0).prop_map(|(a, b)| Complex32::new(a, b)),
        1 => Just(Complex32::new(f32::NAN, 0.0)),
        1 => Just(Complex32::new(f32::INFINITY, -1e30)),
    ]
}

/// Mostly 1 or 2, sometimes anything.
fn antennas() -> impl Strategy<Value = u8> {
    prop_oneof![4 => 1u8..3, 1 => 0u8..6]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_antenna_configs_are_validated_not_panicked(
        bw in 0usize..6, cp in any::<bool>(), tdd in proptest::option::of(0u8..7),
        pci in 0u16..504, start in 0usize..60, count in 0usize..60, cfi in 0usize..6,
        tx in antennas(), rx in antennas(), mode in 0u8..12, sf in 0usize..12, rate in 0.05f64..1.0,
    ) {
        let mut cfg = SubframeConfig::new(
            Bandwidth::ALL[bw],
            if cp { CyclicPrefix::Normal } else { CyclicPrefix::Extended },
            match tdd { Some(c) => Duplex::Tdd(TddConfig::new(c).unwrap()), None => Duplex::Fdd },
            CellId::new(pci).unwrap(),
            0x3e9,
            Modulation::Qpsk,
        );
        cfg.prb_start = start;
        cfg.prb_count = count;
        cfg.control_symbols = cfi;
        cfg.num_antenna_tx = tx;
        cfg.num_antenna_rx = rx;
        let ok = check_link(&cfg).is_ok();
        prop_assert_eq!(ok, matches!(tx, 1 | 2) && matches!(rx, 1 | 2)
            && SubframeConfig { num_antenna_tx: 1, num_antenna_rx: 1, ..cfg }.validate().is_ok());
        // Every valid link builds (its two-port data REs always pair up within symbols).
        let enc = MimoEncoder::new(cfg);
        prop_assert_eq!(enc.is_ok(), ok);
        prop_assert_eq!(MimoDecoder::new(cfg).is_ok(), ok);
        if let Ok(enc) = enc {
            let _ = enc.max_tb_bytes(sf, rate);
        }
        let scheme = TxScheme::from_control(mode, tx);
        prop_assert_eq!(scheme.is_ok(), (mode, tx) == (1, 1) || (mode, tx) == (2, 2));
    }

    #[test]
    fn decoding_arbitrary_samples_on_two_antennas_never_panics(
        a in proptest::collection::vec(any_sample(), 1920),
        b in proptest::collection::vec(any_sample(), 1920),
        tx in 1u8..3, extra in 0usize..2, sf in 0usize..11, tb in 0usize..200,
    ) {
        let cfg = SubframeConfig {
            num_antenna_tx: tx,
            num_antenna_rx: 2,
            ..SubframeConfig::new(Bandwidth::Mhz1_4, CyclicPrefix::Normal, Duplex::Fdd,
                                  CellId::new(1).unwrap(), 7, Modulation::Qpsk)
        };
        let mut dec = MimoDecoder::new(cfg).unwrap();
        let mut b = b.clone();
        b.truncate(1920 - extra);
        let r = dec.decode(sf, &[&a[..], &b[..]], tb);
        if extra > 0 || sf > 9 {
            prop_assert!(r.is_err());
        }
        if let Ok(rep) = r {
            prop_assert!(rep.payload.is_none());
        }
    }
}
