//! Root filesystem in RAM: tmpfs, the rootfs archive unpacked into it, switch_root.
