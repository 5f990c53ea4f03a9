//! Step 09's feature: the container has a network of its own, cabled to a bridge of the host.
//! `scripts/progression` checks that each of these fails against step 08.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{BRIDGE, SUBNET, TestBridge, address_in, addresses_inside, host_end, pings};
use workshop_testkit::{Shell, eventually, step_binary};

#[test]
fn eth0_has_an_address_from_the_subnet_and_reaches_the_bridge() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    let address = address_in(&mut shell, SUBNET);
    assert_eq!(shell.run("cat /sys/class/net/eth0/operstate"), "up");
    assert!(pings(&mut shell, "10.213.0.1".parse().unwrap()), "the bridge does not answer {address}");
    // The host end of the pair is plugged into the bridge.
    let master = std::fs::read_link(host_end(shell.runtime_pid().as_raw() as u32).join("master")).unwrap();
    assert!(master.ends_with(BRIDGE), "{master:?}");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn sys_class_net_lists_the_containers_interfaces_only() {
    let mut shell = Shell::start(&step_binary!(), &[]);
    assert_eq!(shell.run("ls /sys/class/net | tr '\\n' ' '"), "eth0 lo");
    assert_eq!(
        shell.run("touch /sys/class/net/probe 2>&1 || echo refused").lines().last(),
        Some("refused"),
        "the container's sysfs is read-only"
    );
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn the_host_reaches_the_container() {
    // On a bridge of the test's own: on the shared one, other tests' containers come and go all
    // the time, and the address this one gets may have been another's a moment ago, still in
    // the host's ARP cache with that one's MAC.
    let bridge = TestBridge::new("hst", 107);
    let args = bridge.args();
    let mut shell = Shell::start(&step_binary!(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let address = address_in(&mut shell, bridge.subnet);
    // A listener again after each connection: an attempt that connects but reads nothing (the
    // reply lost while the new address settles) must not leave the next ones refused.
    shell.run("(while :; do echo hello-from-the-container | nc -l -p 7000 >/dev/null; done &)");
    let line = eventually("a connection from the host to the container", || {
        let stream =
            TcpStream::connect_timeout(&SocketAddr::from((address, 7000)), Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).ok()?;
        Some(line)
    });
    assert_eq!(line.trim(), "hello-from-the-container");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn two_containers_get_different_addresses_and_reach_each_other() {
    let mut first = Shell::start(&step_binary!(), &[]);
    let mut second = Shell::start(&step_binary!(), &[]);
    let (a, b) = (address_in(&mut first, SUBNET), address_in(&mut second, SUBNET));
    assert_ne!(a, b, "two containers running at once got the same address");
    assert!(pings(&mut first, b), "{a} cannot reach {b}");
    assert!(pings(&mut second, a), "{b} cannot reach {a}");
    assert_eq!(first.exit(0), 0);
    assert_eq!(second.exit(0), 0);
}

#[test]
fn net_none_gives_only_lo() {
    let mut shell = Shell::start(&step_binary!(), &["--net", "none"]);
    assert_eq!(shell.run("ls /sys/class/net"), "lo");
    assert_eq!(addresses_inside(&mut shell), ["127.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()]);
    assert!(pings(&mut shell, "127.0.0.1".parse().unwrap()), "lo is not up");
    assert_eq!(shell.exit(0), 0);
}

#[test]
fn ip_picks_the_address() {
    let bridge = TestBridge::new("ip", 101);
    let wanted = bridge.address(77);
    let mut args = bridge.args();
    args.extend(["--ip".into(), format!("{wanted}/24")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut shell = Shell::start(&step_binary!(), &args);
    assert_eq!(address_in(&mut shell, bridge.subnet), wanted);
    assert!(pings(&mut shell, bridge.address(1)), "the test bridge does not answer");
    assert_eq!(shell.exit(0), 0);
}
