//! The kernel command line, parsed once into a typed configuration.
//!
//! Parsing never fails: a malformed value of one of our own keys becomes a warning and the
//! default, because a typo on the command line must not stop a machine from booting into
//! something that can report it. Every `key=value` that is not ours is kept in order and
//! handed to services as their environment, the way EMT's tink-worker turns /proc/cmdline
//! into environment (grpc_authority, worker_id, tinkerbell_tls, syslog_host, ...).

use std::path::PathBuf;
use std::time::Duration;

use bootkit_common::service_def::BootMode;

/// What PID 1 does after a fatal error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// An emergency shell when the image has /bin/sh, else power off after the delay.
    Shell,
    Reboot,
    Poweroff,
    Halt,
}

impl OnError {
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Shell => "shell",
            OnError::Reboot => "reboot",
            OnError::Poweroff => "poweroff",
            OnError::Halt => "halt",
        }
    }

    fn parse(value: &str) -> Option<OnError> {
        match value {
            "shell" => Some(OnError::Shell),
            "reboot" => Some(OnError::Reboot),
            "poweroff" => Some(OnError::Poweroff),
            "halt" => Some(OnError::Halt),
            _ => None,
        }
    }
}

/// Default time to read a fatal error on the console before the machine goes down.
pub const DEFAULT_ERROR_DELAY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmdline {
    /// `root=`; the bootkit only knows `tmpfs` (a root in RAM), which is also the default.
    pub root: Option<String>,
    /// `rootflags=`: mount data for the tmpfs root (`mode=0755,size=1G`).
    pub rootflags: Option<String>,
    pub skip_fsck: bool,
    pub noresume: bool,
    pub quiet: bool,
    pub loglevel: Option<u8>,
    pub consoles: Vec<String>,
    /// `modules-load=`, `rd.modules-load=` and Alpine's `modules=`, every occurrence, comma
    /// lists flattened (names as written; `-` and `_` are one to the module index).
    pub modules_load: Vec<String>,
    /// `init=`: exec this program of the rootfs instead of supervising it ourselves.
    pub init: Option<String>,
    pub rdinit: Option<String>,
    pub mode: BootMode,
    /// `bootkit.rootfs=`: the rootfs archive inside the initramfs.
    pub rootfs: Option<PathBuf>,
    pub on_error: OnError,
    /// `bootkit.on_error_delay=` seconds before reboot/poweroff/halt after a fatal error.
    pub on_error_delay: Duration,
    /// Every other `key=value`, in order, for the services' environment.
    pub env: Vec<(String, String)>,
    /// Values we could not use, each a sentence for the boot log.
    pub warnings: Vec<String>,
}

impl Default for Cmdline {
    fn default() -> Self {
        Cmdline {
            root: None,
            rootflags: None,
            skip_fsck: false,
            noresume: false,
            quiet: false,
            loglevel: None,
            consoles: Vec::new(),
            modules_load: Vec::new(),
            init: None,
            rdinit: None,
            mode: BootMode::Provision,
            rootfs: None,
            on_error: OnError::Shell,
            on_error_delay: DEFAULT_ERROR_DELAY,
            env: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl Cmdline {
    /// Parse the text of /proc/cmdline.
    pub fn parse(text: &str) -> Cmdline {
        let mut cmdline = Cmdline::default();
        for word in bootkit_common::cmdline::split_words(text) {
            match word.split_once('=') {
                Some((key, value)) => cmdline.apply_pair(key, value),
                None => cmdline.apply_flag(&word),
            }
        }
        cmdline
    }

    /// Kernel module parameters given as `module.param=value` (modprobe's convention), as the
    /// space-separated string finit_module takes.
    pub fn module_params(&self, module: &str) -> String {
        let prefix = format!("{module}.");
        let mut params = Vec::new();
        for (key, value) in &self.env {
            if let Some(param) = key.strip_prefix(&prefix) {
                params.push(quote_param(param, value));
            }
        }
        params.join(" ")
    }

    fn apply_flag(&mut self, flag: &str) {
        match flag {
            "rd.skipfsck" => self.skip_fsck = true,
            "noresume" => self.noresume = true,
            "quiet" => self.quiet = true,
            // Other flags (ro, splash, nomodeset, ...) are the kernel's or nobody's.
            _ => {}
        }
    }

    fn apply_pair(&mut self, key: &str, value: &str) {
        match key {
            "root" => self.root = Some(value.to_string()),
            "rootflags" => self.rootflags = Some(value.to_string()),
            "loglevel" => match value.parse() {
                Ok(level) => self.loglevel = Some(level),
                Err(_) => self.warn(key, value, "a number from 0 to 15"),
            },
            "console" => self.consoles.push(value.to_string()),
            // `modules=` is Alpine's mkinitfs key, which HookOS and smee's template use
            // (`modules=loop,squashfs,sd-mod,usb-storage`): the same list, the same rules.
            "modules-load" | "rd.modules-load" | "modules_load" | "rd.modules_load" | "modules" => {
                self.modules_load.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|name| !name.is_empty())
                        .map(str::to_string),
                );
            }
            "init" => self.init = Some(value.to_string()),
            "rdinit" => self.rdinit = Some(value.to_string()),
            _ if key.starts_with("bootkit.") => self.apply_bootkit_key(key, value),
            _ => self.env.push((key.to_string(), value.to_string())),
        }
    }

    fn apply_bootkit_key(&mut self, key: &str, value: &str) {
        match key {
            "bootkit.mode" => match value.parse() {
                Ok(mode) => self.mode = mode,
                Err(_) => self.warn(key, value, "provision, standalone or shell"),
            },
            "bootkit.rootfs" => self.rootfs = Some(PathBuf::from(value)),
            "bootkit.on_error" => match OnError::parse(value) {
                Some(policy) => self.on_error = policy,
                None => self.warn(key, value, "shell, reboot, poweroff or halt"),
            },
            "bootkit.on_error_delay" => match value.parse::<u64>() {
                Ok(seconds) => self.on_error_delay = Duration::from_secs(seconds),
                Err(_) => self.warn(key, value, "a whole number of seconds"),
            },
            // Keys of later bootkit parts (network, nbd, ...) reach the services that read them.
            _ => self.env.push((key.to_string(), value.to_string())),
        }
    }

    fn warn(&mut self, key: &str, value: &str, expected: &str) {
        self.warnings.push(format!(
            "ignoring {key}={value:?}: expected {expected}; using the default"
        ));
    }
}

fn quote_param(param: &str, value: &str) -> String {
    if value.contains(char::is_whitespace) {
        format!("{param}=\"{value}\"")
    } else {
        format!("{param}={value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMT: &str = "BOOT_IMAGE=/vmlinuz root=tmpfs rootflags=size=1G,mode=0755 rd.skipfsck \
        noresume quiet splash modules-load=nbd,cdc_ncm console=tty0 console=ttyS0,115200 \
        grpc_authority=tink.example:42113 worker_id=52:54:00:12:34:56 tinkerbell_tls=false \
        syslog_host=10.0.0.1 docker_registry=registry.local:5000\n";

    #[test]
    fn emt_bootkit_command_line_is_understood() {
        let cmdline = Cmdline::parse(EMT);
        assert_eq!(cmdline.root.as_deref(), Some("tmpfs"));
        assert_eq!(cmdline.rootflags.as_deref(), Some("size=1G,mode=0755"));
        assert!(cmdline.skip_fsck && cmdline.noresume && cmdline.quiet);
        assert_eq!(cmdline.modules_load, ["nbd", "cdc_ncm"]);
        assert_eq!(cmdline.consoles, ["tty0", "ttyS0,115200"]);
        assert_eq!(cmdline.mode, BootMode::Provision);
        assert_eq!(cmdline.on_error, OnError::Shell);
        assert!(cmdline.warnings.is_empty());
    }

    #[test]
    fn tinkerbell_keys_reach_the_service_environment_intact() {
        let cmdline = Cmdline::parse(EMT);
        let env: Vec<(&str, &str)> = cmdline
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [
                ("BOOT_IMAGE", "/vmlinuz"),
                ("grpc_authority", "tink.example:42113"),
                ("worker_id", "52:54:00:12:34:56"),
                ("tinkerbell_tls", "false"),
                ("syslog_host", "10.0.0.1"),
                ("docker_registry", "registry.local:5000"),
            ]
        );
    }

    #[test]
    fn quoted_values_keep_their_spaces() {
        let cmdline = Cmdline::parse(r#"a="x y  z" "b=1 2" c=plain"#);
        assert_eq!(
            cmdline.env,
            [
                ("a".to_string(), "x y  z".to_string()),
                ("b".to_string(), "1 2".to_string()),
                ("c".to_string(), "plain".to_string()),
            ]
        );
    }

    /// smee's iPXE template (its `TestDefaultScript` fixture, tinkerbell/smee) asks for
    /// Alpine's `modules=`; `sd-mod` is `sd_mod` to the module index, so it loads.
    #[test]
    fn smees_modules_key_is_a_module_list() {
        let cmdline = Cmdline::parse(
            "vlan_id= facility=onprem syslog_host= grpc_authority=127.0.0.1:42113 \
             modules=loop,squashfs,sd-mod,usb-storage intel_iommu=on iommu=pt \
             initrd=initramfs-x86_64 console=tty0 console=ttyS1,115200",
        );
        assert_eq!(
            cmdline.modules_load,
            ["loop", "squashfs", "sd-mod", "usb-storage"]
        );
        assert!(cmdline.warnings.is_empty(), "{:?}", cmdline.warnings);
        let names: Vec<String> = cmdline
            .modules_load
            .iter()
            .map(|name| bootkit_common::kmod::module_name(name))
            .collect();
        assert_eq!(names, ["loop", "squashfs", "sd_mod", "usb_storage"]);
    }

    #[test]
    fn modules_load_is_repeatable_in_both_spellings() {
        let cmdline = Cmdline::parse("modules-load=a,b rd.modules-load=c modules-load=,d,");
        assert_eq!(cmdline.modules_load, ["a", "b", "c", "d"]);
    }

    #[test]
    fn bootkit_keys_are_typed() {
        let cmdline = Cmdline::parse(
            "bootkit.mode=standalone bootkit.rootfs=/other.tar bootkit.on_error=poweroff \
             bootkit.on_error_delay=0 init=/sbin/init rdinit=/init loglevel=7",
        );
        assert_eq!(cmdline.mode, BootMode::Standalone);
        assert_eq!(cmdline.rootfs, Some(PathBuf::from("/other.tar")));
        assert_eq!(cmdline.on_error, OnError::Poweroff);
        assert_eq!(cmdline.on_error_delay, Duration::ZERO);
        assert_eq!(cmdline.init.as_deref(), Some("/sbin/init"));
        assert_eq!(cmdline.rdinit.as_deref(), Some("/init"));
        assert_eq!(cmdline.loglevel, Some(7));
        assert!(cmdline.env.is_empty());
    }

    #[test]
    fn bad_values_warn_and_keep_the_default() {
        let cmdline = Cmdline::parse("bootkit.mode=fast bootkit.on_error=explode loglevel=x");
        assert_eq!(cmdline.mode, BootMode::Provision);
        assert_eq!(cmdline.on_error, OnError::Shell);
        assert_eq!(cmdline.loglevel, None);
        assert_eq!(cmdline.warnings.len(), 3);
        assert!(
            cmdline.warnings[0].contains("bootkit.mode=\"fast\""),
            "{:?}",
            cmdline.warnings
        );
    }

    #[test]
    fn module_parameters_come_from_dotted_keys() {
        let cmdline = Cmdline::parse("nbd.nbds_max=4 nbd.max_part=8 e1000e.x=\"a b\" other=1");
        assert_eq!(cmdline.module_params("nbd"), "nbds_max=4 max_part=8");
        assert_eq!(cmdline.module_params("e1000e"), "x=\"a b\"");
        assert_eq!(cmdline.module_params("virtio_net"), "");
    }

    #[test]
    fn odd_input_never_panics() {
        for text in [
            "",
            "   ",
            "\"",
            "=",
            "==",
            "a=",
            "=b",
            "\"unterminated=x y",
            "ä=ö ü",
        ] {
            let _ = Cmdline::parse(text);
        }
        assert_eq!(
            Cmdline::parse("\"unterminated=x y").env,
            [("unterminated".to_string(), "x y".to_string())]
        );
    }
}
