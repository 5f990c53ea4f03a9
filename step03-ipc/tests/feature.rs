//! Step 03's feature: System V IPC objects are the container's own.
//! `scripts/progression` checks that each of these fails against step 02.

use workshop_testkit::{Shell, host, step_binary};

/// The keys (`0x…`) that `ipcs -q` lists.
fn queue_keys(ipcs_output: &str) -> Vec<String> {
    ipcs_output
        .lines()
        .filter(|line| line.starts_with("0x"))
        .map(|line| line.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// A message queue made on the host for one test, removed when the test ends.
struct HostQueue(String);

impl HostQueue {
    fn new() -> HostQueue {
        let made = host("ipcmk -Q");
        HostQueue(made.rsplit(' ').next().expect("ipcmk prints the id").to_owned())
    }
}

impl Drop for HostQueue {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ipcrm").args(["-q", &self.0]).status();
    }
}

#[test]
fn a_queue_made_on_the_host_is_not_seen_inside() {
    let _queue = HostQueue::new();
    assert!(!queue_keys(&host("ipcs -q")).is_empty(), "the host lists its queue");
    let mut shell = Shell::start(&step_binary!(), &[]);
    let inside = shell.run("ipcs -q");
    assert!(queue_keys(&inside).is_empty(), "the container sees the host's queues:\n{inside}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn a_queue_made_inside_is_gone_with_the_container() {
    let before = queue_keys(&host("ipcs -q"));
    let mut shell = Shell::start(&step_binary!(), &[]);
    shell.run("ipcmk -Q");
    let keys = queue_keys(&shell.run("ipcs -q"));
    // On a step without an IPC namespace the queue lands on the host: remove it there too,
    // whatever the assertions below find.
    let made: Vec<String> = keys.iter().filter(|key| !before.contains(key)).cloned().collect();
    let _cleanup = scopeguard(move || {
        for key in &made {
            let _ = std::process::Command::new("ipcrm").args(["-Q", key]).status();
        }
    });
    assert_eq!(keys.len(), 1, "the container lists the queue it made");
    assert!(!queue_keys(&host("ipcs -q")).contains(&keys[0]), "the container's queue is on the host");
    assert_eq!(shell.exit(0), 0);
    assert!(!queue_keys(&host("ipcs -q")).contains(&keys[0]), "the queue outlived the container");
}

fn scopeguard(f: impl FnOnce()) -> impl Drop {
    struct Guard<F: FnOnce()>(Option<F>);
    impl<F: FnOnce()> Drop for Guard<F> {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f()
            }
        }
    }
    Guard(Some(f))
}
