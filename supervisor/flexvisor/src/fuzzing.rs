//! Entry points of the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) for
//! every parser that reads bytes from outside: control requests (socket),
//! sd_notify datagrams (services), netlink acks (kernel), HTTP status lines
//! (probed services), service definitions (files). Kept here so the seed
//! corpus also runs as a unit test. None may panic on any input.

use std::path::Path;

pub fn control_request(data: &[u8]) {
    let _ = crate::control::server::parse_request(data);
}

pub fn sd_notify(data: &[u8]) {
    let _ = crate::readiness::parse_sd_notify(data);
}

pub fn netlink_ack(data: &[u8]) {
    let seq = data.first().copied().map_or(0, u32::from);
    let _ = crate::init::netlink::parse_ack(data, seq);
}

pub fn http_status(data: &[u8]) {
    let _ = crate::probe::parse_http_status(data);
}

pub fn service_spec(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::service::spec::parse("fuzz", Path::new("fuzz.toml"), &text);
}

/// Run a target by its directory name in `fuzz/corpus`.
pub fn by_name(target: &str, data: &[u8]) {
    match target {
        "control" => control_request(data),
        "sd_notify" => sd_notify(data),
        "netlink_ack" => netlink_ack(data),
        "http_status" => http_status(data),
        "service_spec" => service_spec(data),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn seed_corpus_does_not_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut n = 0;
        for target in std::fs::read_dir(&root).unwrap() {
            let target = target.unwrap();
            let name = target.file_name().to_string_lossy().into_owned();
            for seed in std::fs::read_dir(target.path()).unwrap() {
                super::by_name(&name, &std::fs::read(seed.unwrap().path()).unwrap());
                n += 1;
            }
        }
        assert!(n >= 10, "seed corpus missing ({n} seeds)");
    }
}
