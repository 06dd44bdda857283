//! The package cache is shared by every build on a machine (operators'
//! and the test suites'): builds running at once download and extract the
//! same packages into it without tripping over each other.
#![allow(clippy::unwrap_used)]

mod common;

use flexvisor_image::packages::Cache;

#[test]
fn builds_at_once_share_one_cache() {
    let tmp = common::TempDir::new("package-cache");
    let cache = Cache::new(tmp.path());
    let at_once = |n: usize| {
        let barrier = std::sync::Barrier::new(n);
        let trees: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        cache.get("hostname")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut seen = None;
        for t in trees {
            let p = t.unwrap_or_else(|e| panic!("a concurrent build failed: {e}"));
            assert!(p.tree.join("bin/hostname").is_file(), "{p:?}");
            assert_eq!(seen.get_or_insert(p.tree.clone()), &p.tree);
        }
        seen.unwrap()
    };
    // A small package every Debian mirror has; fetched by apt, as a build
    // does: downloads at once...
    let tree = at_once(4);
    // ... and extractions at once (the download is cached now).
    for _ in 0..5 {
        std::fs::remove_dir_all(&tree).unwrap();
        at_once(8);
    }
    // Nothing half-done is left behind: one .deb, one tree.
    let names = |d: &str| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(tmp.path().join(d))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let apt = names("apt");
    assert_eq!(apt.len(), 1, "{apt:?}");
    assert!(apt[0].starts_with("hostname_") && apt[0].ends_with(".deb"));
    let extract = names("extract");
    assert_eq!(extract, [apt[0].trim_end_matches(".deb")], "{extract:?}");
}
