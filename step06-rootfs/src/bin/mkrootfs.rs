//! `mkrootfs [--from auto|busybox|host] DIR`: builds a rootfs like the one step 06 uses by
//! default, to look at or change (`scripts/mkrootfs` runs it). Then use it with `--rootfs DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use step01_clone::{cli, error};
use step06_rootfs::default_rootfs::{self, Source};

#[derive(Clone, Copy, ValueEnum)]
enum From {
    /// A static busybox if the host has one, else the host's binaries
    Auto,
    /// The host's static busybox and a link per applet
    Busybox,
    /// Some of the host's binaries and the libraries they need
    Host,
}

/// Build a root filesystem for the workshop's containers, offline, from what the host has.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// What to build it from
    #[arg(long, value_enum, default_value = "auto")]
    from: From,
    /// The directory to create (it must not exist)
    dir: PathBuf,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        let source = match args.from {
            From::Auto => Source::Auto,
            From::Busybox => Source::Busybox,
            From::Host => Source::Host,
        };
        if default_rootfs::ensure(&args.dir, source)? {
            println!("built {}", std::path::absolute(&args.dir).unwrap_or(args.dir).display());
        } else {
            println!("{} exists already: nothing to do", args.dir.display());
        }
        Ok(0)
    })
}
