//! The USB stick's install config, checked when the stick is made against the schema the
//! installer reads it with ([`bootkit_common::install_config`]): a typo or a wrong value
//! fails the build, naming the file, line and key, instead of the install on site.

use std::fs;
use std::path::Path;

use bootkit_common::{install_config, toml_parse};

use crate::error::{BuildError, Result};

/// Read the install config at `path` and check it as the installer will.
pub(crate) fn check_install_config(path: &Path) -> Result<()> {
    let text =
        fs::read_to_string(path).map_err(BuildError::io(format!("read {}", path.display())))?;
    let problem = match toml_parse::parse::<toml::Table>(&text) {
        Err(error) => format!("not valid TOML: {error}"),
        Ok(_) => match install_config::parse(&text) {
            Ok(_) => return Ok(()),
            Err(error) => error.to_string(),
        },
    };
    Err(BuildError::InstallConfig {
        path: path.to_path_buf(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error for an install config of `text`, written to a file named `install.toml`.
    fn refused(text: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("install.toml");
        fs::write(&path, text).unwrap();
        let message = check_install_config(&path).unwrap_err().to_string();
        assert!(
            message.contains(&format!("install config {}: ", path.display())),
            "{message}"
        );
        message
    }

    #[test]
    fn the_sticks_own_config_is_accepted() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../imageconfigs/usb-installer")
            .join(bootkit_common::layout::INSTALL_CONFIG_NAME);
        check_install_config(&path).unwrap();
    }

    /// The schema's own rules are tested in `bootkit_common::install_config`; this checks
    /// that the build refuses each kind of problem with the file, line and key in its message.
    #[test]
    fn a_broken_config_is_refused_at_build_time_naming_file_line_and_key() {
        let cases = [
            (
                "hostname = \"edge\"\ndisk = { devce = \"/dev/sda\" }\n",
                "install.toml: line 2: `disk.devce`: unknown field `devce`",
            ),
            (
                "hostname = \"edge\"\nafter = \"reboot\"\nhostnme = \"x\"\n",
                "install.toml: line 3: unknown field `hostnme`",
            ),
            (
                "[disk]\nprefer = \"largest\"\nmin_size_bytes = \"64G\"\n",
                "install.toml: line 3: `disk.min_size_bytes`: ",
            ),
            (
                "[network]\nmac = \"52:54:00:12:34\"\naddress = \"192.168.1.10/24\"\n",
                "install.toml: line 2: `network.mac`: MAC address \"52:54:00:12:34\"",
            ),
            (
                "[[users]]\nname = \"edge\"\n[[users]]\nname = \"edge\"\n",
                "install.toml: line 4: `users[1].name`: user edge is listed twice",
            ),
            (
                "[[layout.add]]\nname = \"rootfs_b\"\nsize_mib = 0\n",
                "install.toml: line 3: `layout.add[0].size_mib`: added partition `rootfs_b` has \
                 size_mib = 0",
            ),
            ("[install\n", "not valid TOML: line 1: "),
        ];
        for (text, expected) in cases {
            let message = refused(text);
            assert!(
                message.contains(expected),
                "{message}\n  does not contain: {expected}"
            );
        }
    }
}
