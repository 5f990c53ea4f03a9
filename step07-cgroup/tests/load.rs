//! Many containers: at once, each with a cgroup of its own, and in a soak with every kind of
//! ending; nothing may be left behind.

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

use workshop_testkit::{require_root, step_binary};

#[test]
fn twenty_containers_at_once_each_get_their_own_cgroup_and_leave_nothing() {
    require_root();
    let runtimes: Vec<_> = (0..20)
        .map(|_| {
            Command::new(step_binary!())
                .args([
                    "--memory",
                    "64m",
                    "--pids",
                    "50",
                    "--",
                    "sh",
                    "-c",
                    "grep memory /proc/self/cgroup; sleep 1",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut cgroups = HashSet::new();
    let mut pids = Vec::new();
    for runtime in runtimes {
        pids.push(runtime.id());
        let out = runtime.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let cgroup = stdout.lines().find(|l| l.contains("workshop/")).unwrap_or_default().to_owned();
        assert!(!cgroup.is_empty(), "not in a workshop cgroup: {stdout}");
        cgroups.insert(cgroup);
    }
    assert_eq!(cgroups.len(), 20, "two containers shared a cgroup: {cgroups:?}");
    for pid in pids {
        let name = format!("step07-cgroup-{pid}");
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"] {
            assert!(
                !Path::new(root).join("workshop").join(&name).exists(),
                "{root}/workshop/{name} was left"
            );
        }
        assert!(!Path::new("/run/workshop").join(&name).exists(), "/run/workshop/{name} was left");
    }
}

#[test]
fn a_short_soak_leaves_nothing_behind() {
    require_root();
    let soak = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/soak");
    let out = Command::new(soak)
        .args(["50", "--bin"])
        .arg(step_binary!())
        .output()
        .expect("scripts/soak runs (python3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/soak 50 found a leak:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("51 containers"), "{stdout}");
}
