//! Step 06 of the container workshop: a root filesystem of the container's own ([`rootfs`]),
//! paths inside it resolved from file descriptors ([`beneath`]), the runtime's per-container
//! files ([`state`]), the rootfs built on first use ([`default_rootfs`]) and the sizes of its
//! tmpfs mounts ([`tmpfs`]).

pub mod beneath;
pub mod default_rootfs;
pub mod rootfs;
pub mod state;
pub mod tmpfs;
