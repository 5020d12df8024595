//! The names the builder writes and the init and installer look for: the initramfs's and the
//! rootfs's fixed paths, and the USB installer stick's partition names. Each is written here
//! once, so that a rename on one side cannot leave the other looking in the old place.

/// The init binary in the initramfs: the kernel runs it as PID 1.
pub const INIT: &str = "/init";

/// The init binary in the rootfs; its applets are symlinks to it.
pub const INIT_IN_ROOTFS: &str = "/usr/bin/bootkit";

/// Where the applet links to [`INIT_IN_ROOTFS`] (`poweroff`, `reboot`, `halt`) live.
pub const APPLETS_DIR: &str = "/usr/sbin";

/// The rootfs archive in the initramfs when zstd-compressed (the builder's default).
pub const ROOTFS_ARCHIVE_ZSTD: &str = "rootfs.tar.zst";
/// The rootfs archive when gzip-compressed (also EMT's generate-bootkit-initramfs.sh's name).
pub const ROOTFS_ARCHIVE_GZIP: &str = "rootfs.tar.gz";
/// The rootfs archive when not compressed.
pub const ROOTFS_ARCHIVE_PLAIN: &str = "rootfs.tar";

/// Every name of the rootfs archive at the initramfs's root, in the order the init tries
/// them. The name is only a place to look: the init learns the format from the magic bytes.
pub const ROOTFS_ARCHIVE_NAMES: [&str; 3] = [
    ROOTFS_ARCHIVE_GZIP,
    ROOTFS_ARCHIVE_ZSTD,
    ROOTFS_ARCHIVE_PLAIN,
];

/// Whether `name` (a path of an archive entry, with or without a leading `./` or `/`) is the
/// rootfs archive at the initramfs's root.
pub fn is_rootfs_archive(name: &str) -> bool {
    let name = name.trim_start_matches("./").trim_start_matches('/');
    ROOTFS_ARCHIVE_NAMES.contains(&name)
}

/// The service definitions (`NAME.toml`, see [`crate::service_def`]) in the rootfs.
pub const SERVICES_DIR: &str = "/etc/bootkit/services";

/// The directory of `modules-load.d` files in the initramfs: module names, one per line.
pub const MODULES_LOAD_DIR: &str = "/etc/modules-load.d";

/// The builder's file in [`MODULES_LOAD_DIR`]: the image config's `[kernel] modules`.
pub const MODULES_LOAD_CONF: &str = "/etc/modules-load.d/bootkit.conf";

/// The USB installer stick's data partition: its GPT name and its ext4 label.
pub const USB_DATA_LABEL: &str = "BOOTKIT-DATA";

/// The USB installer stick's ESP, by GPT name. Not `esp`: the installed OS's ESP is, and the
/// installer must never mistake the stick's for it.
pub const USB_ESP_NAME: &str = "BOOTKIT-ESP";

/// The install config's name on the USB installer's data partition (see
/// [`crate::install_config`] where that module is built).
pub const INSTALL_CONFIG_NAME: &str = "install.toml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builders_modules_file_is_in_the_directory_the_init_reads() {
        let conf = std::path::Path::new(MODULES_LOAD_CONF);
        assert_eq!(conf.parent(), Some(std::path::Path::new(MODULES_LOAD_DIR)));
        assert_eq!(conf.extension().and_then(|e| e.to_str()), Some("conf"));
    }

    #[test]
    fn every_archive_name_is_recognised_at_the_root_only() {
        for name in ROOTFS_ARCHIVE_NAMES {
            assert!(is_rootfs_archive(name));
            assert!(is_rootfs_archive(&format!("./{name}")));
            assert!(is_rootfs_archive(&format!("/{name}")));
            assert!(!is_rootfs_archive(&format!("etc/{name}")));
        }
        assert!(!is_rootfs_archive("rootfs.tar.xz"));
    }
}
