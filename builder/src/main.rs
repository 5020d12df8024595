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
    uki, usb, usb_customize,
};
use bootkit_oci::Reference;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bootkit-build",
    version,
    about = "Build, inspect and check bootkit images, UKIs, USB installer sticks and test OS images",
    after_help = "\
Examples:
  bootkit-build build imageconfigs/qemu-test.toml --out out/qemu-test
  bootkit-build usb customize out/usb/usb.img --install-config site.toml --output site-usb.img
  bootkit-build COMMAND --help"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build vmlinuz, initramfs, cmdline and manifest.json from an image config, and with a
    /// [usb] section bootkit.efi (the image as a UKI) and usb.img (the USB installer stick).
    #[command(after_help = "\
Example:
  bootkit-build build imageconfigs/qemu-test.toml --out out/qemu-test")]
    Build {
        /// The image config (TOML).
        config: PathBuf,
        /// Output directory (created if needed).
        #[arg(long)]
        out: PathBuf,
    },
    /// List an initramfs (like lsinitrd) and the rootfs archive inside it.
    #[command(after_help = "\
Example:
  bootkit-build inspect out/qemu-test/initramfs")]
    Inspect {
        /// The initramfs file.
        file: PathBuf,
    },
    /// Make a unified kernel image (systemd's EFI stub + kernel + initramfs + command line).
    #[command(after_help = "\
Example:
  bootkit-build uki --kernel out/qemu-test/vmlinuz --initrd out/qemu-test/initramfs \\
    --cmdline \"$(cat out/qemu-test/cmdline)\" --out out/qemu-test/BOOTX64.EFI")]
    Uki {
        /// The kernel image (bzImage), e.g. DIR/vmlinuz of `bootkit-build build`.
        #[arg(long)]
        kernel: PathBuf,
        /// The initramfs, e.g. DIR/initramfs of `bootkit-build build`.
        #[arg(long)]
        initrd: PathBuf,
        /// The kernel command line built into the UKI, e.g. the text of DIR/cmdline.
        #[arg(long)]
        cmdline: String,
        /// The output, e.g. BOOTX64.EFI.
        #[arg(long)]
        out: PathBuf,
        /// systemd's EFI stub (Debian's systemd-boot-efi) the UKI starts from.
        #[arg(long, default_value = uki::DEFAULT_STUB)]
        stub: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Make the EMT-like test OS image (GPT: esp, rootfs, edge_persistent) with its
    /// compressed copies, checksums and bmap.
    #[command(after_help = "\
Example:
  bootkit-build test-os-image --kernel-deb .cache/kernel/linux-image-amd64.deb \\
    --marker EMT-TEST-BOOTED --out out/emt-test")]
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
        /// The directory to write the images, checksums and bmap into (created if needed).
        #[arg(long)]
        out: PathBuf,
        /// Output file names start with it: NAME.raw, NAME.raw.gz ...
        #[arg(long, default_value = "emt-test")]
        name: String,
        /// systemd's EFI stub (Debian's systemd-boot-efi) the image's loader is made from.
        #[arg(long, default_value = uki::DEFAULT_STUB)]
        stub: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Make the USB installer image from a bootkit UKI and an OS image (what the [usb]
    /// section of an image config does during `build`), or customize one (`usb customize`).
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "\
Example:
  bootkit-build usb --efi out/usb/bootkit.efi --os-image out/emt-test/emt-test.raw.gz \\
    --install-config imageconfigs/usb-installer/install.toml --out out/usb/usb.img"
    )]
    Usb {
        #[command(subcommand)]
        customize: Option<UsbCommand>,
        #[command(flatten)]
        make: Option<UsbArgs>,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Make a Tinkerbell action image (OCI, one layer of the given files) as an OCI image
    /// layout (--out) and/or push it to a registry (--push).
    #[command(after_help = "\
Example:
  bootkit-build action-image --name actions/hello:v1 --file hello:/usr/bin/hello \\
    --entrypoint /usr/bin/hello --push 10.0.2.2:5000/actions/hello:v1 --insecure")]
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
    #[command(after_help = "\
Example:
  bootkit-build keys --out keys/site --common-name \"Example Site\"")]
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
    #[command(after_help = "\
Example:
  bootkit-build sign --key keys/site/db.key --cert keys/site/db.crt out/usb/bootkit.efi")]
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
    #[command(after_help = "\
Example:
  bootkit-build check-kernel .cache/kernel/linux-image-amd64.deb")]
    CheckKernel {
        /// The kernel: a linux-image .deb, a kernel directory or a kernel config file.
        kernel: PathBuf,
        /// The fragment listing what the bootkit needs.
        #[arg(long, default_value = "kernel-configs/bootkit.config")]
        fragment: PathBuf,
    },
    /// Write shell completions and man pages into DIR (scripts/install-docs.sh runs it).
    #[command(hide = true)]
    GenerateDocs(bootkit_common::cli_docs::GenerateDocsArgs),
}

/// `bootkit-build usb`'s options: what goes on a new stick.
#[derive(clap::Args)]
struct UsbArgs {
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
}

/// `bootkit-build usb`'s subcommands.
#[derive(Subcommand)]
enum UsbCommand {
    /// Put an install config and/or an OS image (with its checksum file and bmap) on a stick
    /// made by `bootkit-build usb` or `build`, in place or into --output; the stick grows
    /// when they do not fit.
    #[command(after_help = "\
Examples:
  bootkit-build usb customize out/usb/usb.img --install-config site.toml
  bootkit-build usb customize out/usb/usb.img --os-image emt-3.1.raw.gz \\
    --install-config site.toml --output site-usb.img")]
    Customize {
        /// The stick's image (usb.img), or a stick already written to a device (which
        /// cannot grow).
        stick: PathBuf,
        /// The installer's config, checked against its schema and copied as install.toml.
        #[arg(long)]
        install_config: Option<PathBuf>,
        /// An OS image as published (.raw.gz, .raw.zst, .raw.xz or .raw): replaces the
        /// stick's image, its checksum file and its bmap.
        #[arg(long)]
        os_image: Option<PathBuf>,
        /// The OS image's sha256sum file [default: OS_IMAGE.sha256sum if it exists, else one
        /// is written].
        #[arg(long, requires = "os_image")]
        sha256_file: Option<PathBuf>,
        /// The bmap of the uncompressed OS image.
        #[arg(long, requires = "os_image")]
        bmap: Option<PathBuf>,
        /// Write the customized stick here and leave STICK as it is [default: STICK in place].
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
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
            build_with(&image, &out, &progress)
                .with_context(|| format!("building {} failed", config.display()))?;
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
            signing,
        } => {
            let spec = test_os::TestOsSpec {
                kernel_deb,
                busybox,
                marker,
                name,
                stub,
            };
            let made = test_os::build_signed_test_os(
                &spec,
                signing.config().as_ref(),
                &out,
                &Progress::auto(),
            )?;
            println!("{}", made.raw.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Usb {
            customize: Some(customize),
            ..
        } => customize_usb(customize),
        Command::Usb {
            make: None,
            customize: None,
            ..
        } => anyhow::bail!(
            "usb: give --efi, --os-image, --install-config and --out to make a stick, or \
             `usb customize STICK` to change one (see bootkit-build usb --help)"
        ),
        Command::Usb {
            make:
                Some(UsbArgs {
                    efi,
                    os_image,
                    sha256_file,
                    bmap,
                    install_config,
                    out,
                }),
            customize: None,
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
        Command::GenerateDocs(args) => {
            for path in bootkit_common::cli_docs::write_all(Cli::command(), &args.out)? {
                println!("{}", path.display());
            }
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

/// `bootkit-build usb customize`.
fn customize_usb(command: UsbCommand) -> anyhow::Result<ExitCode> {
    let UsbCommand::Customize {
        stick,
        install_config,
        os_image,
        sha256_file,
        bmap,
        output,
    } = command;
    let inputs = usb_customize::CustomizeInputs {
        install_config: install_config.as_deref(),
        os_image: os_image.as_deref(),
        sha256_file: sha256_file.as_deref(),
        bmap: bmap.as_deref(),
    };
    let done = usb_customize::customize_usb(&stick, &inputs, output.as_deref(), &Progress::auto())
        .with_context(|| format!("customizing {} failed", stick.display()))?;
    if done.grown_by > 0 {
        eprintln!(
            "bootkit-build: the image grew by {} MiB to hold the files",
            done.grown_by >> 20
        );
    }
    eprintln!(
        "bootkit-build: put {} on the stick{}",
        done.written.join(", "),
        if done.removed.is_empty() {
            String::new()
        } else {
            format!(" (replacing {})", done.removed.join(", "))
        }
    );
    println!("{}", done.image.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bootkit_common::cli_docs::undocumented;

    #[test]
    fn every_option_has_help_and_every_command_an_example() {
        assert_eq!(undocumented(&Cli::command()), Vec::<String>::new());
    }

    #[test]
    fn usb_makes_a_stick_or_customizes_one() {
        let make = Cli::try_parse_from([
            "bootkit-build",
            "usb",
            "--efi",
            "b.efi",
            "--os-image",
            "os.raw.gz",
            "--install-config",
            "i.toml",
            "--out",
            "usb.img",
        ])
        .unwrap();
        assert!(matches!(
            make.command,
            Command::Usb {
                make: Some(_),
                customize: None,
                ..
            }
        ));
        let customize = Cli::try_parse_from([
            "bootkit-build",
            "usb",
            "customize",
            "usb.img",
            "--install-config",
            "site.toml",
        ])
        .unwrap();
        assert!(matches!(
            customize.command,
            Command::Usb {
                make: None,
                customize: Some(UsbCommand::Customize { .. }),
                ..
            }
        ));
        let Err(err) = Cli::try_parse_from([
            "bootkit-build",
            "usb",
            "customize",
            "usb.img",
            "--bmap",
            "os.raw.bmap",
        ]) else {
            panic!("--bmap without --os-image parsed");
        };
        assert!(err.to_string().contains("--os-image"), "{err}");
    }
}
