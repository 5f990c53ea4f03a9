//! Images: what a container's root filesystem is made of from step 10 on.
//!
//! An image is a directory of *layers*, each one a directory tree, and a file named `layers`
//! that lists them, one directory name a line, **base first** (the order in which they were
//! made, as in an OCI manifest):
//!
//! ```text
//! /var/lib/workshop/images/default/
//! ├── layers        base
//! │                 web
//! │                 release
//! ├── base/         a whole root filesystem (step 06's)
//! ├── web/          what the next layer adds or changes
//! └── release/      and the one above it
//! ```
//!
//! Blank lines and lines starting with `#` are ignored. A layer must be a real directory in the
//! image directory: not a symbolic link, which could name any directory of the host (`/etc`,
//! another container's writable layer), and each layer is held open from the moment the image is
//! read, so that what the container gets is what was checked.
//!
//! A layer above the base holds only what changed, in overlayfs's own format, so that overlay can
//! use it as it is:
//! - a file that is new or changed is there, whole;
//! - a file or directory that was *deleted* is a **whiteout**: a character device with device
//!   number 0/0, under the deleted name;
//! - a directory whose lower contents are all gone (deleted, then made again) is **opaque**: it
//!   carries the extended attribute `user.overlay.opaque=y`. That is the form overlay reads when
//!   it is mounted inside a user namespace, as the container's is (see [`crate::overlay`]); the
//!   builder also sets `trusted.overlay.opaque=y`, the form a mount by the host's root reads.
//!
//! Layers are never written to: each container gets a writable layer of its own on top of them.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use step01_clone::error::{Context, Error, Result};
use step06_rootfs::beneath::open_beneath;
use step06_rootfs::default_rootfs::{self, Source, refresh};

/// Where the workshop's images live.
pub const IMAGES: &str = "/var/lib/workshop/images";
/// The image used when `--image` is not given, built on first use.
pub const DEFAULT_IMAGE: &str = "/var/lib/workshop/images/default";
/// The file of an image that lists its layers, base first.
pub const LAYERS_FILE: &str = "layers";

/// An image whose layer list has been read and whose layers exist.
#[derive(Clone, Debug)]
pub struct Image {
    path: PathBuf,
    layers: Vec<PathBuf>,
    /// The layers' directories, held open (`O_PATH`), base first.
    fds: Vec<Arc<OwnedFd>>,
}

impl Image {
    // ANCHOR: open
    /// Reads the image in `dir`: its `layers` file, and the layer directories it names, which
    /// must all exist and be real directories of the image, each opened from a descriptor of
    /// the image's directory without following a symbolic link ([`open_beneath`]). Every
    /// mistake is one line naming the image and the fix.
    pub fn open(dir: &Path) -> Result<Image> {
        let path = fs::canonicalize(dir).map_err(|_| {
            Error::new(format!(
                "image {} does not exist (give --image a directory holding a `{LAYERS_FILE}` file and \
                 the layer directories it lists; scripts/mkimage builds one)",
                dir.display()
            ))
        })?;
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(image_fd) = open(&path, dir_flags, Mode::empty()) else {
            return Err(Error::new(format!("image {} is not a directory", dir.display())));
        };
        let list = match fs::read_to_string(path.join(LAYERS_FILE)) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::new(format!(
                    "image {} has no `{LAYERS_FILE}` file (it lists the layer directories, one a line, \
                     base first)",
                    dir.display()
                )));
            }
            other => other.context(format!("reading {}", path.join(LAYERS_FILE).display()))?,
        };
        let mut layers = Vec::new();
        let mut fds = Vec::new();
        let mut seen = HashSet::new();
        for (number, line) in list.lines().enumerate().map(|(i, line)| (i + 1, line.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("image {}: line {number} of `{LAYERS_FILE}`", dir.display());
            let mut components = Path::new(line).components();
            if !matches!((components.next(), components.next()), (Some(Component::Normal(_)), None)) {
                return Err(Error::new(format!(
                    "{at}: {line:?} is not the name of a directory in the image (one name a line, no '/')"
                )));
            }
            if !seen.insert(line) {
                return Err(Error::new(format!("{at}: layer {line} is listed twice")));
            }
            let layer = open_beneath(image_fd.as_fd(), Path::new(line), dir_flags).map_err(|errno| {
                Error::new(match errno {
                    Errno::ENOENT => format!("{at}: layer {line} does not exist"),
                    Errno::ELOOP => format!(
                        "{at}: layer {line} is a symbolic link; a layer must be a real directory in the image"
                    ),
                    Errno::ENOTDIR => format!("{at}: layer {line} is not a directory"),
                    errno => format!("{at}: opening layer {line}: {errno}"),
                })
            })?;
            layers.push(path.join(line));
            fds.push(Arc::new(layer));
        }
        if layers.is_empty() {
            return Err(Error::new(format!(
                "image {}: `{LAYERS_FILE}` lists no layer (one layer directory name a line, base first)",
                dir.display()
            )));
        }
        Ok(Image { path, layers, fds })
    }
    // ANCHOR_END: open

    /// The image's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layers' directories, base first, as the `layers` file lists them.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// The layers' directories as opened when the image was read, base first: what the
    /// container gets, whatever their paths lead to by now.
    pub fn layer_fds(&self) -> impl DoubleEndedIterator<Item = BorrowedFd<'_>> {
        self.fds.iter().map(|fd| fd.as_fd())
    }
}

/// The image builder's version, recorded in the default image ([`ABOUT_IMAGE`]): raise it
/// whenever [`build_default`] changes what it builds, so that older caches are rebuilt.
pub const IMAGE_BUILDER: u32 = 1;
/// The file beside the layers in which the default image says how it was built.
pub const ABOUT_IMAGE: &str = "workshop-image";

/// The default image, built first if missing, rebuilt if it is stale: made by an older image
/// builder, or on a base layer that step 06's builder would now build differently (safe when
/// several runtimes start at once: see [`refresh`]).
pub fn default_image() -> Result<Image> {
    refresh(Path::new(DEFAULT_IMAGE), stale, build_default)?;
    default_rootfs::hold(Path::new(DEFAULT_IMAGE))?;
    Image::open(Path::new(DEFAULT_IMAGE))
}

/// Why the image in `dir`, built by [`build_default`], is out of date, if it is.
pub fn stale(dir: &Path) -> Option<String> {
    let about = fs::read_to_string(dir.join(ABOUT_IMAGE)).unwrap_or_default();
    let builder = about.lines().find_map(|line| line.strip_prefix("builder="));
    if builder != Some(IMAGE_BUILDER.to_string().as_str()) {
        return Some(format!("it was not built by version {IMAGE_BUILDER} of the image builder"));
    }
    default_rootfs::stale(&dir.join("base")).map(|why| format!("its base layer is stale: {why}"))
}

// ANCHOR: build_default
/// Builds the default image in `dest`, offline: a rootfs built as step 06 builds its default one
/// as the base, and two small layers above it that show what layers do. `web` adds a file (`/etc/motd`) and a little
/// site; `release` changes a file of it, deletes one (a whiteout) and empties a directory (an
/// opaque one). Looked at from inside a container:
///
/// ```text
/// /srv/www/index.html    release's, over web's
/// /srv/www/debug.html    web's, deleted by release: gone
/// /srv/www/drafts/       web's two drafts hidden by release's opaque directory: empty
/// ```
pub fn build_default(dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).context(format!("creating {}", dest.display()))?;
    default_rootfs::build(&dest.join("base"), Source::Auto)?;

    let web = dest.join("web");
    write(&web, "etc/motd", "Welcome to a container of the workshop's default image.\n")?;
    write(&web, "srv/www/index.html", "<h1>Work in progress</h1>\n")?;
    write(&web, "srv/www/debug.html", "<p>Debugging notes, not for release</p>\n")?;
    write(&web, "srv/www/drafts/first.html", "<p>First draft</p>\n")?;
    write(&web, "srv/www/drafts/second.html", "<p>Second draft</p>\n")?;

    let release = dest.join("release");
    write(&release, "srv/www/index.html", "<h1>Release 1.0</h1>\n")?;
    whiteout(&release.join("srv/www/debug.html"))?;
    opaque_dir(&release.join("srv/www/drafts"))?;

    fs::write(dest.join(LAYERS_FILE), "# base first\nbase\nweb\nrelease\n")
        .context("writing the layer list")?;
    fs::write(dest.join(ABOUT_IMAGE), format!("builder={IMAGE_BUILDER}\n"))
        .context("writing the image's builder")
}
// ANCHOR_END: build_default

/// Writes `content` to `path` inside the layer `layer`, making the directories on the way.
fn write(layer: &Path, path: &str, content: &str) -> Result<()> {
    let file = layer.join(path);
    if let Some(dir) = file.parent() {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    }
    fs::write(&file, content).context(format!("writing {}", file.display()))
}

// ANCHOR: whiteout
/// Marks `path` deleted in its layer: a character device 0/0 of that name (what overlay itself
/// leaves in a writable layer when a lower file is removed).
pub fn whiteout(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    }
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
        .context(format!("mknod {} c 0 0", path.display()))
}

/// Makes `path` an empty opaque directory: nothing of the same directory in lower layers shows
/// through it.
pub fn opaque_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).context(format!("creating {}", path.display()))?;
    set_xattr(path, c"user.overlay.opaque", b"y")?;
    set_xattr(path, c"trusted.overlay.opaque", b"y")
}
// ANCHOR_END: whiteout

fn set_xattr(path: &Path, name: &CStr, value: &[u8]) -> Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(format!("{}: a path with a NUL byte", path.display())))?;
    // SAFETY: two NUL-terminated strings and a buffer of the length given, all alive for the call.
    let set =
        unsafe { libc::lsetxattr(c_path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(set).map(drop).context(format!("setting {} on {}", name.to_string_lossy(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(layers: &str, dirs: &[&str]) -> (PathBuf, Result<Image>) {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("workshop-image-unit-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(LAYERS_FILE), layers).unwrap();
        for d in dirs {
            fs::create_dir(dir.join(d)).unwrap();
        }
        let opened = Image::open(&dir);
        (dir, opened)
    }

    #[test]
    fn layers_are_read_base_first_without_comments() {
        let (dir, opened) = image("# a comment\nbase\n\n  top  \n", &["base", "top"]);
        let layers = opened.unwrap().layers().to_vec();
        assert_eq!(layers, [dir.join("base"), dir.join("top")]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bad_layer_lists_are_refused() {
        for (list, mentions) in [
            ("", "lists no layer"),
            ("# only a comment\n", "lists no layer"),
            ("base\n../etc\n", "line 2"),
            ("a/b\n", "no '/'"),
            ("/etc\n", "no '/'"),
            ("base\nbase\n", "listed twice"),
            ("base\nmissing\n", "layer missing does not exist"),
        ] {
            let (dir, opened) = image(list, &["base"]);
            let error = opened.expect_err(list).to_string();
            assert!(error.contains(mentions), "{list:?}: {error}");
            assert_eq!(error.lines().count(), 1, "{error}");
            fs::remove_dir_all(dir).unwrap();
        }
    }
}
