//! Attacks on the host's network that work up to step 08, which shares the host's network
//! namespace, and fail from step 09 on. Each test makes its own target (a service on a random
//! loopback port, an abstract unix socket, a bridge of its own) and tries the attack from a
//! container with a small program; `scripts/progression` checks that against step 08 each one
//! fails, because there the attack works.

mod common;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::Path;

use common::TestBridge;
use workshop_testkit::{Shell, TempDir, host, run, step_binary};

/// Builds tests/NAME.c as a static program in `dir` (which the container sees as a volume).
fn build(name: &str, dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/{name}.c"));
    workshop_testkit::build_static(&source, &dir.join(name));
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn host_services_on_loopback_and_abstract_sockets_are_out_of_reach() {
    let tools = TempDir::new("reach");
    build("reach", tools.path());
    let secret = format!("host-only {}", std::process::id());
    // A service of the host's on 127.0.0.1, on a port the kernel picks.
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    // And one on an abstract unix socket.
    let name = format!("workshop-test-{}", std::process::id());
    let unix = UnixListener::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
    let (tcp_secret, unix_secret) = (secret.clone(), secret.clone());
    std::thread::spawn(move || {
        for mut stream in tcp.incoming().flatten() {
            let _ = stream.write_all(tcp_secret.as_bytes());
        }
    });
    std::thread::spawn(move || {
        for mut stream in unix.incoming().flatten() {
            let _ = stream.write_all(unix_secret.as_bytes());
        }
    });
    let volume = format!("{}:/attack:ro", tools.path().display());
    let out = run(&step_binary!(), &["-v", &volume, "--", "/attack/reach", &port, &name]);
    eprintln!("{}", out.stdout);
    assert!(
        out.stdout.contains("127.0.0.1") && out.stdout.contains("@abstract"),
        "the attack did run: {out:?}"
    );
    assert!(!out.stdout.contains(&secret), "the container reached the host's local services: {out:?}");
}

/// The prefix this test advertises, unique to it: fd77:6b73:PID-high:PID-low::/64, and the
/// same as /proc/net shows it (32 hex digits, no colons; the first 16 are the prefix).
fn test_prefix() -> (String, String) {
    let pid = std::process::id();
    let (high, low) = ((pid >> 16) & 0xffff, pid & 0xffff);
    (format!("fd77:6b73:{high:x}:{low:x}::"), format!("fd776b73{high:04x}{low:04x}"))
}

/// The lines of /proc/net/if_inet6 (addresses) and /proc/net/ipv6_route (routes) that mention
/// `hex`, read with `cat` (in a container, or on the host).
fn mentions(tables: &str, hex: &str) -> Vec<String> {
    tables.lines().filter(|line| line.contains(hex)).map(str::to_owned).collect()
}

#[test]
fn a_router_advertisement_reconfigures_neither_the_bridge_nor_a_neighbour() {
    let bridge = TestBridge::new("ra", 110);
    let tools = TempDir::new("ra");
    build("ra", tools.path());
    let (prefix, hex) = test_prefix();
    let mut args = bridge.args();
    let volume = format!("{}:/attack:ro", tools.path().display());
    // The neighbour, on the same bridge, waiting.
    let neighbour_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut neighbour = Shell::start(&step_binary!(), &neighbour_args);
    // The attacker.
    args.extend(["-v".into(), volume, "--".into(), "/attack/ra".into(), "eth0".into(), prefix.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&step_binary!(), &args);
    eprintln!("{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("router advertisements sent"), "the attack did run: {out:?}");
    assert!(!out.stdout.contains("sent: 0 of"), "the container could not send: {out:?}");
    let neighbour_sees = neighbour.run("cat /proc/net/if_inet6 /proc/net/ipv6_route");
    let host_sees = host("cat /proc/net/if_inet6 /proc/net/ipv6_route");
    let taken = (mentions(&neighbour_sees, &hex), mentions(&host_sees, &hex));
    eprintln!("the neighbour's addresses and routes in {prefix}/64: {:?}", taken.0);
    eprintln!("the host's addresses and routes in {prefix}/64: {:?}", taken.1);
    neighbour.exit(0);
    assert!(taken.0.is_empty(), "the neighbour took the advertised prefix {prefix}/64: {:?}", taken.0);
    assert!(taken.1.is_empty(), "the host's bridge took the advertised prefix {prefix}/64: {:?}", taken.1);
}
