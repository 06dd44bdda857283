//! Whatever guests put on the wire and whatever snmpd sends the IF-MIB
//! helper, the harness's parsers return an answer and never panic.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use qemu_tests::fabric::{observe, Observed};
use qemu_tests::snmp;

proptest! {
    #[test]
    fn any_frame_is_classified_without_panic(frame in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = observe(&frame);
    }

    #[test]
    fn vrrp_advert_fields_come_from_the_vrrp_header(vrid in any::<u8>(), prio in any::<u8>(), ihl in 5u8..=15) {
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00]);
        let mut ip = vec![0u8; usize::from(ihl) * 4];
        ip[0] = 0x40 | ihl;
        ip[9] = 112;
        f.extend(ip);
        f.extend([0x31, vrid, prio, 1]);
        prop_assert_eq!(observe(&f), Some(Observed::Advert { vrid, priority: prio }));
    }

    #[test]
    fn pass_persist_answers_every_request(input in "[a-zA-Z0-9. \n]{0,300}") {
        let dir = tempfile::tempdir().unwrap();
        let st = dir.path().join("ports");
        std::fs::write(&st, snmp::render_state(&snmp::en2092_ports())).unwrap();
        let mut out = Vec::new();
        snmp::pass_persist(input.as_bytes(), &mut out, &st, snmp::IF_TABLE).unwrap();
    }

    #[test]
    fn state_files_round_trip(ups in proptest::collection::vec(any::<bool>(), 28)) {
        let mut ports = snmp::en2092_ports();
        for (p, up) in ports.iter_mut().zip(ups) {
            p.up = up;
        }
        let text = snmp::render_state(&ports);
        prop_assert_eq!(snmp::parse_state(std::path::Path::new("x"), &text).unwrap(), ports);
    }
}
