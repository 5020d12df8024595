//! `bootkit-install`: write an OS image to a disk, verify it, make it boot, configure it.
//! Run as `image2disk` (or with `--from-env`) it is the Tinkerbell action of that name.

use bootkit_common::error_chain;
use bootkit_common::install_config::{FetchRetries, IndexRange, SavePartitions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use bootkit_installer::image2disk;
use bootkit_installer::install::{self, InstallRequest};
use bootkit_installer::progress::{Progress, ProgressMode};
use clap::Parser;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

#[derive(Debug, Parser)]
#[command(
    name = "bootkit-install",
    version,
    about = "Write an OS image to a disk, verify it, make it boot and configure it.",
    after_help = "Exit status: 0 only when the image was written and verified (or the \
                  --dry-run plan was made); 1 on any failure, 2 on a usage error."
)]
struct Cli {
    /// The image: a file, a block device (/dev/nbd0) or an http(s) URL.
    #[arg(long, value_name = "SRC")]
    image: Option<String>,
    /// The target disk (/dev/..., /dev/disk/by-id/..., a serial or a WWN); automatic if absent.
    #[arg(long, value_name = "DEV")]
    disk: Option<String>,
    /// The target disk, as coreos-installer takes it (`bootkit-install --image F /dev/sda`).
    #[arg(value_name = "DEST", conflicts_with = "disk")]
    dest: Option<String>,
    /// The sha256 of the image file as published.
    #[arg(long, value_name = "HEX", conflicts_with = "sha256_file")]
    sha256: Option<String>,
    /// A sha256sum file with a line for the image.
    #[arg(long, value_name = "FILE")]
    sha256_file: Option<PathBuf>,
    /// A bmaptool block map of the uncompressed image: only mapped ranges are written.
    #[arg(long, value_name = "FILE")]
    bmap: Option<PathBuf>,
    /// The install config (TOML).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// CA certificates (PEM) to trust for an https image.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "bar")]
    progress: ProgressMode,
    /// Print the plan (source, format, size, disk and why, layout) and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Refuse an image without a published checksum (--sha256, --sha256-file, or
    /// IMAGE.sha256sum / IMAGE.sha256 beside the image).
    #[arg(long)]
    require_checksum: bool,
    /// Keep the target's partitions with this GPT name (a shell glob such as `edge_*`) across
    /// the install; repeatable. They must lie after the image.
    #[arg(long, value_name = "GLOB")]
    save_partlabel: Vec<String>,
    /// Keep the target's partitions with these numbers (N or N-M) across the install;
    /// repeatable.
    #[arg(long, value_name = "N|N-M")]
    save_partindex: Vec<IndexRange>,
    /// On a failed write leave the disk as the failure left it (default: clear its partition
    /// tables so it cannot boot half an image).
    #[arg(long)]
    preserve_on_error: bool,
    /// How often a broken or stalled download of an image URL is resumed (default 10).
    #[arg(long, value_name = "N|infinite")]
    fetch_retries: Option<FetchRetries>,
    /// With no --image and no --config: install from the USB stick's BOOTKIT-DATA partition,
    /// waiting up to 60 s for it (implied by bootkit.mode=standalone on the kernel command line).
    #[arg(long)]
    usb: bool,
    /// Read the Tinkerbell image2disk environment (IMG_URL, DEST_DISK, ...) instead.
    #[arg(long)]
    from_env: bool,
}

static CANCEL: AtomicBool = AtomicBool::new(false);

extern "C" fn request_cancel(_: libc::c_int) {
    CANCEL.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM stop the write at the next buffer; the engine then clears the disk's
/// partition table instead of leaving half an image that looks bootable.
fn cancel_on_signals() {
    let action = SigAction::new(
        SigHandler::Handler(request_cancel),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if let Err(error) = unsafe { sigaction(signal, &action) } {
            eprintln!("bootkit-install: warning: cannot catch {signal}: {error}");
        }
    }
}

fn called_as_image2disk() -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name() == Some("image2disk".as_ref()))
}

fn main() -> ExitCode {
    let (request, mode) = if called_as_image2disk() {
        match image2disk::request_from_env(|name| std::env::var(name).ok()) {
            Ok(request) => (request, ProgressMode::Plain),
            Err(error) => return fail(&error),
        }
    } else {
        let cli = Cli::parse();
        if cli.from_env {
            match image2disk::request_from_env(|name| std::env::var(name).ok()) {
                Ok(request) => (request, cli.progress),
                Err(error) => return fail(&error),
            }
        } else {
            let request = InstallRequest {
                image: cli.image,
                disk: cli.disk.or(cli.dest),
                sha256: cli.sha256,
                sha256_file: cli.sha256_file,
                bmap: cli.bmap,
                config: cli.config,
                dry_run: cli.dry_run,
                http: install::http_options(cli.ca),
                require_checksum: cli.require_checksum,
                save: SavePartitions {
                    labels: cli.save_partlabel,
                    indexes: cli.save_partindex,
                },
                preserve_on_error: cli.preserve_on_error,
                fetch_retries: cli.fetch_retries,
                usb: cli.usb,
                compressed: None,
            };
            (request, cli.progress)
        }
    };
    cancel_on_signals();
    let mut progress = Progress::new(mode);
    match install::run(&request, &mut progress, &CANCEL) {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    // The whole chain: each error names what failed, its sources say why.
    eprintln!("bootkit-install: error: {}", error_chain(error));
    ExitCode::FAILURE
}
