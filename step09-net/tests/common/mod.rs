//! Looking at a container's network from inside (with what busybox has: /proc, /sys, `ping`)
//! and from the host (/sys/class/net, the lease files), and bridges of a test's own.

#![allow(dead_code)] // each test file uses part of it

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use workshop_testkit::Shell;

/// The default bridge and its subnet.
pub const BRIDGE: &str = "workshop0";
pub const SUBNET: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 213, 0, 0), 24);

/// The IPv4 addresses of the container's own interfaces, from the kernel's table of local
/// addresses (busybox has no `ip`): the `/32 host LOCAL` entries of /proc/net/fib_trie.
pub fn addresses_inside(shell: &mut Shell) -> Vec<Ipv4Addr> {
    let out = shell.run(r#"awk '/32 host LOCAL/ { print prev } { prev = $2 }' /proc/net/fib_trie | sort -u"#);
    out.lines().filter_map(|line| line.trim().parse().ok()).collect()
}

/// Whether `address` is in `subnet`.
pub fn in_subnet(address: Ipv4Addr, (network, prefix): (Ipv4Addr, u8)) -> bool {
    u32::from(address) >> (32 - prefix) == u32::from(network) >> (32 - prefix)
}

/// The container's address in `subnet` (not the bridge's, the first: a container that shares
/// the host's network sees that one); fails the test when it has none.
pub fn address_in(shell: &mut Shell, subnet: (Ipv4Addr, u8)) -> Ipv4Addr {
    let addresses = addresses_inside(shell);
    let bridge = Ipv4Addr::from(u32::from(subnet.0) + 1);
    *addresses
        .iter()
        .find(|address| in_subnet(**address, subnet) && **address != bridge)
        .unwrap_or_else(|| panic!("no address in {}/{} inside, only {addresses:?}", subnet.0, subnet.1))
}

/// Whether a `ping` from inside the container reaches `address`: one answer is enough, and
/// `ping` keeps asking, once a second, for up to 10 s (a first request can be lost while the
/// neighbour's address is being resolved on a loaded machine).
pub fn pings(shell: &mut Shell, address: Ipv4Addr) -> bool {
    let out = shell.run(&format!("ping -c1 -w10 {address} >/dev/null 2>&1; echo status=$?"));
    out.ends_with("status=0")
}

/// The host end of a runtime's veth pair, as the host sees it.
pub fn host_end(runtime: u32) -> PathBuf {
    PathBuf::from(format!("/sys/class/net/wk{runtime}"))
}

/// The lease file of `address` on `bridge`.
pub fn lease(bridge: &str, address: Ipv4Addr) -> PathBuf {
    Path::new("/run/workshop/net").join(bridge).join(address.to_string())
}

/// A bridge of one test's own, for tests that pick addresses or subnets: a name no other test
/// uses, and a /24 of 10.213.0.0/16 that the test chooses. Deleted, with its leases, when
/// dropped (the workshop's own bridge stays, as bridges do).
pub struct TestBridge {
    pub name: String,
    pub subnet: (Ipv4Addr, u8),
}

impl TestBridge {
    /// `tag` makes the name unique among the tests; `third` is the subnet's third byte.
    pub fn new(tag: &str, third: u8) -> TestBridge {
        let name = format!("wt{tag}{}", std::process::id() % 100_000);
        assert!(name.len() <= 15, "{name} is too long for an interface name");
        TestBridge { name, subnet: (Ipv4Addr::new(10, 213, third, 0), 24) }
    }

    /// `--subnet` for this bridge.
    pub fn subnet_arg(&self) -> String {
        format!("{}/{}", self.subnet.0, self.subnet.1)
    }

    /// The address `n` of the subnet (`.n`).
    pub fn address(&self, n: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.0.octets();
        Ipv4Addr::new(a, b, c, n)
    }

    /// `--bridge NAME --subnet SUBNET`.
    pub fn args(&self) -> Vec<String> {
        vec!["--bridge".into(), self.name.clone(), "--subnet".into(), self.subnet_arg()]
    }
}

impl Drop for TestBridge {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(Path::new("/run/workshop/net").join(&self.name));
    }
}
