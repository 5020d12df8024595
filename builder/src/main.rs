//! `bootkit-build`: build, inspect and check bootkit images.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bootkit_builder::oci::{self, ActionImageSpec, LayerFile, LayerLink};
use bootkit_builder::registry::{self, Transport};
use bootkit_builder::reproducible::source_date_epoch;
use bootkit_builder::secure_boot::{self, KeySet};
use bootkit_builder::{
    ImageConfig, Progress, SecureBootConfig, UsbConfig, build_with, check_kernel, inspect, test_os,
    uki, usb,
};
use bootkit_oci::Reference;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bootkit-build",
    version,
    about = "Build, inspect and check bootkit images, UKIs, USB installer sticks and test OS images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build vmlinuz, initramfs, cmdline and manifest.json from an image config, and with a
    /// [usb] section bootkit.efi (the image as a UKI) and usb.img (the USB installer stick).
    Build {
        /// The image config (TOML).
        config: PathBuf,
        /// Output directory (created if needed).
        #[arg(long)]
        out: PathBuf,
    },
    /// List an initramfs (like lsinitrd) and the rootfs archive inside it.
    Inspect {
        /// The initramfs file.
        file: PathBuf,
    },
    /// Make a unified kernel image (systemd's EFI stub + kernel + initramfs + command line).
    Uki {
        #[arg(long)]
        kernel: PathBuf,
        #[arg(long)]
        initrd: PathBuf,
        #[arg(long)]
        cmdline: String,
        /// The output, e.g. BOOTX64.EFI.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = uki::DEFAULT_STUB)]
        stub: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Make the EMT-like test OS image (GPT: esp, rootfs, edge_persistent) with its
    /// compressed copies, checksums and bmap.
    TestOsImage {
        /// Debian's linux-image .deb.
        #[arg(long)]
        kernel_deb: PathBuf,
        /// A static busybox (Debian's busybox-static).
        #[arg(long, default_value = "/bin/busybox")]
        busybox: PathBuf,
        /// The line the image prints on the console when it boots.
        #[arg(long)]
        marker: String,
        #[arg(long)]
        out: PathBuf,
        /// Output file names start with it: NAME.raw, NAME.raw.gz ...
        #[arg(long, default_value = "emt-test")]
        name: String,
        #[arg(long, default_value = uki::DEFAULT_STUB)]
        stub: PathBuf,
    },
    /// Make the USB installer image from a bootkit UKI and an OS image (what the [usb]
    /// section of an image config does during `build`).
    Usb {
        /// The bootkit as a UKI (`bootkit-build build` writes DIR/bootkit.efi, or see `uki`).
        #[arg(long)]
        efi: PathBuf,
        /// The OS image as published (.raw.gz, .raw.zst, .raw.xz or .raw).
        #[arg(long)]
        os_image: PathBuf,
        /// Its sha256sum file [default: OS_IMAGE.sha256sum if it exists, else one is written].
        #[arg(long)]
        sha256_file: Option<PathBuf>,
        /// The bmap of the uncompressed image.
        #[arg(long)]
        bmap: Option<PathBuf>,
        /// The installer's config, copied as install.toml.
        #[arg(long)]
        install_config: PathBuf,
        /// The image to write, e.g. usb.img.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Make a Tinkerbell action image (OCI, one layer of the given files) as an OCI image
    /// layout (--out) and/or push it to a registry (--push).
    ActionImage {
        /// The image's name, its tag in the layout with --out (`NAME:TAG`, default tag
        /// `latest`); with --push the reference pushed to names it instead.
        #[arg(long)]
        name: String,
        /// HOST_PATH:IMAGE_PATH, a file to put in the image (repeatable).
        #[arg(long = "file", required = true)]
        files: Vec<LayerFile>,
        /// IMAGE_PATH:TARGET, a symlink in the image (repeatable).
        #[arg(long = "link")]
        links: Vec<LayerLink>,
        /// The program the container runs (repeat for its first arguments).
        #[arg(long = "entrypoint", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// The default arguments (repeatable); an action's `command` replaces them.
        #[arg(long = "cmd", allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// KEY=VALUE in the container's environment (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
        /// Write the OCI image layout into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Push to HOST[:PORT]/REPOSITORY[:TAG].
        #[arg(long, value_parser = Reference::with_explicit_registry)]
        push: Option<Reference>,
        /// Push over HTTPS without certificate checks, or plain HTTP (Docker's insecure
        /// registry).
        #[arg(long, requires = "push", conflicts_with = "ca")]
        insecure: bool,
        /// Push over HTTPS, checking the registry's certificate against this PEM bundle.
        #[arg(long, requires = "push")]
        ca: Option<PathBuf>,
    },
    /// Make a Secure Boot key set: PK, KEK, db (PEM keys 0600 and certificates), their
    /// EFI signature lists (.esl) and signed updates (.auth), and owner-guid.txt.
    Keys {
        /// The directory to write the key set into (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// The certificates' subjects are `CN=NAME PK`, `CN=NAME KEK`, `CN=NAME db`.
        #[arg(long, default_value = secure_boot::DEFAULT_COMMON_NAME)]
        common_name: String,
        /// Replace an existing key set in --out (machines that enrolled it stop trusting
        /// what the new keys sign).
        #[arg(long)]
        force: bool,
    },
    /// Sign an EFI binary (Authenticode, with sbsign), e.g. a UKI or ipxe.efi.
    Sign {
        /// The signing key (PEM), e.g. db.key of a key set.
        #[arg(long)]
        key: PathBuf,
        /// Its certificate (PEM), e.g. db.crt.
        #[arg(long)]
        cert: PathBuf,
        /// The EFI binary to sign.
        input: PathBuf,
        /// Where to write the signed binary [default: sign INPUT in place].
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
    },
    /// Check a kernel (directory, .deb or config file) against the bootkit's config fragment.
    CheckKernel {
        kernel: PathBuf,
        /// The fragment listing what the bootkit needs.
        #[arg(long, default_value = "kernel-configs/bootkit.config")]
        fragment: PathBuf,
    },
}

/// `--sign-key`/`--sign-cert`: Secure Boot signing of the EFI binary made.
#[derive(clap::Args)]
struct SigningArgs {
    /// Sign the EFI binary with this PEM key (e.g. db.key of `bootkit-build keys`).
    #[arg(long, requires = "sign_cert")]
    sign_key: Option<PathBuf>,
    /// The signing key's PEM certificate (e.g. db.crt).
    #[arg(long, requires = "sign_key")]
    sign_cert: Option<PathBuf>,
}

impl SigningArgs {
    /// The signing key, when both options were given (clap enforces the pair).
    fn config(self) -> Option<SecureBootConfig> {
        Some(SecureBootConfig {
            sign_key: self.sign_key?,
            sign_cert: self.sign_cert?,
        })
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bootkit-build: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Build { config, out } => {
            let image = ImageConfig::load(&config)?;
            let started = std::time::Instant::now();
            let progress = Progress::auto();
            let made = build_with(&image, &out, &progress)
                .with_context(|| format!("building {} failed", config.display()))?;
            if let (Some(signing), Some(usb), Some(made_usb)) =
                (&image.secure_boot, &image.usb, &made.usb)
            {
                usb::sign_build_outputs(made_usb, usb, signing, &progress).with_context(|| {
                    format!("signing the outputs of {} failed", config.display())
                })?;
            }
            eprintln!(
                "bootkit-build: built {} in {:.1} s",
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { file } => {
            let listing = inspect::inspect(&file)?;
            print!("{}", inspect::render(&listing));
            Ok(ExitCode::SUCCESS)
        }
        Command::Uki {
            kernel,
            initrd,
            cmdline,
            out,
            stub,
            signing,
        } => {
            let name = out
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| "bootkit".into());
            let layout = uki::build_uki(
                &uki::UkiInputs {
                    stub: &stub,
                    kernel: &kernel,
                    initrd: &initrd,
                    cmdline: &cmdline,
                    os_release: &uki::os_release(&name, "bootkit", env!("CARGO_PKG_VERSION")),
                },
                &out,
            )?;
            if let Some(signing) = signing.config() {
                uki::sign_uki(&out, &signing)?;
            }
            for section in &layout.sections {
                println!(
                    "{:<10} {:#010x} {:>10} bytes",
                    section.name, section.virtual_address, section.virtual_size
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::TestOsImage {
            kernel_deb,
            busybox,
            marker,
            out,
            name,
            stub,
        } => {
            let spec = test_os::TestOsSpec {
                kernel_deb,
                busybox,
                marker,
                name,
                stub,
            };
            let made = test_os::build_test_os(&spec, &out, &Progress::auto())?;
            println!("{}", made.raw.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Usb {
            efi,
            os_image,
            sha256_file,
            bmap,
            install_config,
            out,
            signing,
        } => {
            let usb = UsbConfig {
                os_image,
                sha256_file,
                bmap,
                install_config,
            };
            usb::build_signed_usb(
                &usb.inputs(&efi),
                signing.config().as_ref(),
                &out,
                &Progress::auto(),
            )?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::ActionImage {
            name,
            files,
            links,
            entrypoint,
            cmd,
            env,
            out,
            push,
            insecure,
            ca,
        } => {
            if out.is_none() && push.is_none() {
                anyhow::bail!(
                    "action-image {name}: nothing to do: give --out DIR (an OCI image layout), --push HOST:PORT/REPO:TAG, or both"
                );
            }
            let spec = ActionImageSpec {
                files,
                links,
                entrypoint,
                cmd,
                env,
            };
            let image = oci::build_action_image(&spec, source_date_epoch()?)
                .with_context(|| format!("building action image {name} failed"))?;
            if let Some(out) = out {
                let tag = name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
                oci::write_layout(&image, tag, &out)?;
                println!("{} {}", out.display(), image.manifest.digest);
            }
            if let Some(target) = push {
                let transport = match (insecure, ca) {
                    (true, _) => Transport::Insecure,
                    (false, ca) => Transport::Https { ca },
                };
                let report = registry::push(&image, &target, &transport)
                    .with_context(|| format!("pushing action image {name} to {target} failed"))?;
                println!(
                    "{target} {} ({} blobs uploaded, {} already there)",
                    report.manifest_digest, report.uploaded_blobs, report.skipped_blobs
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            out,
            common_name,
            force,
        } => {
            let set = KeySet::generate_with(&out, &common_name, force)?;
            println!("{} (owner {})", set.dir.display(), set.owner);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign {
            key,
            cert,
            input,
            output,
        } => {
            let output = output.unwrap_or_else(|| input.clone());
            secure_boot::sign_pe(&input, &output, &key, &cert)?;
            println!("{}", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckKernel { kernel, fragment } => {
            let wanted = std::fs::read_to_string(&fragment).with_context(|| {
                format!(
                    "cannot read the config fragment {} (run from the repository root or pass --fragment)",
                    fragment.display()
                )
            })?;
            let have = check_kernel::kernel_config_text(&kernel, &Progress::auto())?;
            let checks = check_kernel::check(&wanted, &have);
            print!("{}", check_kernel::render(&checks));
            Ok(if checks.iter().all(|c| c.ok) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
