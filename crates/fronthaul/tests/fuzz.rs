//! Property tests: no input makes the codec or the control decoder panic, and everything
//! Ferry emits parses back to what was emitted.

use ferry_fronthaul::control::{Reply, Request};
use ferry_fronthaul::probe;
use ferry_fronthaul::vrt::{
    emit_data_i16, ContextRepr, DataRepr, Direction, Packet, StreamId, Timestamp,
};
use proptest::prelude::*;

proptest! {
    #[test]
    fn any_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = DataRepr::parse_bytes(&b);
        let _ = ContextRepr::parse_bytes(&b);
        let p = Packet::new_unchecked(&b[..]);
        let _ = (p.stream_id(), p.integer_timestamp(), p.fractional_timestamp(), p.payload().len());
        let _ = Request::from_bytes(&b);
        let _ = Reply::from_bytes(&b);
        let _ = probe::decode_probe(&b);
        let _ = probe::decode_answer(&b);
    }

    #[test]
    fn header_mutations_never_panic(hdr in any::<u32>(), rest in proptest::collection::vec(any::<u8>(), 0..64)) {
        // A valid-looking size field with random flag bits exercises the optional fields.
        let words = 1 + rest.len() / 4;
        let mut b = ((hdr & 0xffff_0000) | words as u32).to_be_bytes().to_vec();
        b.extend_from_slice(&rest[..(words - 1) * 4]);
        let _ = DataRepr::parse_bytes(&b);
        let _ = ContextRepr::parse_bytes(&b);
        if let Ok(p) = Packet::new_checked(&b[..]) {
            prop_assert!(p.payload().len() <= b.len());
        }
    }

    #[test]
    fn data_roundtrip(radio in any::<u16>(), count in 0u8..16, t in 0u64..(1u64 << 40),
                      samples in proptest::collection::vec(any::<(i16, i16)>(), 0..400)) {
        let rate = 1_920_000;
        let ts = Timestamp::from_sample_time(t, rate).unwrap();
        let sid = StreamId::new(radio, Direction::Rx);
        let mut out = Vec::new();
        emit_data_i16(sid, count, ts, &samples, &mut out).unwrap();
        let r = DataRepr::parse_bytes(&out).unwrap();
        prop_assert_eq!(r.stream_id, sid);
        prop_assert_eq!(r.count, count);
        prop_assert_eq!(r.timestamp.to_sample_time(rate).unwrap(), t);
        prop_assert_eq!(r.samples_i16().collect::<Vec<_>>(), samples);
    }

    #[test]
    fn context_roundtrip(freq in 0.0f64..6e9, rate in 1.0f64..1e8, gain in -100.0f64..100.0) {
        let c = ContextRepr {
            stream_id: StreamId::new(1, Direction::Rx),
            count: 1,
            timestamp: Timestamp { secs: 1, frac: 2 },
            changed: false,
            bandwidth_hz: None,
            rf_freq_hz: Some(freq),
            gain_db: Some(gain),
            sample_rate_hz: Some(rate),
        };
        let mut out = Vec::new();
        c.emit(&mut out).unwrap();
        let back = ContextRepr::parse_bytes(&out).unwrap();
        prop_assert!((back.rf_freq_hz.unwrap() - freq).abs() < 1e-6);
        prop_assert!((back.sample_rate_hz.unwrap() - rate).abs() < 1e-6);
        prop_assert!((back.gain_db.unwrap() - gain).abs() <= 1.0 / 256.0);
    }

    #[test]
    fn control_json_fuzz(s in "\\PC{0,120}") {
        let _ = Request::from_bytes(s.as_bytes());
        let wrapped = format!(r#"{{"op":"link","radio":{:?},"endpoint":{:?}}}"#, s, s);
        let _ = Request::from_bytes(wrapped.as_bytes());
    }
}
