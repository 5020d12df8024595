//! The bootkit's installer: writes an OS image to a disk, verifies it, makes it boot and
//! configures the installed system. One engine for the USB installer (`bootkit-install`)
//! and the Tinkerbell image2disk action (the same command, reading the action's environment).

pub mod config;
pub mod configure;
pub mod copy_network;
pub mod disk;
pub mod efi;
pub mod gpt;
pub mod image2disk;
pub mod install;
pub mod kargs;
pub mod kexec;
pub mod kexec_action;
pub mod mount;
pub mod power;
pub mod progress;
pub mod save;
pub mod secure_boot;
pub mod source;
pub mod usbdata;
pub mod verify;
pub mod write;
