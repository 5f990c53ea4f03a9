//! Many containers: at once, each with a cgroup, an address and a writable layer of its own, and in a soak
//! with every kind of ending; nothing may be left behind. (The last step carries these: its
//! runtime does everything the others do.)

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};

use workshop_testkit::{named_after, require_root, step_binary};

/// Run in each container: print its cgroup and address, then check that no other container's write shows
/// in its root and that its own write stays its own while the others write too.
const SCRIPT: &str = r#"grep -E ':memory:|^0::' /proc/self/cgroup
ip -4 -o addr show eth0 | awk '{ print "address " $4 }'
mark=$(cat /proc/sys/kernel/random/uuid)
test -e /root/mark && echo "shared layer: $(cat /root/mark)"
echo "$mark" > /root/mark
sleep 1
test "$(cat /root/mark)" = "$mark" && echo own-layer"#;

#[test]
fn twenty_containers_at_once_each_get_their_own_cgroup_address_and_layer_and_leave_nothing() {
    require_root();
    let runtimes: Vec<_> = (0..20)
        .map(|_| {
            Command::new(step_binary!())
                .args(["--memory", "64m", "--pids", "50", "--", "sh", "-c", SCRIPT])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut cgroups = HashSet::new();
    let mut addresses = HashSet::new();
    let mut pids = Vec::new();
    for runtime in runtimes {
        pids.push(runtime.id());
        let out = runtime.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("own-layer") && !stdout.contains("shared layer"), "{stdout}");
        let cgroup = stdout.lines().find(|l| l.contains("workshop/")).unwrap_or_default().to_owned();
        assert!(!cgroup.is_empty(), "not in a workshop cgroup: {stdout}");
        cgroups.insert(cgroup);
        let address = stdout.lines().find_map(|l| l.strip_prefix("address ")).unwrap_or_default();
        assert!(address.starts_with("10.213.0."), "no address on eth0: {stdout}");
        addresses.insert(address.to_owned());
    }
    assert_eq!(cgroups.len(), 20, "two containers shared a cgroup: {cgroups:?}");
    assert_eq!(addresses.len(), 20, "two containers shared an address: {addresses:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for pid in pids {
        let left = named_after(pid);
        assert!(left.is_empty(), "runtime {pid} left {left:?}");
        let state = format!("/run/workshop/step10-overlay-{pid}/");
        assert!(!mountinfo.contains(&state), "a mount of {state} is left on the host");
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
