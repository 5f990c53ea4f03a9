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

/// Every command the book and the tests type in a container, whichever flavour the default
/// rootfs was built in (on a host that has what scripts/test installs).
#[test]
fn the_default_rootfs_has_what_the_book_and_the_tests_use_in_either_flavour() {
    let step06 = env!("CARGO_BIN_EXE_step06-rootfs").as_ref();
    let commands = step06_rootfs::default_rootfs::COMMANDS.join(" ");
    for flavour in ["host", "busybox"] {
        let script = format!(
            "WORKSHOP_ROOTFS_FROM={flavour} \"$STEP\" -- sh -c \
             'for c in {commands}; do command -v $c >/dev/null || echo \"no $c\"; done; cat /etc/workshop-rootfs'"
        );
        let out = workshop_testkit::with_empty_cache(&script, &[("STEP", step06)]);
        assert_eq!(out.code, 0, "{flavour}: {out:?}");
        assert!(out.stdout.contains(&format!("flavour={flavour}")), "{flavour}: {out:?}");
        assert!(!out.stdout.contains("no "), "the {flavour} rootfs lacks commands: {out:?}");
    }
}

/// A cache that the current builder would build differently is rebuilt by the next run, and
/// the replaced one goes, leaving nothing beside the new one.
#[test]
fn a_stale_default_rootfs_is_rebuilt() {
    let step06 = env!("CARGO_BIN_EXE_step06-rootfs").as_ref();
    let about = "/var/lib/workshop/rootfs/etc/workshop-rootfs";
    let script = format!(
        r#"
        WORKSHOP_ROOTFS_FROM=host "$STEP" -- true
        grep flavour= {about}
        "$STEP" -- true                                   # busybox is installed: rebuilt from it
        grep flavour= {about}
        sed -i 's/^builder=.*/builder=1/' {about}; "$STEP" -- true     # an older builder's
        grep builder= {about}
        rm {about}; "$STEP" -- true                                     # from before it said
        test -f {about}
        WORKSHOP_ROOTFS_FROM=host "$STEP" -- true
        sed -i 's/^missing=.*/missing=sh/' {about}                       # the host has sh now
        WORKSHOP_ROOTFS_FROM=host "$STEP" -- true
        grep missing= {about} | grep -qw sh || echo "has sh"
        ls -A /var/lib/workshop
        "#
    );
    let out = workshop_testkit::with_empty_cache(&script, &[("STEP", step06)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        printed(&out),
        [
            "flavour=host",
            "flavour=busybox",
            &format!("builder={}", step06_rootfs::default_rootfs::BUILDER),
            "has sh",
            "rootfs"
        ],
        "{out:?}"
    );
    for why in [
        "a static busybox is installed now",
        "WORKSHOP_ROOTFS_FROM=host asks for the host's binaries",
        "version 1 of the builder",
        "does not say how it was built",
        "built without sh, which the host has now",
    ] {
        assert!(out.stderr.contains(why), "rebuilt because {why}: {out:?}");
    }
}

/// A rebuild never pulls the rootfs from under a container that runs on it: the replaced build
/// stays until its last runtime is gone, and the next start removes it.
#[test]
fn a_rebuild_leaves_a_running_containers_rootfs_alone() {
    let step06 = env!("CARGO_BIN_EXE_step06-rootfs").as_ref();
    let script = r#"
        WORKSHOP_ROOTFS_FROM=host "$STEP" -- true
        WORKSHOP_ROOTFS_FROM=host "$STEP" -- sh -c 'sleep 5; ls /bin/sh /etc/workshop-rootfs' > /tmp/first.$$ &
        until pgrep -f '^sh -c sleep 5; ls /bin/sh' >/dev/null; do sleep 0.1; done   # it runs
        "$STEP" -- true                # rebuilds from busybox while the first one runs
        ls -A /var/lib/workshop | grep -c '^\.rootfs\.old-' || true
        wait $! && cat /tmp/first.$$
        rm -f /tmp/first.$$
        "$STEP" -- true
        ls -A /var/lib/workshop
    "#;
    let out = workshop_testkit::with_empty_cache(script, &[("STEP", step06)]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(printed(&out), ["1", "/bin/sh", "/etc/workshop-rootfs", "rootfs"], "{out:?}");
}

/// `mkrootfs DIR` builds DIR where the caller is, names it in full, and leaves nothing beside it.
#[test]
fn mkrootfs_builds_a_relative_dir_where_it_is_run() {
    let dir = TempDir::new("relative-rootfs");
    let out = workshop_testkit::run_command(mkrootfs().arg("rf").current_dir(dir.path()));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout.trim(), format!("built {}", dir.path().join("rf").display()), "{out:?}");
    let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(entries, ["rf"], "only the rootfs, no lock file");
}

/// What a script printed, less the runtimes' banners.
fn printed(out: &workshop_testkit::Output) -> Vec<&str> {
    out.stdout.lines().filter(|l| !l.starts_with("Parent") && !l.starts_with("Container")).collect()
}
