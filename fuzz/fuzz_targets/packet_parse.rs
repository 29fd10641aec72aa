//! Fuzz target: any datagram a TFTP port may receive (lesson 12).
//!
//! `Packet::parse` must never panic, whatever the bytes (a server reads
//! datagrams from anybody). When it accepts the bytes, encoding the packet and
//! parsing the result must give the same packet back, and that encoding must be
//! stable (encoding the re-parsed packet gives the same bytes). The options of a
//! request or an OACK go through `Options::from_raw`, which must not panic
//! either, and whose result must survive `to_raw` → `from_raw` unchanged.

#![no_main]

use libfuzzer_sys::fuzz_target;
use socktools::tftp::packet::{Options, Packet};

fuzz_target!(|data: &[u8]| {
    let Ok(first) = Packet::parse(data) else {
        return;
    };

    // Parse → encode → parse is the identity on the parsed packet.
    let encoded = first.encode();
    let again = match Packet::parse(&encoded) {
        Ok(p) => p,
        Err(e) => panic!("re-parse failed: {e}; input {data:?}, encoded {encoded:?}"),
    };
    assert_eq!(again, first, "re-parse differs; encoded {encoded:?}");
    assert_eq!(again.encode(), encoded, "encoding is not stable");

    // The options, typed: never a panic, and a round trip through raw pairs.
    let raw = match &first {
        Packet::Rrq(request) | Packet::Wrq(request) => &request.options,
        Packet::Oack(options) => options,
        _ => return,
    };
    if let Ok(options) = Options::from_raw(raw) {
        let _ = options.to_string();
        assert_eq!(
            Options::from_raw(&options.to_raw()),
            Ok(options),
            "options do not survive to_raw/from_raw"
        );
    }
});
