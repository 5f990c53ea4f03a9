//! Step 09's new idea: a network namespace, and a cable from it to the host.
//!
//! With `CLONE_NEWNET` the container gets network devices, addresses, routes, ports and a
//! firewall of its own. A new network namespace holds one device, `lo`, and it is down: the
//! container can reach nothing, not even itself. To connect it, the runtime does from the host
//! what a person would do with `ip`:
//!
//! - once per host, a **bridge** (`workshop0`, a virtual switch) with the subnet's first address,
//!   10.213.0.1/24, which is the containers' gateway;
//! - per container, a **veth pair** (a virtual cable: what goes in one end comes out of the
//!   other) whose host end, `wk<runtime pid>`, is plugged into the bridge, and whose other end is
//!   created in the container's namespace as `eth0`;
//! - in the container's namespace, through a netlink socket opened there: `lo` and `eth0` up, an
//!   address on `eth0`, and a default route via the bridge.
//!
//! All of it happens while the child waits on its start pipe, so the network is there when the
//! command starts. The host end of the pair disappears by itself when the container's namespace
//! does; only the address is the runtime's to give back. Addresses are *leases*: a file per
//! address in `/run/workshop/net/<bridge>/`, made with `O_EXCL` so that two containers starting
//! at once never get the same one, and holding the runtime's pid, so that the leases of a
//! runtime killed with SIGKILL can be told from live ones and reclaimed.
//!
//! With `--net none` the container gets its namespace and `lo` alone.
//!
//! Root in the container has `CAP_NET_RAW` in its own namespace, so it can send any packet onto
//! the bridge, IPv6 router advertisements included. Every interface the runtime makes refuses
//! them (`accept_ra` and `autoconf` 0 on the bridge, on the host end of each pair and on the
//! container's `eth0`): otherwise one container could hand its neighbours and the host's bridge
//! addresses and routes of its choosing (CVE-2020-13401).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use nix::fcntl::Flock;
use nix::mount::MsFlags;
use nix::sched::{CloneFlags, setns};
use nix::unistd::Pid;
use step01_clone::error::{Context, Error, Result};
use step06_rootfs::rootfs::{Rootfs, mount_fs};
use step06_rootfs::state::{self, STATE_ROOT};
use step06_rootfs::tmpfs::TmpfsSizes;
use step08_userns::userns;

use crate::netlink::Netlink;

/// The bridge containers are attached to unless `--bridge` says otherwise.
pub const DEFAULT_BRIDGE: &str = "workshop0";
/// The bridge's subnet unless `--subnet` or `WORKSHOP_SUBNET` says otherwise: private, and
/// unlike the ranges Docker (172.17.0.0/16), libvirt (192.168.122.0/24) and home routers use.
pub const DEFAULT_SUBNET: &str = "10.213.0.0/24";
/// The container's end of the veth pair, inside its namespace.
pub const CONTAINER_IF: &str = "eth0";
/// Interface names are at most 15 bytes (IFNAMSIZ, 16, with the terminating NUL).
pub const MAX_IF_NAME: usize = 15;

/// Where the leases live: one directory per bridge, one file per address.
pub fn leases_root() -> PathBuf {
    Path::new(STATE_ROOT).join("net")
}

// ANCHOR: args
/// The network options.
#[derive(clap::Args, Debug, Clone)]
pub struct NetArgs {
    /// The container's network: `bridge` (a veth pair to a bridge of the host, an address of
    /// its own) or `none` (only lo)
    #[arg(long = "net", value_name = "MODE", value_enum, default_value_t = NetMode::Bridge)]
    pub mode: NetMode,
    /// The host's bridge to attach the container to (made on first use)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_BRIDGE)]
    pub bridge: BridgeName,
    /// The bridge's subnet, when the bridge is made; its first address is the bridge's
    #[arg(long, value_name = "CIDR", env = "WORKSHOP_SUBNET", default_value = DEFAULT_SUBNET)]
    pub subnet: Subnet,
    /// The container's address [default: the next free one in the subnet]
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub ip: Option<IpArg>,
}
// ANCHOR_END: args

/// `--net`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum NetMode {
    Bridge,
    None,
}

/// An interface name the kernel accepts, and that is safe as a directory name: 1 to 15
/// letters, digits, `-`, `_` or `.`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeName(String);

impl FromStr for BridgeName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let usage = "use 1 to 15 letters, digits, '-', '_' or '.'";
        if name.len() > MAX_IF_NAME {
            return Err(format!(
                "{name:?} is {} bytes, and interface names are at most 15: {usage}",
                name.len()
            ));
        }
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if name.is_empty() || name == "." || name == ".." || !name.chars().all(allowed) {
            return Err(format!("{name:?} is not an interface name: {usage}"));
        }
        Ok(BridgeName(name.to_owned()))
    }
}

impl fmt::Display for BridgeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IPv4 subnet, `10.213.0.0/24`: its network address and prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix: u8,
}

impl Subnet {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) }
    }

    /// Whether `address` is in the subnet.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & Self::mask(self.prefix) == u32::from(self.network)
    }

    /// Whether the subnet and `address/prefix` share an address.
    fn overlaps(&self, address: Ipv4Addr, prefix: u8) -> bool {
        let mask = Self::mask(self.prefix.min(prefix));
        u32::from(address) & mask == u32::from(self.network) & mask
    }

    /// The bridge's address: the first one of the subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + 1)
    }

    /// The broadcast address: the last one.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Self::mask(self.prefix))
    }

    /// The addresses containers may have: all but the network, the bridge's and the broadcast.
    fn container_addresses(&self) -> (u32, u32) {
        (u32::from(self.network) + 2, u32::from(self.broadcast()) - 1)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "a subnet is ADDRESS/PREFIX with a prefix from 8 to 30, e.g. 10.213.0.0/24";
        let (address, prefix) =
            text.split_once('/').ok_or_else(|| format!("{text:?} is not a subnet: {usage}"))?;
        let address: Ipv4Addr = address.parse().map_err(|_| format!("{text:?} is not a subnet: {usage}"))?;
        let prefix: u8 = prefix.parse().map_err(|_| format!("{text:?} is not a subnet: {usage}"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("{text}: {usage}"));
        }
        let network = Ipv4Addr::from(u32::from(address) & Self::mask(prefix));
        if network != address {
            return Err(format!("{text} is an address, not a subnet: did you mean {network}/{prefix}?"));
        }
        Ok(Subnet { network, prefix })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `--ip`: an IPv4 address, with the subnet's prefix length or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpArg {
    address: Ipv4Addr,
    prefix: Option<u8>,
}

impl FromStr for IpArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = "give an IPv4 address, with its prefix length or without, e.g. 10.213.0.50/24";
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = address.parse().map_err(|_| format!("{text:?} is not an address: {usage}"))?;
        let prefix = match prefix {
            Some(p) => Some(
                p.parse::<u8>()
                    .ok()
                    .filter(|p| *p <= 32)
                    .ok_or_else(|| format!("{text:?} has no valid prefix length (0 to 32): {usage}"))?,
            ),
            None => None,
        };
        Ok(IpArg { address, prefix })
    }
}

/// The container's network, from before it is cloned until the runtime is done with it.
/// Dropping it gives the address back.
#[derive(Debug)]
pub struct Network {
    bridged: Option<Bridged>,
}

#[derive(Debug)]
struct Bridged {
    bridge: String,
    bridge_index: u32,
    subnet: Subnet,
    lease: Lease,
}

// ANCHOR: prepare
impl Network {
    /// Before clone: checks the options, makes the bridge if it is not there yet, and leases
    /// the container's address. Nothing is made for `--net none`.
    pub fn prepare(args: &NetArgs) -> Result<Network> {
        if args.mode == NetMode::None {
            if args.ip.is_some() {
                return Err(Error::new("--ip needs a network to be in: drop --net none, or --ip"));
            }
            return Ok(Network { bridged: None });
        }
        let subnet = args.subnet;
        let wanted = args.ip.map(|ip| check_ip(ip, subnet, &args.bridge)).transpose()?;
        // One runtime at a time sets up bridges and hands out addresses.
        let _lock = lock()?;
        let mut host = Netlink::open()?;
        let bridge_index = ensure_bridge(&mut host, &args.bridge.0, subnet)?;
        let lease = Lease::take(&leases_root().join(&args.bridge.0), subnet, wanted)?;
        Ok(Network { bridged: Some(Bridged { bridge: args.bridge.0.clone(), bridge_index, subnet, lease }) })
    }
    // ANCHOR_END: prepare

    // ANCHOR: attach
    /// In the parent, while the child waits: cables the container's network namespace to the
    /// bridge and configures it, from outside, through a netlink socket opened in it.
    pub fn attach(&self, container: Pid) -> Result<()> {
        // ANCHOR: exercise-attach open /proc/PID/ns/net, a Netlink in it: lo up; then add_veth, eth0's address, refuse_router_advertisements on the host end and (in_network_namespace) eth0, eth0 up, the default route
        let netns_path = format!("/proc/{container}/ns/net");
        let netns = File::open(&netns_path).context(format!("opening {netns_path}"))?;
        // This socket keeps the namespace alive while it is open: it goes at the end of attach.
        let mut inside = Netlink::open_in(&netns)?;
        // ip link set lo up
        set_up(&mut inside, "lo")?;
        let Some(bridged) = &self.bridged else { return Ok(()) };
        let host_end = format!("wk{}", std::process::id());
        let mut host = Netlink::open()?;
        // ip link add wk4242 master workshop0 up type veth peer name eth0 netns /proc/4243/ns/net
        add_veth(&mut host, &host_end, bridged.bridge_index, &netns)?;
        let eth0 = link_by_name(&mut inside, CONTAINER_IF)
            .map_err(|errno| Error::new(format!("finding {CONTAINER_IF} in the container: {errno}")))?
            .header
            .index;
        // ip addr add 10.213.0.2/24 broadcast 10.213.0.255 dev eth0
        add_address(&mut inside, eth0, bridged.lease.address, bridged.subnet)?;
        refuse_router_advertisements(&host_end)?;
        in_network_namespace(&netns, || refuse_router_advertisements(CONTAINER_IF))?;
        // ip link set eth0 up
        set_up(&mut inside, CONTAINER_IF)?;
        // ip route add default via 10.213.0.1 dev eth0
        add_default_route(&mut inside, eth0, bridged.subnet.gateway()).map_err(|error| {
            Error::new(format!(
                "{error} (the gateway is {}, bridge {})",
                bridged.subnet.gateway(),
                bridged.bridge
            ))
        })
        // ANCHOR_END: exercise-attach
    }
    // ANCHOR_END: attach
}

/// Checks `--ip` against the subnet, before anything is made.
fn check_ip(ip: IpArg, subnet: Subnet, bridge: &BridgeName) -> Result<Ipv4Addr> {
    let address = ip.address;
    if !subnet.contains(address) {
        return Err(Error::new(format!(
            "--ip {address} is outside the subnet {subnet} of the bridge {bridge}: give an address in it (or another --subnet)"
        )));
    }
    if let Some(prefix) = ip.prefix.filter(|prefix| *prefix != subnet.prefix) {
        return Err(Error::new(format!(
            "--ip {address}/{prefix}: the bridge's subnet is {subnet}, so the prefix length is {}",
            subnet.prefix
        )));
    }
    let role = if address == subnet.network {
        "the subnet's network address"
    } else if address == subnet.gateway() {
        "the bridge's own address"
    } else if address == subnet.broadcast() {
        "the subnet's broadcast address"
    } else {
        return Ok(address);
    };
    let (first, last) = subnet.container_addresses();
    Err(Error::new(format!(
        "--ip {address} is {role}: give one from {} to {}",
        Ipv4Addr::from(first),
        Ipv4Addr::from(last)
    )))
}

// ANCHOR: bridge
/// Makes the bridge with the subnet's first address, unless it exists; returns its index. An
/// existing one must be a bridge, and have that address (or none yet). A subnet that overlaps
/// one of the host's is refused before anything is made.
fn ensure_bridge(host: &mut Netlink, name: &str, subnet: Subnet) -> Result<u32> {
    let addresses = ipv4_addresses(host)?;
    let index = match link_by_name(host, name) {
        Ok(link) if is_kind(&link, &InfoKind::Bridge) => link.header.index,
        Ok(_) => {
            return Err(Error::new(format!(
                "{name} exists on the host and is not a bridge: give --bridge the name of a bridge, or a new name"
            )));
        }
        Err(Errno::ENODEV) => {
            check_overlap(&addresses, subnet)?;
            // ip link add workshop0 type bridge
            let mut bridge = LinkMessage::default();
            bridge.attributes.push(LinkAttribute::IfName(name.to_owned()));
            bridge.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
            match host.request(RouteNetlinkMessage::NewLink(bridge), NLM_F_CREATE | NLM_F_EXCL) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(Errno::EOPNOTSUPP) => return Err(unsupported("bridge")),
                Err(errno) => return Err(Error::new(format!("creating the bridge {name}: {errno}"))),
            }
            link_by_name(host, name)
                .map_err(|errno| Error::new(format!("finding the bridge {name}: {errno}")))?
                .header
                .index
        }
        Err(errno) => return Err(Error::new(format!("looking for the bridge {name}: {errno}"))),
    };
    match addresses.iter().find(|a| a.index == index) {
        Some(a) if a.address == subnet.gateway() && a.prefix == subnet.prefix => {}
        Some(a) => {
            let theirs = Subnet {
                network: Ipv4Addr::from(u32::from(a.address) & Subnet::mask(a.prefix)),
                prefix: a.prefix,
            };
            return Err(Error::new(format!(
                "the bridge {name} has the address {}/{}, not {}/{}: use --subnet {theirs} (or WORKSHOP_SUBNET), \
                 or another --bridge",
                a.address,
                a.prefix,
                subnet.gateway(),
                subnet.prefix,
            )));
        }
        None => {
            check_overlap(&addresses, subnet)?;
            // ip addr add 10.213.0.1/24 broadcast 10.213.0.255 dev workshop0
            add_address(host, index, subnet.gateway(), subnet)?;
        }
    }
    refuse_router_advertisements(name)?;
    // ip link set workshop0 up
    set_up(host, name)?;
    Ok(index)
}

/// Refuses a subnet that shares addresses with one of the host's: the host would route them to
/// the bridge, away from where they are.
fn check_overlap(addresses: &[HostAddress], subnet: Subnet) -> Result<()> {
    match addresses.iter().find(|a| subnet.overlaps(a.address, a.prefix)) {
        Some(other) => Err(Error::new(format!(
            "--subnet {subnet} overlaps {}/{} of {} on the host: choose another subnet (--subnet or WORKSHOP_SUBNET)",
            other.address, other.prefix, other.label
        ))),
        None => Ok(()),
    }
}
// ANCHOR_END: bridge

/// The error for a kind of link this kernel cannot make.
fn unsupported(kind: &str) -> Error {
    Error::new(format!(
        "this kernel cannot make {kind} interfaces (CONFIG_{}): load the module with `modprobe {kind}`, or run with --net none",
        kind.to_uppercase()
    ))
}

// ANCHOR: router_advertisements
/// `sysctl net.ipv6.conf.IF.accept_ra=0 net.ipv6.conf.IF.autoconf=0`: `interface` (one the
/// runtime made, never `all` or `default`) ignores IPv6 router advertisements, which any
/// container can send onto the bridge, and makes no address from their prefixes. The settings
/// are those of the calling thread's network namespace. Nothing to do without IPv6.
fn refuse_router_advertisements(interface: &str) -> Result<()> {
    for setting in ["accept_ra", "autoconf"] {
        let path = format!("/proc/sys/net/ipv6/conf/{interface}/{setting}");
        match fs::write(&path, "0") {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            other => other.context(format!("writing 0 to {path}"))?,
        }
    }
    Ok(())
}

/// Runs `f` in a thread that has entered the network namespace `netns` (setns(2) moves only
/// the calling thread), for the settings under /proc/sys/net, which are per namespace.
fn in_network_namespace(netns: &File, f: impl FnOnce() -> Result<()> + Send) -> Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).context("setns(CLONE_NEWNET)")?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::new("the thread that entered the network namespace failed")))
    })
}
// ANCHOR_END: router_advertisements

// ANCHOR: veth
/// Creates the veth pair: `host_end` on the host, plugged into the bridge and up, and its peer
/// directly in the container's namespace (`netns`), as `eth0`.
fn add_veth(host: &mut Netlink, host_end: &str, bridge_index: u32, netns: &File) -> Result<()> {
    // ANCHOR: exercise-add_veth a NewLink request: a veth named host_end, master bridge_index, up, its peer eth0 in netns
    let mut peer = LinkMessage::default();
    peer.attributes.push(LinkAttribute::IfName(CONTAINER_IF.to_owned()));
    peer.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
    let mut veth = LinkMessage::default();
    veth.header.flags = LinkFlags::Up;
    veth.header.change_mask = LinkFlags::Up;
    veth.attributes.push(LinkAttribute::IfName(host_end.to_owned()));
    veth.attributes.push(LinkAttribute::Controller(bridge_index));
    veth.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    let message = RouteNetlinkMessage::NewLink(veth);
    match host.request(message.clone(), NLM_F_CREATE | NLM_F_EXCL) {
        Ok(_) => Ok(()),
        // Named after our pid, so left by a dead runtime that had it, whose container's
        // namespace is still going away: ip link del wk4242
        Err(Errno::EEXIST) => {
            let mut old = LinkMessage::default();
            old.attributes.push(LinkAttribute::IfName(host_end.to_owned()));
            let _ = host.request(RouteNetlinkMessage::DelLink(old), 0);
            host.request(message, NLM_F_CREATE | NLM_F_EXCL)
                .map(drop)
                .map_err(|errno| Error::new(format!("creating the veth pair {host_end}: {errno}")))
        }
        Err(Errno::EOPNOTSUPP) => Err(unsupported("veth")),
        Err(errno) => Err(Error::new(format!("creating the veth pair {host_end}: {errno}"))),
    }
    // ANCHOR_END: exercise-add_veth
}
// ANCHOR_END: veth

/// `ip link show NAME`: the link called `name`, or ENODEV.
fn link_by_name(netlink: &mut Netlink, name: &str) -> Result<LinkMessage, Errno> {
    let mut query = LinkMessage::default();
    query.attributes.push(LinkAttribute::IfName(name.to_owned()));
    let answers = netlink.request(RouteNetlinkMessage::GetLink(query), 0)?;
    answers
        .into_iter()
        .find_map(|answer| match answer {
            RouteNetlinkMessage::NewLink(link) => Some(link),
            _ => None,
        })
        .ok_or(Errno::ENODEV)
}

fn is_kind(link: &LinkMessage, kind: &InfoKind) -> bool {
    link.attributes.iter().any(|attribute| match attribute {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|info| info == &LinkInfo::Kind(kind.clone())),
        _ => false,
    })
}

/// `ip link set NAME up`.
fn set_up(netlink: &mut Netlink, name: &str) -> Result<()> {
    let mut link = LinkMessage::default();
    link.header.flags = LinkFlags::Up;
    link.header.change_mask = LinkFlags::Up;
    link.attributes.push(LinkAttribute::IfName(name.to_owned()));
    netlink
        .request(RouteNetlinkMessage::SetLink(link), 0)
        .map(drop)
        .map_err(|errno| Error::new(format!("setting {name} up: {errno}")))
}

/// `ip addr add ADDRESS/PREFIX broadcast BROADCAST dev INDEX`.
fn add_address(netlink: &mut Netlink, index: u32, address: Ipv4Addr, subnet: Subnet) -> Result<()> {
    // ANCHOR: exercise-add_address a NewAddress request: family Inet, prefix_len, index, Local, Address and Broadcast attributes
    let mut message = AddressMessage::default();
    message.header.family = AddressFamily::Inet;
    message.header.prefix_len = subnet.prefix;
    message.header.index = index;
    message.attributes.push(AddressAttribute::Local(address.into()));
    message.attributes.push(AddressAttribute::Address(address.into()));
    message.attributes.push(AddressAttribute::Broadcast(subnet.broadcast()));
    match netlink.request(RouteNetlinkMessage::NewAddress(message), NLM_F_CREATE | NLM_F_EXCL) {
        Ok(_) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(Error::new(format!("adding the address {address}/{}: {errno}", subnet.prefix))),
    }
    // ANCHOR_END: exercise-add_address
}

/// `ip route add default via GATEWAY dev INDEX`.
fn add_default_route(netlink: &mut Netlink, index: u32, gateway: Ipv4Addr) -> Result<()> {
    let mut route = RouteMessage::default();
    route.header.address_family = AddressFamily::Inet;
    route.header.table = RouteHeader::RT_TABLE_MAIN;
    route.header.protocol = RouteProtocol::Boot;
    route.header.kind = RouteType::Unicast;
    route.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    route.attributes.push(RouteAttribute::Oif(index));
    netlink
        .request(RouteNetlinkMessage::NewRoute(route), NLM_F_CREATE | NLM_F_EXCL)
        .map(drop)
        .map_err(|errno| Error::new(format!("adding the default route: {errno}")))
}

/// An IPv4 address of a link of the host.
struct HostAddress {
    index: u32,
    address: Ipv4Addr,
    prefix: u8,
    label: String,
}

/// `ip -4 addr show`: every IPv4 address of the namespace.
fn ipv4_addresses(netlink: &mut Netlink) -> Result<Vec<HostAddress>> {
    let mut query = AddressMessage::default();
    query.header.family = AddressFamily::Inet;
    let answers = netlink
        .request(RouteNetlinkMessage::GetAddress(query), NLM_F_DUMP)
        .map_err(|errno| Error::new(format!("listing the host's addresses: {errno}")))?;
    Ok(answers
        .into_iter()
        .filter_map(|answer| {
            let RouteNetlinkMessage::NewAddress(message) = answer else { return None };
            let mut address = None;
            let mut label = String::new();
            for attribute in &message.attributes {
                match attribute {
                    AddressAttribute::Local(std::net::IpAddr::V4(ip)) => address = Some(*ip),
                    AddressAttribute::Address(std::net::IpAddr::V4(ip)) if address.is_none() => {
                        address = Some(*ip)
                    }
                    AddressAttribute::Label(name) => label = name.clone(),
                    _ => {}
                }
            }
            Some(HostAddress {
                index: message.header.index,
                address: address?,
                prefix: message.header.prefix_len,
                label,
            })
        })
        .collect())
}

// ANCHOR: sysfs
/// Step 08's kernel filesystems, but a sysfs of the container's own on /sys, read-only: its
/// user namespace owns its network namespace now, which the kernel requires for that, and
/// /sys/class/net shows the container's interfaces (`lo`, `eth0`) instead of the host's.
pub fn mount_kernel_filesystems(root: &Rootfs, sizes: &TmpfsSizes) -> Result<()> {
    userns::mount_kernel_filesystems_with(root, sizes, |sys| {
        let read_only = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        // mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
        mount_fs("sysfs", sys, read_only, "")
    })
}
// ANCHOR_END: sysfs

// ANCHOR: lease
/// The container's address, held as long as the file `/run/workshop/net/<bridge>/<address>`
/// exists; removed when dropped.
#[derive(Debug)]
struct Lease {
    path: PathBuf,
    address: Ipv4Addr,
}

impl Lease {
    /// Leases `wanted`, or else the next free address after the one handed out last (so that
    /// a released address is not reused at once, while the host may still remember which
    /// device had it). Stale leases are reclaimed first. The caller holds the lock.
    fn take(dir: &Path, subnet: Subnet, wanted: Option<Ipv4Addr>) -> Result<Lease> {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
        reclaim_stale_in(dir);
        if let Some(address) = wanted {
            return Lease::create(dir, address)?.ok_or_else(|| {
                let owner = fs::read_to_string(dir.join(address.to_string())).unwrap_or_default();
                Error::new(format!(
                    "--ip {address} is in use (by the container of runtime {}): give another address, or none",
                    owner.trim()
                ))
            });
        }
        let (first, end) = subnet.container_addresses();
        let count = end - first + 1;
        // The file `last` holds the address handed out last.
        let last = dir.join("last");
        let hint = fs::read_to_string(&last).unwrap_or_default();
        let start = match hint.trim().parse::<Ipv4Addr>().map(u32::from) {
            Ok(previous) if (first..=end).contains(&previous) => previous - first + 1,
            _ => 0,
        };
        for n in 0..count {
            let address = Ipv4Addr::from(first + (start + n) % count);
            if let Some(lease) = Lease::create(dir, address)? {
                remember_last(&last, address);
                return Ok(lease);
            }
        }
        Err(Error::new(format!(
            "all {count} addresses of {subnet} are in use by running containers: use a larger --subnet or another --bridge"
        )))
    }

    /// Creates the lease file of `address` with `O_CREAT | O_EXCL`, which fails if it exists.
    fn create(dir: &Path, address: Ipv4Addr) -> Result<Option<Lease>> {
        let path = dir.join(address.to_string());
        match OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path) {
            Ok(mut file) => {
                let lease = Lease { path, address };
                writeln!(file, "{}", std::process::id())
                    .context(format!("writing {}", lease.path.display()))?;
                Ok(Some(lease))
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(e).context(format!("creating {}", path.display())),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `address` over the file `last`, in place and padded to the longest address, so that
/// the file is never truncated: ext4 (`auto_da_alloc`) writes a file that was truncated and
/// written again out to disk when it is closed, 0.35 ms a container on this machine's /run.
fn remember_last(last: &Path, address: Ipv4Addr) {
    if let Ok(file) = OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(last) {
        let _ = file.write_all_at(format!("{address:<15}\n").as_bytes(), 0);
    }
}
// ANCHOR_END: lease

/// Takes the lock (flock on `/run/workshop/net/lock`) under which bridges are set up and
/// addresses handed out. It goes with the process, however that ends.
fn lock() -> Result<Flock<File>> {
    let root = leases_root();
    fs::create_dir_all(&root).context(format!("creating {}", root.display()))?;
    state::lock(&root.join("lock"))
}

/// Removes the leases in `dir` whose runtime no longer runs (or that hold no pid: their runtime
/// died between creating and writing them). The caller holds the lock.
fn reclaim_stale_in(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return removed };
    for entry in entries.flatten() {
        let is_lease = entry.file_name().to_str().is_some_and(|name| name.parse::<Ipv4Addr>().is_ok());
        let owner = fs::read_to_string(entry.path()).ok().and_then(|text| text.trim().parse::<u32>().ok());
        let alive = owner.is_some_and(state::runtime_alive);
        if is_lease && !alive && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Removes the leases of runtimes that no longer run, on every bridge; returns them. (Each
/// runtime does this for its bridge when it takes an address.)
pub fn reclaim_stale_leases() -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(bridges) = fs::read_dir(leases_root()) else { return removed };
    let Ok(_lock) = lock() else { return removed };
    for bridge in bridges.flatten().filter(|entry| entry.path().is_dir()) {
        removed.extend(reclaim_stale_in(&bridge.path()));
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let subnet: Subnet = "10.213.0.0/24".parse().unwrap();
        assert_eq!(subnet.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(subnet.broadcast(), Ipv4Addr::new(10, 213, 0, 255));
        assert!(subnet.contains(Ipv4Addr::new(10, 213, 0, 77)));
        assert!(!subnet.contains(Ipv4Addr::new(10, 213, 1, 77)));
        assert!(subnet.overlaps(Ipv4Addr::new(10, 0, 0, 1), 8));
        assert!(subnet.overlaps(Ipv4Addr::new(10, 213, 0, 129), 25));
        assert!(!subnet.overlaps(Ipv4Addr::new(10, 214, 0, 1), 24));
        let (first, last) = subnet.container_addresses();
        assert_eq!(
            (Ipv4Addr::from(first), Ipv4Addr::from(last)),
            (Ipv4Addr::new(10, 213, 0, 2), Ipv4Addr::new(10, 213, 0, 254))
        );
        for bad in [
            "",
            "10.213.0.0",
            "10.213.0.5/24",
            "10.213.0.0/31",
            "10.213.0.0/7",
            "banana/24",
            "10.213.0.0/x",
            "300.0.0.0/8",
        ] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn ip_arguments() {
        assert_eq!(
            "10.213.0.9/24".parse::<IpArg>().unwrap(),
            IpArg { address: Ipv4Addr::new(10, 213, 0, 9), prefix: Some(24) }
        );
        assert_eq!("10.213.0.9".parse::<IpArg>().unwrap().prefix, None);
        for bad in ["", "banana", "10.213.0.300", "10.213.0.9/33", "10.213.0.9/", "10.213.0.9/24/1", "::1"] {
            assert!(bad.parse::<IpArg>().is_err(), "{bad:?} was accepted");
        }
        let subnet: Subnet = DEFAULT_SUBNET.parse().unwrap();
        let bridge: BridgeName = DEFAULT_BRIDGE.parse().unwrap();
        let check = |text: &str| check_ip(text.parse().unwrap(), subnet, &bridge);
        assert_eq!(check("10.213.0.9/24").unwrap(), Ipv4Addr::new(10, 213, 0, 9));
        for (bad, says) in [
            ("10.214.0.9", "outside"),
            ("10.213.0.9/16", "prefix length is 24"),
            ("10.213.0.0", "network address"),
            ("10.213.0.1", "bridge's own"),
            ("10.213.0.255", "broadcast"),
        ] {
            let message = check(bad).unwrap_err().to_string();
            assert!(message.contains(says), "{bad}: {message}");
        }
    }

    #[test]
    fn bridge_names() {
        assert!("workshop0".parse::<BridgeName>().is_ok());
        assert!("br-test_1.a".parse::<BridgeName>().is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "a:b", "sixteen-chars-xx", "ünicode"] {
            assert!(bad.parse::<BridgeName>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn an_unsupported_kind_names_the_module() {
        let message = unsupported("veth").to_string();
        assert!(message.contains("CONFIG_VETH") && message.contains("modprobe veth"), "{message}");
    }
}
