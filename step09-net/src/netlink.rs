//! Talking to the kernel's network configuration the way `ip` does: rtnetlink.
//!
//! A `NETLINK_ROUTE` socket takes requests (messages such as `RTM_NEWLINK`, `RTM_NEWADDR`,
//! `RTM_NEWROUTE`, built here with the `netlink-packet-route` crate) and answers each one with
//! an acknowledgement that carries an errno, 0 for success; a *dump* request gets a series of
//! messages ended by `NLMSG_DONE`. The socket acts on the network namespace it was created in,
//! for as long as it is open, whichever namespace its owner moves to afterwards.

use std::fs::File;
use std::os::fd::AsFd;

use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use step01_clone::error::{Context, Error, Result};

/// A rtnetlink socket in one network namespace.
pub struct Netlink {
    socket: Socket,
    sequence: u32,
    buffer: Vec<u8>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace (the host's, for the runtime).
    pub fn open() -> Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("socket(AF_NETLINK, NETLINK_ROUTE)")?;
        socket.bind_auto().context("binding a netlink socket")?;
        socket.connect(&SocketAddr::new(0, 0)).context("connecting a netlink socket to the kernel")?;
        Ok(Netlink { socket, sequence: 0, buffer: Vec::with_capacity(1 << 16) })
    }

    // ANCHOR: open_in
    /// A socket in the network namespace `netns` (an open `/proc/PID/ns/net`). setns(2) moves
    /// only the calling thread, so a thread of its own enters the namespace, creates the socket
    /// there, and ends; the socket stays in that namespace.
    pub fn open_in(netns: &File) -> Result<Netlink> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(netns.as_fd(), CloneFlags::CLONE_NEWNET).context("setns(CLONE_NEWNET)")?;
                    Netlink::open()
                })
                .join()
                .unwrap_or_else(|_| Err(Error::new("the thread that entered the network namespace failed")))
        })
    }
    // ANCHOR_END: open_in

    /// Sends `message` with `flags` (`NLM_F_CREATE`, `NLM_F_EXCL`, `NLM_F_DUMP`, …) and returns
    /// the messages the kernel answered with, or the errno it refused the request with.
    pub fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Errno> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0).map_err(io_errno)?;

        let mut answers = Vec::new();
        loop {
            self.buffer.clear();
            let size = self.socket.recv(&mut self.buffer, 0).map_err(io_errno)?;
            if size > self.buffer.len() {
                return Err(Errno::EMSGSIZE);
            }
            let mut offset = 0;
            while offset < size {
                let reply: NetlinkMessage<RouteNetlinkMessage> =
                    NetlinkMessage::deserialize(&self.buffer[offset..size]).map_err(|_| Errno::EBADMSG)?;
                let length = reply.header.length as usize;
                if reply.header.sequence_number == self.sequence {
                    match reply.payload {
                        NetlinkPayload::InnerMessage(answer) => answers.push(answer),
                        // The end of a dump.
                        NetlinkPayload::Done(_) => return Ok(answers),
                        // The acknowledgement: no code for success, -errno otherwise.
                        NetlinkPayload::Error(error) => {
                            return match error.code {
                                None => Ok(answers),
                                Some(code) => Err(Errno::from_raw(-code.get())),
                            };
                        }
                        _ => {}
                    }
                }
                if length == 0 {
                    break;
                }
                offset += length;
            }
        }
    }
}

fn io_errno(error: std::io::Error) -> Errno {
    Errno::from_raw(error.raw_os_error().unwrap_or(libc::EIO))
}
