//! The rootfs builder: both flavours give a working container, and building is safe when
//! several runtimes start at once.

use std::process::{Command, Stdio};

use workshop_testkit::{TempDir, run};

fn mkrootfs() -> Command {
    workshop_testkit::require_root();
    Command::new(env!("CARGO_BIN_EXE_mkrootfs"))
}

#[test]
fn a_rootfs_from_the_hosts_binaries_runs_a_container() {
    let dir = TempDir::new("host-rootfs");
    let rootfs = dir.path().join("rootfs");
    assert!(mkrootfs().args(["--from", "host"]).arg(&rootfs).status().unwrap().success());
    let about = std::fs::read_to_string(rootfs.join("etc/workshop-rootfs")).unwrap();
    assert!(about.contains("the host's binaries"), "{about}");
    let step06 = env!("CARGO_BIN_EXE_step06-rootfs").as_ref();
    let out = run(
        step06,
        &["--rootfs", rootfs.to_str().unwrap(), "--", "sh", "-c", "ls /bin/ls && ps -o pid= | head -1"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("/bin/ls"), "{out:?}");
}

#[test]
fn a_rootfs_from_busybox_has_its_applets() {
    let dir = TempDir::new("busybox-rootfs");
    let rootfs = dir.path().join("rootfs");
    let built = mkrootfs().args(["--from", "busybox"]).arg(&rootfs).output().unwrap();
    assert!(built.status.success(), "the busybox flavour needs busybox-static: {built:?}");
    assert_eq!(std::fs::read_link(rootfs.join("bin/ls")).unwrap().to_str(), Some("/bin/busybox"));
    // Debian's busybox has no IPC applets; step 03 needs them, so the host's are copied in.
    let step06 = env!("CARGO_BIN_EXE_step06-rootfs").as_ref();
    let out = run(step06, &["--rootfs", rootfs.to_str().unwrap(), "--", "sh", "-c", "ipcmk -Q && ipcs -q"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("0x"), "{out:?}");
}

#[test]
fn concurrent_builds_make_one_complete_rootfs() {
    let dir = TempDir::new("concurrent-rootfs");
    let rootfs = dir.path().join("rootfs");
    let builders: Vec<_> =
        (0..6).map(|_| mkrootfs().arg(&rootfs).stdout(Stdio::piped()).spawn().unwrap()).collect();
    let outputs: Vec<_> = builders.into_iter().map(|b| b.wait_with_output().unwrap()).collect();
    assert!(outputs.iter().all(|o| o.status.success()), "{outputs:?}");
    let built = outputs.iter().filter(|o| String::from_utf8_lossy(&o.stdout).starts_with("built")).count();
    assert_eq!(built, 1, "exactly one builder builds, the others find it done");
    assert!(rootfs.join("etc/workshop-rootfs").is_file());
    let leftovers = workshop_testkit::half_built_in(dir.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_dead_runtimes_state_is_reclaimed() {
    // A state directory named after a pid that runs nothing, as a SIGKILLed runtime leaves it.
    let dead_pid = (400_000..).find(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()).unwrap();
    let stale = std::path::Path::new("/run/workshop").join(format!("step06-rootfs-{dead_pid}"));
    std::fs::create_dir_all(&stale).unwrap();
    let out = run(env!("CARGO_BIN_EXE_step06-rootfs").as_ref(), &["true"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!stale.exists(), "the next run reclaims what a dead runtime left");
}
