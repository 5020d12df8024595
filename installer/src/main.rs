//! `bootkit-install`: write an OS image to a disk, verify it, make it boot, configure it.
//! Run as `image2disk` (or with `--from-env`) it is the Tinkerbell action of that name.

use bootkit_common::error_chain;
use bootkit_common::install_config::{
    ConsoleSpec, FetchRetries, IndexRange, KernelArg, SavePartitions,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use bootkit_installer::image2disk;
use bootkit_installer::install::{self, InstallRequest};
use bootkit_installer::kexec_action;
use bootkit_installer::progress::{Progress, ProgressMode};
use clap::{CommandFactory, Parser};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

#[derive(Debug, Parser)]
#[command(
    name = "bootkit-install",
    version,
    about = "Write an OS image to a disk, verify it, make it boot and configure it.",
    after_help = concat!(
        "Examples:\n",
        "  bootkit-install --image emt.raw.gz /dev/nvme0n1\n",
        "  bootkit-install --image https://images.lab/emt.raw.gz --sha256-file emt.raw.gz.sha256sum \\\n",
        "      --save-partlabel edge_persistent --console ttyS0,115200n8 --append-karg intel_iommu=on\n",
        "  bootkit-install --image emt.raw.zst --bmap emt.raw.bmap --config install.toml --dry-run\n",
        "  bootkit-install --usb    # the USB installer: image, checksum, bmap, install.toml from the stick\n",
        "Run as image2disk (or with --from-env) it is the Tinkerbell action: see image2disk --help.\n",
        "\n",
        "Exit status: 0 when the image was written and every check it had passed: its sha256\n",
        "against the published one when there is one (--sha256, --sha256-file, IMAGE.sha256sum or\n",
        "IMAGE.sha256 beside the image) and each bmap range's checksum. With no published checksum\n",
        "the image is only written, and the summary says \"not verified against a published\n",
        "checksum\" (--require-checksum refuses that). 0 also for a --dry-run plan; 1 on any\n",
        "failure, 2 on a usage error.",
    ),
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
    /// The install config (TOML); options given here win over its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// CA certificates (PEM) to trust for an https image.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// How progress is shown: a bar on a terminal, plain lines at most once a second, or
    /// JSON lines (with the summary as the last one).
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
    /// Add a kernel argument to the installed system's boot loader entries
    /// (loader/entries/*.conf); repeatable, added to [boot] append_karg.
    #[arg(long, value_name = "ARG")]
    append_karg: Vec<KernelArg>,
    /// Remove a kernel argument (matched word for word) from the installed system's boot
    /// loader entries; repeatable, added to [boot] delete_karg.
    #[arg(long, value_name = "ARG")]
    delete_karg: Vec<KernelArg>,
    /// The installed system's console, as console= takes it (ttyS0,115200n8, tty0): replaces
    /// every console= argument of its boot loader entries; repeatable, replaces [boot] console.
    #[arg(long, value_name = "SPEC")]
    console: Vec<ConsoleSpec>,
    /// Write the network the bootkit came up with (ip=, nameserver=, ... of its kernel command
    /// line) into the installed system as systemd-networkd files matched by MAC address.
    #[arg(long)]
    copy_network: bool,
    /// With no --image and no --config: install from the USB stick's BOOTKIT-DATA partition,
    /// waiting up to 60 s for it (implied by bootkit.mode=standalone on the kernel command line).
    #[arg(long)]
    usb: bool,
    /// Read the Tinkerbell image2disk environment (IMG_URL, DEST_DISK, ...) instead.
    #[arg(long)]
    from_env: bool,
    /// A subcommand instead of an install.
    #[command(subcommand)]
    command: Option<Command>,
}

/// What `bootkit-install` does instead of an install.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write shell completions and man pages into DIR (scripts/install-docs.sh runs it).
    #[command(hide = true)]
    GenerateDocs(bootkit_common::cli_docs::GenerateDocsArgs),
}

/// `image2disk`: the Tinkerbell action, configured by its environment, taking no options.
#[derive(Debug, Parser)]
#[command(
    name = "image2disk",
    version,
    about = "The Tinkerbell image2disk action: write IMG_URL to DEST_DISK, verify it, make it \
             boot (bootkit-install reading its environment).",
    after_help = image2disk::HELP,
)]
struct Image2diskCli {}

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

fn called_as(name: &str) -> bool {
    std::env::args_os()
        .next()
        .is_some_and(|argv0| Path::new(&argv0).file_name() == Some(name.as_ref()))
}

/// The kexec action: load the provisioned system's kernel, ask the worker for the reboot.
fn kexec_action() -> ExitCode {
    let loaded = kexec_action::request_from_env(|name| std::env::var(name).ok())
        .and_then(|request| kexec_action::run(&request));
    match loaded {
        Ok(files) => {
            eprintln!(
                "kexec: loaded {} with command line `{}`; the worker's reboot at the end of \
                 the workflow starts it",
                files.origin, files.cmdline
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn main() -> ExitCode {
    if called_as("kexec") {
        return kexec_action();
    }
    let (request, mode) = if called_as("image2disk") {
        // Only --help and --version: everything else comes from the environment.
        Image2diskCli::parse();
        match image2disk::request_from_env(|name| std::env::var(name).ok()) {
            Ok(request) => (request, ProgressMode::Plain),
            Err(error) => return fail(&error),
        }
    } else {
        let cli = Cli::parse();
        if let Some(Command::GenerateDocs(args)) = &cli.command {
            return generate_docs(&args.out);
        }
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
                append_karg: cli.append_karg,
                delete_karg: cli.delete_karg,
                console: cli.console,
                copy_network: cli.copy_network,
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

/// Both commands' completions and man pages: bootkit-install's, and image2disk's beside them.
fn generate_docs(out: &Path) -> ExitCode {
    let written = bootkit_common::cli_docs::write_all(Cli::command(), out).and_then(|mut paths| {
        paths.extend(bootkit_common::cli_docs::write_all(
            Image2diskCli::command(),
            out,
        )?);
        Ok(paths)
    });
    match written {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => fail(&error),
    }
}

fn fail(error: &(dyn std::error::Error + 'static)) -> ExitCode {
    // The whole chain: each error names what failed, its sources say why.
    eprintln!("bootkit-install: error: {}", error_chain(error));
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        for command in [Cli::command(), Image2diskCli::command()] {
            assert_eq!(
                bootkit_common::cli_docs::undocumented(&command),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn image2disk_help_lists_every_variable_it_reads() {
        let help = Image2diskCli::command().render_long_help().to_string();
        for variable in [
            "IMG_URL",
            "DEST_DISK",
            "COMPRESSED",
            "SHA256",
            "TLS_CA_CERT",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "NO_PROXY",
        ] {
            assert!(help.contains(variable), "{variable} missing from:\n{help}");
        }
    }
}
