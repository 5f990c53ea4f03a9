//! Sizes of the container's tmpfs mounts: /tmp, /run and /dev/shm.
//!
//! A tmpfs lives in RAM (and swap), and without a `size=` the kernel lets each one grow to
//! half of the host's memory: three of them let one container pin one and a half times the
//! host's RAM, beyond any limit of the container's own when it has none (`--memory`, step 07,
//! charges the pages to the container, but only when given). So each gets a size, as Docker
//! gives /dev/shm 64 MB: writing beyond it fails with ENOSPC, and the host's memory is safe.
//! /tmp and /run get 64 MB too (`--tmpfs-size`): enough for what programs keep there (sockets,
//! pid files, lock files, a compiler's temporaries), and a bound on what a container can take
//! from the host by default: 3 × 64 MB. A container that needs more says so.

use std::fmt;
use std::str::FromStr;

// ANCHOR: sizes
/// The sizes of the container's tmpfs mounts, from the command line.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct TmpfsSizes {
    /// Size of each of the container's /tmp and /run (in RAM), e.g. 64m or 1g
    #[arg(long = "tmpfs-size", value_name = "SIZE", default_value = "64m")]
    pub tmp: Size,
    /// Size of the container's /dev/shm (POSIX shared memory, in RAM), e.g. 64m or 1g
    #[arg(long = "shm-size", value_name = "SIZE", default_value = "64m")]
    pub shm: Size,
}
// ANCHOR_END: sizes

/// A size in bytes, written as a number with an optional k, m or g (binary units: 1k = 1024).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Size(pub u64);

impl Size {
    /// The tmpfs option that sets it: `size=67108864`.
    pub fn option(self) -> String {
        format!("size={}", self.0)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a size: give a number of bytes with k, m or g, e.g. 64m");
        let (digits, unit) = match text.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_lowercase()),
            _ => (text, 'b'),
        };
        let shift = match unit {
            'b' => 0,
            'k' => 10,
            'm' => 20,
            'g' => 30,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        match n.checked_mul(1 << shift) {
            // The kernel rounds a size up to whole pages; less than one is surely a mistake.
            Some(bytes) if bytes >= 4096 => Ok(Size(bytes)),
            _ => Err(format!("{text:?} is too small or too large for a tmpfs: give at least 4k, e.g. 64m")),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64m".parse(), Ok(Size(64 << 20)));
        assert_eq!("1G".parse(), Ok(Size(1 << 30)));
        assert_eq!("8192".parse(), Ok(Size(8192)));
        assert_eq!("16k".parse(), Ok(Size(16 << 10)));
        for bad in ["", "m", "64x", "-1m", "1.5g", "0", "100", "99999999999999g"] {
            assert!(bad.parse::<Size>().is_err(), "{bad:?} was accepted");
        }
    }
}
