//! Step 09 of the container workshop: a network of the container's own ([`net`]), set up from
//! the host by speaking netlink as `ip` does ([`netlink`]).

pub mod net;
pub mod netlink;
