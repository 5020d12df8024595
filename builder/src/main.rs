//! `bootkit-build`: build, inspect and check bootkit images.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bootkit_builder::{ImageConfig, Progress, build_with, check_kernel, inspect};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bootkit-build",
    version,
    about = "Build, inspect and check bootkit images"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build vmlinuz, initramfs, cmdline and manifest.json from an image config.
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
    /// Check a kernel (directory, .deb or config file) against the bootkit's config fragment.
    CheckKernel {
        kernel: PathBuf,
        /// The fragment listing what the bootkit needs.
        #[arg(long, default_value = "kernel-configs/bootkit.config")]
        fragment: PathBuf,
    },
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
            build_with(&image, &out, &Progress::auto())
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
