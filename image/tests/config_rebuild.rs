//! A configuration-only change (node.toml differs, the system does not)
//! reuses the cached system parts and changes only the config partition.

#![allow(clippy::unwrap_used)]

mod common;

use flexvisor_image::gpt::SECTOR;

/// Byte ranges of the GPT partitions `name` in a raw image.
fn partition(image: &[u8], name: &str) -> std::ops::Range<usize> {
    let entries = &image[2 * SECTOR as usize..34 * SECTOR as usize];
    for e in entries.chunks(128) {
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        if String::from_utf16_lossy(&units) == name {
            let first = u64::from_le_bytes(e[32..40].try_into().unwrap());
            let last = u64::from_le_bytes(e[40..48].try_into().unwrap());
            return (first * SECTOR) as usize..((last + 1) * SECTOR) as usize;
        }
    }
    panic!("no partition {name}");
}

#[test]
fn changed_node_config_rewrites_only_the_config_partition() {
    let tmp = common::TempDir::new("config-rebuild");
    let fv = tmp.path().join("flexvisor");
    std::fs::write(&fv, "#!/bin/sh\n").unwrap();
    let mut opts = flexvisor_image::Options::new(fv);
    // Stand-ins for flexctl and sip-lb: only the config partition matters.
    for b in ["flexctl", "sip-lb"] {
        std::fs::write(tmp.path().join(b), "#!/bin/sh\n").unwrap();
    }
    opts.bin_dir = Some(tmp.path().to_owned());
    opts.epoch = 1_700_000_000;

    let first = common::build_bay("c5-50k.toml", 5, &tmp.path().join("a"), &opts);
    let before = std::fs::read(&first.image).unwrap();

    let text = std::fs::read_to_string(common::profile("c5-50k.toml")).unwrap();
    let changed = text.replacen("stale_after_s = 60", "stale_after_s = 90", 1);
    assert_ne!(text, changed, "profile fixture changed: adjust this test");
    let p = tmp.path().join("c5-50k.toml");
    std::fs::write(&p, changed).unwrap();
    let mut say = |_: &str| {};
    let second = flexvisor_image::build(
        &p,
        &flexvisor_image::Selection::Bay(5),
        None,
        &tmp.path().join("b"),
        &opts,
        &mut say,
    )
    .unwrap()
    .remove(0);
    assert!(second.system_cached, "the system was rebuilt");
    let after = std::fs::read(&second.image).unwrap();
    assert_eq!(before.len(), after.len());

    let config = partition(&before, "fv-config");
    assert_ne!(
        before[config.clone()],
        after[config.clone()],
        "config unchanged"
    );
    assert_eq!(
        before[..config.start],
        after[..config.start],
        "ESP/system changed"
    );
    assert_eq!(
        before[config.end..],
        after[config.end..],
        "data/backup GPT changed"
    );
    let node = std::fs::read_to_string(tmp.path().join("b/bay05.node.toml")).unwrap();
    assert!(node.contains("stale_after_s = 90"), "{node}");
}

/// Options with stand-ins for the lb's binaries in `dir`.
fn lb_opts(dir: &std::path::Path) -> flexvisor_image::Options {
    let fv = dir.join("flexvisor");
    std::fs::write(&fv, "#!/bin/sh\n").unwrap();
    for b in ["flexctl", "sip-lb"] {
        std::fs::write(dir.join(b), format!("#!/bin/sh\necho {b}\n")).unwrap();
    }
    let mut opts = flexvisor_image::Options::new(fv);
    opts.bin_dir = Some(dir.to_owned());
    opts.epoch = 1_700_000_000;
    opts
}

fn build5(
    profile: &std::path::Path,
    out: &std::path::Path,
    opts: &flexvisor_image::Options,
) -> flexvisor_image::Built {
    let mut say = |_: &str| {};
    flexvisor_image::build(
        profile,
        &flexvisor_image::Selection::Bay(5),
        None,
        out,
        opts,
        &mut say,
    )
    .unwrap()
    .remove(0)
}

#[test]
fn config_change_in_place_matches_a_fresh_build_and_keeps_the_system() {
    let tmp = common::TempDir::new("config-in-place");
    let opts = lb_opts(tmp.path());
    let out = tmp.path().join("out");
    let first = common::build_bay("c5-50k.toml", 5, &out, &opts);
    assert!(
        !first.config_only,
        "first build of an empty dir was in place"
    );
    let ino = |p: &std::path::Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).unwrap().ino()
    };
    let first_ino = ino(&first.image);

    let text = std::fs::read_to_string(common::profile("c5-50k.toml")).unwrap();
    let changed = text.replacen("stale_after_s = 60", "stale_after_s = 75", 1);
    assert_ne!(text, changed, "profile fixture changed: adjust this test");
    let p = tmp.path().join("changed.toml");
    std::fs::write(&p, changed).unwrap();

    let fast = build5(&p, &out, &opts);
    assert!(
        fast.config_only,
        "the config-only rebuild rewrote the image"
    );
    assert!(
        flexvisor_image::summary(std::slice::from_ref(&fast)).contains(" kept "),
        "summary does not say the system was kept"
    );
    // Patched, not rewritten: the same file, system slot untouched.
    assert_eq!(ino(&fast.image), first_ino, "the image was written anew");
    let fresh = build5(&p, &tmp.path().join("fresh"), &opts);
    assert!(!fresh.config_only);
    let fast_bytes = std::fs::read(&fast.image).unwrap();
    let fresh_bytes = std::fs::read(&fresh.image).unwrap();
    assert!(
        fast_bytes == fresh_bytes,
        "config-only rebuild differs from a fresh build"
    );
    let node = std::fs::read_to_string(out.join("bay05.node.toml")).unwrap();
    assert!(node.contains("stale_after_s = 75"), "{node}");
    // Nothing temporary left beside the outputs.
    for e in std::fs::read_dir(&out).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "leftover {name}");
    }

    // Back to the original config, again in place: the first image's bytes.
    let back = common::build_bay("c5-50k.toml", 5, &out, &opts);
    assert!(back.config_only);
    let first_fresh = common::build_bay("c5-50k.toml", 5, &tmp.path().join("fresh0"), &opts);
    assert!(std::fs::read(&back.image).unwrap() == std::fs::read(&first_fresh.image).unwrap());

    // An image written to since its build (a boot writes its disks) is
    // not trusted: the next build writes it whole, with a fresh build's bytes.
    {
        use std::io::{Seek, SeekFrom, Write};
        let data = partition(&fast_bytes, "fv-data");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&back.image)
            .unwrap();
        f.seek(SeekFrom::Start(data.start as u64)).unwrap();
        f.write_all(b"md superblock stand-in").unwrap();
    }
    let after_boot = build5(&p, &out, &opts);
    assert!(!after_boot.config_only, "a modified image was patched");
    assert!(std::fs::read(&after_boot.image).unwrap() == fresh_bytes);
    // And a different epoch (another system) is never patched.
    let mut later = opts.clone();
    later.epoch += 1;
    let other = build5(&p, &out, &later);
    assert!(!other.config_only, "an image of another system was patched");
}
