//! The parts of the init that other programs link too: the log (which the rootfs module
//! writes to) and the rootfs unpacker, which the fuzz targets in `fuzz/` feed arbitrary
//! archives. The binary (`main.rs`) uses both from here.

pub mod log;
pub mod rootfs;
