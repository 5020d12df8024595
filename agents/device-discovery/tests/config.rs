//! Where settings come from: flags over /etc/hook/env_config over the kernel command line.

use std::fs;
use std::path::{Path, PathBuf};

use clap::Parser;
use device_discovery::config::{Cli, Config, ConfigError, ServerTls};

struct Files {
    _directory: tempfile::TempDir,
    env_file: PathBuf,
    cmdline: PathBuf,
}

fn files(env_file: &str, cmdline: &str) -> Files {
    let directory = tempfile::tempdir().unwrap();
    let env_path = directory.path().join("env_config");
    let cmdline_path = directory.path().join("cmdline");
    fs::write(&env_path, env_file).unwrap();
    fs::write(&cmdline_path, cmdline).unwrap();
    Files {
        _directory: directory,
        env_file: env_path,
        cmdline: cmdline_path,
    }
}

fn load(files: &Files, extra: &[&str]) -> Result<Config, ConfigError> {
    let path = |path: &Path| path.display().to_string();
    let mut args = vec![
        "device-discovery".to_string(),
        "--env-file".to_string(),
        path(&files.env_file),
        "--cmdline-file".to_string(),
        path(&files.cmdline),
    ];
    args.extend(extra.iter().map(|arg| arg.to_string()));
    Config::load(Cli::try_parse_from(args).unwrap().flags)
}

const CMDLINE: &str = "console=ttyS0 grpc_authority=10.0.0.1:42113 worker_id=AA:BB:CC:DD:EE:01 tinkerbell_tls=false\n";
const ENV_FILE: &str = "# written by the provisioner\nonboarding_manager_svc=\"obm.lan\"\nonboarding_stream_svc=obs.lan\nOBM_PORT=50051\n";

#[test]
fn flags_win_over_the_env_file_which_wins_over_the_kernel_command_line() {
    let both = files(ENV_FILE, CMDLINE);
    let from_flags = load(&both, &["--use-kernel-args", "--obs-svc", "flag.lan:9000"]).unwrap();
    assert_eq!(from_flags.server, "flag.lan:9000");

    let from_env_file = load(&both, &["--use-kernel-args"]).unwrap();
    assert_eq!(
        from_env_file.server, "obs.lan:50051",
        "the stream service, with OBM_PORT"
    );

    let only_cmdline = files("", CMDLINE);
    let from_cmdline = load(&only_cmdline, &["--use-kernel-args"]).unwrap();
    assert_eq!(from_cmdline.server, "10.0.0.1:42113");
    assert_eq!(from_cmdline.tls, ServerTls::Plaintext);
    assert_eq!(
        from_cmdline.overrides.mac.as_deref(),
        Some("aa:bb:cc:dd:ee:01"),
        "worker_id is the boot MAC, lower-cased"
    );
}

#[test]
fn the_kernel_command_line_is_read_only_with_use_kernel_args() {
    let only_cmdline = files("", CMDLINE);
    let message = load(&only_cmdline, &[]).unwrap_err().to_string();
    assert!(message.contains("--obs-svc"), "{message}");
    assert!(message.contains("onboarding_stream_svc"), "{message}");
    assert!(message.contains("grpc_authority"), "{message}");
}

#[test]
fn obs_svc_defaults_to_obm_svc_and_the_default_port() {
    let none = files("", "");
    let config = load(&none, &["--obm-svc", "provisioner.lan"]).unwrap();
    assert_eq!(config.server, "provisioner.lan:42113");
    assert_eq!(
        config.tls,
        ServerTls::Verified { ca_bundle: None },
        "TLS with the system CAs unless told otherwise"
    );
}

#[test]
fn tls_settings_from_the_command_line_and_flags() {
    let cmdline = files(
        "",
        "grpc_authority=p.lan:42113 tinkerbell_ca=/etc/bootkit/ca.pem\n",
    );
    let verified = load(&cmdline, &["--use-kernel-args"]).unwrap();
    assert_eq!(
        verified.tls,
        ServerTls::Verified {
            ca_bundle: Some(PathBuf::from("/etc/bootkit/ca.pem"))
        }
    );
    let insecure = load(&cmdline, &["--use-kernel-args", "--insecure-tls", "true"]).unwrap();
    assert_eq!(insecure.tls, ServerTls::InsecureSkipVerify);
}

#[test]
fn bad_values_name_the_setting_and_where_it_came_from() {
    let bad_port = files("onboarding_stream_svc=obs.lan\nOBM_PORT=lots\n", "");
    let message = load(&bad_port, &[]).unwrap_err().to_string();
    assert!(
        message.contains("OBM_PORT") && message.contains("env_config"),
        "{message}"
    );

    let bad_mac = files("", "grpc_authority=p.lan:1 worker_id=not-a-mac\n");
    let message = load(&bad_mac, &["--use-kernel-args"])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("worker_id") && message.contains("cmdline"),
        "{message}"
    );

    let bad_tls = files("", "grpc_authority=p.lan:1 tinkerbell_tls=maybe\n");
    let message = load(&bad_tls, &["--use-kernel-args"])
        .unwrap_err()
        .to_string();
    assert!(message.contains("tinkerbell_tls"), "{message}");
}
