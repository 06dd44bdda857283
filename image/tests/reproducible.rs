//! The same profile, bay, inputs and SOURCE_DATE_EPOCH give the same bytes,
//! even with nothing cached; another bay or another epoch does not.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use sha2::{Digest, Sha256};

fn sha(p: &Path) -> String {
    let d = Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Options with an empty system cache that shares the package cache.
fn fresh_cache(dir: &Path, fake_flexvisor: &Path) -> flexvisor_image::Options {
    let shared = flexvisor_image::packages::Cache::default_root();
    std::fs::create_dir_all(shared.join("apt")).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::create_dir_all(shared.join("extract")).unwrap();
    // Downloaded and extracted packages are inputs, shared; what is built
    // from them starts empty.
    std::os::unix::fs::symlink(shared.join("apt"), dir.join("apt")).unwrap();
    std::os::unix::fs::symlink(shared.join("extract"), dir.join("extract")).unwrap();
    let mut o = flexvisor_image::Options::new(fake_flexvisor.to_owned());
    o.cache = flexvisor_image::packages::Cache::new(dir);
    // Stand-ins for the lb's binaries: any files do.
    let bins = dir.join("bins");
    std::fs::create_dir_all(&bins).unwrap();
    for b in ["flexctl", "sip-lb"] {
        std::fs::write(bins.join(b), format!("#!/bin/sh\necho {b}\n")).unwrap();
    }
    o.bin_dir = Some(bins);
    o.epoch = 1_700_000_000;
    o
}

#[test]
fn two_builds_from_scratch_are_identical() {
    let tmp = common::TempDir::new("repro");
    // Content is irrelevant to reproducibility: any file stands for PID 1.
    let fv = tmp.path().join("flexvisor");
    std::fs::write(&fv, "#!/bin/sh\nexec sh\n").unwrap();
    let a = fresh_cache(&tmp.path().join("cache-a"), &fv);
    let b = fresh_cache(&tmp.path().join("cache-b"), &fv);
    let one = common::build_bay("c5-50k.toml", 5, &tmp.path().join("out-a"), &a);
    let two = common::build_bay("c5-50k.toml", 5, &tmp.path().join("out-b"), &b);
    assert!(!one.system_cached && !two.system_cached);
    assert_eq!(sha(&one.image), sha(&two.image), "images differ");
    assert_eq!(sha(&one.initrd), sha(&two.initrd), "initramfs differs");

    let other_bay = common::build_bay("c5-50k.toml", 6, &tmp.path().join("out-a"), &a);
    assert_ne!(
        sha(&one.image),
        sha(&other_bay.image),
        "bays 5 and 6 identical"
    );

    let mut later = fresh_cache(&tmp.path().join("cache-c"), &fv);
    later.epoch += 1;
    let three = common::build_bay("c5-50k.toml", 5, &tmp.path().join("out-c"), &later);
    assert_ne!(sha(&one.image), sha(&three.image), "epoch ignored");
}
