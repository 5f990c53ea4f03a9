//! `mkimage DIR`: builds an image like the one step 10 uses by default (step 06's default rootfs
//! as the base layer, and two small layers above it), to look at or change (`scripts/mkimage`
//! runs it). Then use it with `--image DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use step01_clone::{cli, error};
use step06_rootfs::default_rootfs::build_once;
use step10_overlay::image::build_default;

/// Build an image of layers for the workshop's containers, offline, from what the host has.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The directory to create (it must not exist)
    dir: PathBuf,
}

fn main() -> ExitCode {
    error::main(|| {
        let args: Args = cli::parse();
        if build_once(&args.dir, build_default)? {
            println!("built {}", std::path::absolute(&args.dir).unwrap_or(args.dir).display());
        } else {
            println!("{} exists already: nothing to do", args.dir.display());
        }
        Ok(0)
    })
}
