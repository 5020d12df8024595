//! Reading the install config (`install.toml`) from its file: the schema, its defaults and its
//! checks are [`bootkit_common::install_config`], which the builder also checks a USB stick's
//! config against; here the file is read, relative paths are resolved against its directory
//! and `[cloud_init] user_data_file` is read in. Everything is checked when the file is
//! loaded, so an invalid config stops the installer before it touches a disk.

use std::path::{Path, PathBuf};

use bootkit_common::install_config::{self, check_user_data};
use bootkit_common::toml_parse::TomlError;

/// The schema's types, where the installer's modules have always found them.
pub use bootkit_common::install_config::{
    AfterInstall, CloudInit, Hostname, InstallConfig, PartitionName, Proxy, StaticNetwork, User,
};

/// Why the install config cannot be used; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read the install config {path}; check the path and its permissions")]
    Read {
        /// The config file.
        path: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
    /// The config does not fit the schema. The problem is in the message (with its line and
    /// key), not also a `source()`.
    #[error("install config {path} is invalid: {problem}; fix that key and run again")]
    Parse {
        /// The config file.
        path: PathBuf,
        /// What is wrong, and where.
        problem: TomlError,
    },
    /// A file the config names holds something the schema refuses.
    #[error("install config {path}: `{field}`: {reason}")]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The dotted key that names the file.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A file the config names cannot be read.
    #[error(
        "install config {path}: `{field}` names {file}, which cannot be read; \
         relative paths are taken from the config file's directory"
    )]
    ReadReferenced {
        /// The config file.
        path: PathBuf,
        /// The dotted key that names the file.
        field: &'static str,
        /// The file it names, resolved against the config's directory.
        file: PathBuf,
        /// Why reading it failed.
        source: std::io::Error,
    },
}

/// Reads and validates the config; relative paths in it become relative to its directory,
/// and `[cloud_init] user_data_file` is read into `user_data`.
pub fn load(path: &Path) -> Result<InstallConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut config = parse(&text, path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    config.resolve_relative_paths(base);
    read_user_data_file(&mut config, path)?;
    Ok(config)
}

/// Parses and validates config text; `path` is only used in error messages. Relative
/// paths are left as written.
pub fn parse(text: &str, path: &Path) -> Result<InstallConfig, ConfigError> {
    install_config::parse(text).map_err(|problem| ConfigError::Parse {
        path: path.to_owned(),
        problem,
    })
}

fn read_user_data_file(config: &mut InstallConfig, config_path: &Path) -> Result<(), ConfigError> {
    let Some(cloud_init) = config.cloud_init.as_mut() else {
        return Ok(());
    };
    let Some(file) = &cloud_init.user_data_file else {
        return Ok(());
    };
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::ReadReferenced {
        path: config_path.to_owned(),
        field: "cloud_init.user_data_file",
        file: file.clone(),
        source,
    })?;
    check_user_data(&text).map_err(|reason| ConfigError::Invalid {
        path: config_path.to_owned(),
        field: "cloud_init.user_data_file".into(),
        reason: format!("{}: {reason}", file.display()),
    })?;
    cloud_init.user_data = Some(text);
    Ok(())
}

/// TOML shared by the tests of this module and of `configure`, so both read the same sections.
#[cfg(test)]
pub(crate) mod fixtures {
    pub const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOE3HJ1I2lJEauppYxcHbbWDcN3QHj89p1BmuWQNG3IV edge@laptop";

    /// An `edge` user (sudo, docker) with `KEY`, a proxy, and a static address on the NIC
    /// `mac` with the `dns` servers (a TOML array).
    pub fn edge_user_proxy_and_network(password_hash: &str, mac: &str, dns: &str) -> String {
        format!(
            r##"[[users]]
name = "edge"
password_hash = "{password_hash}"
ssh_authorized_keys = ["{KEY}"]
sudo = true
groups = ["docker"]
[proxy]
http = "http://proxy.example.com:3128"
no_proxy = "localhost,.example.com"
[network]
mac = "{mac}"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
dns = {dns}
"##
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{KEY, edge_user_proxy_and_network};
    use super::*;

    fn parse(text: &str) -> Result<InstallConfig, String> {
        super::parse(text, Path::new("/media/install.toml")).map_err(|e| e.to_string())
    }

    fn parse_error(text: &str) -> String {
        match parse(text) {
            Ok(config) => panic!("config accepted but should not be: {config:?}"),
            Err(message) => message,
        }
    }

    #[test]
    fn full_example_is_accepted_and_typed() {
        let config = parse(&format!(
            r##"
hostname = "edge-01"
after = "reboot"
[disk]
device = "/dev/nvme0n1"
prefer = "largest"
[image]
file = "os.raw.gz"
sha256 = "{}"
[layout]
grow = 3
{}[cloud_init]
user_data = "#cloud-config\nruncmd: [true]\n"
[boot]
loader = '\EFI\Linux\emt.efi'
"##,
            "AB".repeat(32),
            edge_user_proxy_and_network(
                "$6$rounds=5000$salt$abcdefghijklmnopqrstuvwxyzABCDEFGHIJ./0123456789",
                "52-54-00-AB-cd-EF",
                r#"["192.168.1.1", "2001:db8::53"]"#,
            )
        ))
        .unwrap();
        assert_eq!(config.hostname.unwrap().as_str(), "edge-01");
        assert_eq!(config.after, AfterInstall::Reboot);
        assert_eq!(config.disk.device, Some(PathBuf::from("/dev/nvme0n1")));
        assert_eq!(
            config.disk.policy.prefer,
            crate::disk::SizePreference::Largest
        );
        assert_eq!(config.image.sha256, Some("ab".repeat(32)));
        assert_eq!(config.layout.grow, Some(3));
        assert_eq!(config.users[0].ssh_authorized_keys[0].as_str(), KEY);
        let network = config.network.unwrap();
        assert_eq!(network.mac.unwrap().to_string(), "52:54:00:ab:cd:ef");
        assert_eq!(network.address.to_string(), "192.168.1.10/24");
        assert_eq!(config.boot.label, "Edge Microvisor Toolkit");
        assert_eq!(config.boot.loader, r"\EFI\Linux\emt.efi");
    }

    #[test]
    fn empty_config_means_defaults_and_no_system_changes() {
        let config = parse("").unwrap();
        assert_eq!(config.after, AfterInstall::Poweroff);
        assert_eq!(config.boot.loader, r"\EFI\BOOT\BOOTX64.EFI");
        assert!(config.disk.device.is_none());
        assert!(!config.configures_system());
    }

    #[test]
    fn each_bad_value_is_refused_naming_its_key_and_the_file() {
        let cases = [
            ("hostname = \"bad_host\"", "hostname"),
            ("hostname = \"-edge\"", "hostname"),
            ("[[users]]\nname = \"Edge\"", "name"),
            (
                "[[users]]\nname = \"edge\"\npassword_hash = \"hunter2\"",
                "password_hash",
            ),
            (
                "[[users]]\nname = \"edge\"\nssh_authorized_keys = [\"ssh-rsa notbase64 x\"]",
                "ssh_authorized_keys",
            ),
            (
                "[[users]]\nname = \"edge\"\ngroups = [\"Bad Group\"]",
                "groups",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5\"",
                "address",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5/33\"",
                "address",
            ),
            (
                "[network]\nmac = \"52:54:00:12:34\"\naddress = \"10.0.0.5/24\"",
                "mac",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5/24\"\ngateway = \"10.0.1.1\"",
                "network.gateway",
            ),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.5/24\"\ndns = [\"1.1.1\"]",
                "dns",
            ),
            ("[network]\naddress = \"10.0.0.5/24\"", "network.interface"),
            (
                "[network]\ninterface = \"eth0\"\naddress = \"10.0.0.0/24\"",
                "network.address",
            ),
            ("[proxy]\nhttp = \"proxy:3128\"", "http"),
            ("[proxy]\nno_proxy = \"a, b\"", "no_proxy"),
            ("[proxy]", "proxy"),
            (
                "[cloud_init]\nuser_data = \"runcmd: []\"",
                "cloud_init.user_data",
            ),
            ("[cloud_init]\nmeta_data = \"x\"", "cloud_init.user_data"),
            ("[image]\nsha256 = \"abc\"", "sha256"),
            ("[boot]\nloader = \"/EFI/BOOT/BOOTX64.EFI\"", "boot.loader"),
            ("after = \"halt\"", "after"),
            ("[disk]\ndevice = \"sda\"", "device"),
            ("[disk]\nprefer = \"fastest\"", "prefer"),
            ("[disk]\nsize = 5", "size"),
            ("[system]\nrootfs_partition = \"\"", "rootfs_partition"),
            ("hostnme = \"edge\"", "hostnme"),
            ("[boot]\nconsole = [\"/dev/ttyS0\"]", "console"),
            ("[boot]\nappend_karg = [\"a b\"]", "append_karg"),
            ("[boot]\ndelete_karg = [\"\"]", "delete_karg"),
            ("copy_network = 1", "copy_network"),
            (
                "[[users]]\nname = \"a\"\n[[users]]\nname = \"a\"",
                "users[1].name",
            ),
        ];
        for (text, field) in cases {
            let message = parse_error(text);
            assert!(
                message.contains(field) && message.contains("/media/install.toml"),
                "error for {text:?} should name `{field}` and the file, got: {message}"
            );
        }
    }

    #[test]
    fn load_resolves_paths_against_the_config_directory_and_reads_user_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("user-data.yaml"),
            "#cloud-config\nhostname: x\n",
        )
        .unwrap();
        let path = dir.path().join("install.toml");
        std::fs::write(
            &path,
            "[image]\nfile = \"os.raw.gz\"\nbmap = \"/abs/os.raw.bmap\"\n\
             [cloud_init]\nuser_data_file = \"user-data.yaml\"\n",
        )
        .unwrap();
        let config = load(&path).unwrap();
        assert_eq!(config.image.file, Some(dir.path().join("os.raw.gz")));
        assert_eq!(config.image.bmap, Some(PathBuf::from("/abs/os.raw.bmap")));
        let cloud_init = config.cloud_init.unwrap();
        assert_eq!(
            cloud_init.user_data.as_deref(),
            Some("#cloud-config\nhostname: x\n")
        );
    }

    #[test]
    fn load_names_a_missing_user_data_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        std::fs::write(&path, "[cloud_init]\nuser_data_file = \"gone.yaml\"\n").unwrap();
        let message = load(&path).unwrap_err().to_string();
        assert!(
            message.contains("cloud_init.user_data_file") && message.contains("gone.yaml"),
            "{message}"
        );
    }

    #[test]
    fn load_names_a_missing_config_file() {
        let message = load(Path::new("/nonexistent/install.toml"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("/nonexistent/install.toml"), "{message}");
    }
}
