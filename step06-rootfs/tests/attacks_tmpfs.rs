//! Filling the container's tmpfs mounts: /tmp, /run and /dev/shm live in RAM, and without a
//! size each may take half of the host's. From step 06 on each has one (64 MB unless
//! `--tmpfs-size` / `--shm-size` say otherwise): writing past it fails with ENOSPC, and what
//! the container wrote there never exceeds it. Against step 05, which has no tmpfs of its own,
//! the writes go to the host's directories and succeed (and are removed at once).

use workshop_testkit::{Output, run, step_binary};

/// Writes `mb` MiB of zeros to a file in each of `dirs` in a container started with `options`,
/// and removes it again. Returns the runtime's output: per directory, whether the write ran out
/// of space and how many KiB it got.
fn fill(options: &[&str], dirs: &[(&str, u32)]) -> Output {
    let file = format!("workshop-test-fill-{}", std::process::id());
    let mut script = String::new();
    for (dir, mb) in dirs {
        script.push_str(&format!(
            "f={dir}/{file}; if dd if=/dev/zero of=$f bs=1M count={mb} 2>/dev/null; then r=wrote; else r=ENOSPC; fi; \
             echo \"{dir}: $r after $(du -k $f | cut -f1) KiB\"; rm -f $f; "
        ));
    }
    let mut args = options.to_vec();
    args.extend(["--", "sh", "-c", &script]);
    let out = run(&step_binary!(), &args);
    eprintln!("{}", out.stdout);
    out
}

/// Asserts that the write to `dir` stopped at `limit_kib`.
fn stopped_at(out: &Output, dir: &str, limit_kib: u64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{dir}: ")))
        .unwrap_or_else(|| panic!("the container did not write to {dir}: {out:?}"));
    let kib: u64 = line.split_whitespace().nth(3).and_then(|n| n.parse().ok()).expect("a size in KiB");
    assert!(line.contains("ENOSPC") && kib <= limit_kib, "{dir} is not limited to {limit_kib} KiB: {line}");
}

#[test]
fn tmp_run_and_dev_shm_are_64_mb_by_default() {
    let out = fill(&[], &[("/tmp", 65), ("/run", 65), ("/dev/shm", 65)]);
    for dir in ["/tmp", "/run", "/dev/shm"] {
        stopped_at(&out, dir, 64 << 10);
    }
}

#[test]
fn tmpfs_size_and_shm_size_set_them() {
    let out = fill(&["--tmpfs-size", "8m", "--shm-size", "4m"], &[("/tmp", 9), ("/run", 9), ("/dev/shm", 5)]);
    stopped_at(&out, "/tmp", 8 << 10);
    stopped_at(&out, "/run", 8 << 10);
    stopped_at(&out, "/dev/shm", 4 << 10);
}
