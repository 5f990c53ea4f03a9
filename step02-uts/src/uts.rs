//! Step 02's new idea: a UTS namespace, so the container can have a hostname of its own.
//!
//! "UTS" is the `struct utsname` that uname(2) returns. With `CLONE_NEWUTS` the child gets its
//! own copy of the hostname and NIS domain name; `sethostname` in the child then changes only
//! the copy. (Without the namespace the same call renames the host: never call it outside one.)

use std::fmt;
use std::str::FromStr;

use step01_clone::error::{Context, Result};

/// The longest hostname the kernel accepts (`HOST_NAME_MAX`).
pub const MAX_LEN: usize = 64;

/// A hostname that the kernel and resolvers accept: 1 to 64 bytes of letters, digits, `-` and
/// `.`, in labels that neither start nor end with `-`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hostname(String);

impl FromStr for Hostname {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        if name.is_empty() {
            return Err("a hostname cannot be empty".into());
        }
        if name.len() > MAX_LEN {
            return Err(format!("a hostname is at most {MAX_LEN} bytes; this one has {}", name.len()));
        }
        if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '.')) {
            return Err(format!("a hostname may hold letters, digits, '-' and '.', not {bad:?}"));
        }
        if name.split('.').any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-')) {
            return Err(
                "each dot-separated part of a hostname must be non-empty and not start or end with '-'"
                    .into(),
            );
        }
        Ok(Hostname(name.to_owned()))
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// ANCHOR: set_hostname
/// Sets the hostname of the UTS namespace the calling process is in.
pub fn set_hostname(name: &Hostname) -> Result<()> {
    // ANCHOR: exercise-set_hostname call sethostname(2) with the name: nix::unistd::sethostname
    nix::unistd::sethostname(&name.0).context(format!("sethostname {name}"))
    // ANCHOR_END: exercise-set_hostname
}
// ANCHOR_END: set_hostname

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["container", "web-1", "a.b.c", &"x".repeat(MAX_LEN)] {
            assert!(name.parse::<Hostname>().is_ok(), "{name} should be accepted");
        }
    }

    #[test]
    fn rejects_what_the_kernel_or_resolvers_would_not_take() {
        for name in ["", &"x".repeat(MAX_LEN + 1), "under_score", "space d", "-lead", "trail-", "a..b", "é"]
        {
            assert!(name.parse::<Hostname>().is_err(), "{name:?} should be rejected");
        }
    }
}
