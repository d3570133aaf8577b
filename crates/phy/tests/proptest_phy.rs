//! Property tests: parsing arbitrary parameters and decoding / searching arbitrary samples
//! never panics; every accepted parameter set round-trips.

use ferry_phy::cellsearch::{CellSearcher, DuplexKind};
use ferry_phy::numerology::check_antennas;
use ferry_phy::{
    Bandwidth, CellId, CyclicPrefix, Duplex, Modulation, PhyError, SubframeConfig, SubframeDecoder,
    SubframeEncoder,
};
use num_complex::Complex32;
use proptest::prelude::*;

fn any_sample() -> impl Strategy<Value = Complex32> {
    prop_oneof![
        8 => (-4.0f32..4.0, -4.0f32..4.0).prop_map(|(a, b)| Complex32::new(a, b)),
        1 => Just(Complex32::new(f32::NAN, 0.0)),
        1 => Just(Complex32::new(f32::INFINITY, f32::NEG_INFINITY)),
        1 => Just(Complex32::new(1e30, -1e30)),
        1 => Just(Complex32::new(0.0, 0.0)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics(text in ".{0,12}", mhz in proptest::num::f64::ANY, rb in any::<usize>(),
                            pci in any::<u16>(), group in any::<u16>(), cell in any::<u8>(),
                            cp in any::<u8>(), dm in any::<u8>(), tdd in any::<u8>(),
                            tx in any::<u8>(), rx in any::<u8>(), tm in any::<u8>()) {
        let _ = Bandwidth::parse(&text);
        let _ = Bandwidth::from_mhz(mhz);
        let _ = Bandwidth::from_mhz_and_rb(mhz, rb);
        let b = Bandwidth::from_rb_count(rb);
        prop_assert_eq!(b.is_ok(), [6, 15, 25, 50, 75, 100].contains(&rb));
        let id = CellId::new(pci);
        prop_assert_eq!(id.is_ok(), pci <= 503);
        if let Ok(id) = id {
            prop_assert_eq!(CellId::from_parts(id.group(), id.sector()).unwrap(), id);
        }
        let parts = CellId::from_control(pci, group, cell);
        prop_assert_eq!(parts.is_ok(), pci <= 503 && group <= 167 && cell <= 2 && pci == 3 * group + u16::from(cell));
        prop_assert_eq!(CyclicPrefix::from_cp_type(cp).is_ok(), cp <= 1);
        prop_assert_eq!(Duplex::from_control(dm, tdd).is_ok(), dm == 1 || (dm == 0 && tdd <= 6));
        match check_antennas(tx, rx) {
            Ok(()) => prop_assert!(tx == 1 && rx == 1),
            Err(PhyError::Unsupported(_)) => prop_assert!([1, 2, 4].contains(&tx) && [1, 2, 4].contains(&rx)),
            Err(_) => prop_assert!(![1, 2, 4].contains(&tx) || ![1, 2, 4].contains(&rx)),
        }
        prop_assert_eq!(Modulation::from_type_mode(tm).is_ok(), (1..=3).contains(&tm));
    }

    #[test]
    fn arbitrary_configs_are_validated_not_panicked(bw in 0usize..6, cp in any::<bool>(), pci in 0u16..504,
                                                    rnti in any::<u16>(), start in 0usize..120, count in 0usize..120,
                                                    cfi in 0usize..6, sf in 0usize..12, rate in -1.0f64..2.0) {
        let mut cfg = SubframeConfig::new(
            Bandwidth::ALL[bw],
            if cp { CyclicPrefix::Normal } else { CyclicPrefix::Extended },
            Duplex::Fdd,
            CellId::new(pci).unwrap(),
            rnti,
            Modulation::Qam16,
        );
        cfg.prb_start = start;
        cfg.prb_count = count;
        cfg.control_symbols = cfi;
        let ok = cfg.validate().is_ok();
        prop_assert_eq!(SubframeEncoder::new(cfg).is_ok(), ok);
        let cap = cfg.capacity(sf, rate);
        prop_assert_eq!(cap.is_ok(), ok && sf < 10);
    }

    #[test]
    fn decoding_arbitrary_samples_never_panics(samples in proptest::collection::vec(any_sample(), 1920),
                                                extra in 0usize..3, sf in 0usize..11, tb in 0usize..400) {
        let cfg = SubframeConfig::new(Bandwidth::Mhz1_4, CyclicPrefix::Normal, Duplex::Fdd,
                                      CellId::new(1).unwrap(), 7, Modulation::Qpsk);
        let mut dec = SubframeDecoder::new(cfg).unwrap();
        let mut s = samples.clone();
        s.truncate(1920 - extra);
        let r = dec.decode(sf, &s, tb);
        if extra > 0 || sf > 9 {
            prop_assert!(r.is_err());
        }
        if let Ok(rep) = r {
            // Random samples carry no valid transport block.
            prop_assert!(rep.payload.is_none());
        }
        let _ = dec.measure(sf, &samples);
    }

    #[test]
    fn searching_arbitrary_samples_never_panics(samples in proptest::collection::vec(any_sample(), 0..2000)) {
        let searcher = CellSearcher::new(Bandwidth::Mhz1_4, DuplexKind::Fdd, 1).unwrap();
        let mut buf = samples.clone();
        buf.resize(searcher.required_samples(), Complex32::new(0.1, -0.1));
        let _ = searcher.search(&buf);
        let _ = searcher.search(&samples);
    }
}
