//! Kernel module loading: what `modules-load=` and the image ask for, with dependencies from
//! `modules.dep`, built-in modules skipped, independent modules loaded in parallel.
//!
//! Modules load with `finit_module`; a compressed module is first offered to the kernel as is
//! (MODULE_INIT_COMPRESSED_FILE, kernels with CONFIG_MODULE_DECOMPRESS) and otherwise
//! decompressed here and passed to `init_module`.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bootkit_common::compress::{self, Compression};
use bootkit_common::kmod::ModuleIndex;
use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module, init_module};

/// `MODULE_INIT_COMPRESSED_FILE` from linux/module.h (not in nix's flag set).
const MODULE_INIT_COMPRESSED_FILE: u32 = 4;

/// How long one wave of modules may take before the boot goes on without the stragglers:
/// a module whose init hangs must not hang the boot.
const WAVE_TIMEOUT: Duration = Duration::from_secs(30);

/// The outcome for every module asked for, and for their dependencies.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    pub already_loaded: Vec<String>,
    pub builtin: Vec<String>,
    /// Not in the image (with the module that needed it, if any).
    pub missing: Vec<String>,
    /// (module, why)
    pub failed: Vec<(String, String)>,
}

/// `/lib/modules/<kernel release>` of the running kernel.
pub fn running_kernel_modules_dir() -> PathBuf {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Path::new("/lib/modules").join(release)
}

/// Module names from `modules-load.d` style files (one per line, `#` and `;` comments), as
/// the image config writes `/etc/modules-load.d/bootkit.conf`.
pub fn names_from_conf_dir(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "conf"))
        .collect();
    files.sort();
    let mut names = Vec::new();
    for file in files {
        match fs::read_to_string(&file) {
            Ok(text) => names.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty() && !line.starts_with(['#', ';']))
                    .map(str::to_string),
            ),
            Err(err) => crate::warn!("modules", "cannot read {}: {err}", file.display()),
        }
    }
    names
}

/// Load `names` and their dependencies from `dir`. `params` gives each module's parameters.
pub fn load(dir: &Path, names: &[String], params: &(dyn Fn(&str) -> String + Sync)) -> LoadReport {
    let mut report = LoadReport::default();
    if names.is_empty() {
        return report;
    }
    let index = match read_index(dir) {
        Ok(index) => index,
        Err(reason) => {
            report.missing = names.to_vec();
            crate::warn!("modules", "{reason}");
            return report;
        }
    };
    let plan = match index.plan(names) {
        Ok(plan) => plan,
        Err(err) => {
            report.failed = names.iter().map(|n| (n.clone(), err.to_string())).collect();
            return report;
        }
    };
    report.builtin = plan.builtin.clone();
    report.missing = plan
        .missing
        .iter()
        .map(|missing| match &missing.needed_by {
            Some(by) => format!("{} (needed by {by})", missing.name),
            None => missing.name.clone(),
        })
        .collect();
    let mut failed_names = BTreeSet::new();
    for missing in &plan.missing {
        failed_names.insert(missing.name.clone());
    }
    for wave in &plan.waves {
        load_wave(dir, &index, wave, params, &mut failed_names, &mut report);
    }
    report
}

fn read_index(dir: &Path) -> Result<ModuleIndex, String> {
    let dep_path = dir.join("modules.dep");
    let dep = fs::read_to_string(&dep_path).map_err(|err| {
        format!(
            "cannot read {}: {err}; the image has no kernel modules for this kernel \
             (list them under kernel.modules in the image config, and boot the kernel the \
             image was built for)",
            dep_path.display()
        )
    })?;
    let builtin = fs::read_to_string(dir.join("modules.builtin")).ok();
    ModuleIndex::parse(&dep, builtin.as_deref())
        .map_err(|err| format!("{}: {err}", dep_path.display()))
}

/// Load one wave in parallel: its modules depend only on earlier waves.
fn load_wave(
    dir: &Path,
    index: &ModuleIndex,
    wave: &[String],
    params: &(dyn Fn(&str) -> String + Sync),
    failed_names: &mut BTreeSet<String>,
    report: &mut LoadReport,
) {
    let (sender, receiver) = mpsc::channel();
    let mut pending = 0;
    for name in wave {
        let Some(module) = index.get(name) else {
            continue;
        };
        if let Some(dep) = module.deps.iter().find(|dep| failed_names.contains(*dep)) {
            report
                .failed
                .push((name.clone(), format!("needs {dep}, which did not load")));
            failed_names.insert(name.clone());
            continue;
        }
        if is_loaded(name) {
            report.already_loaded.push(name.clone());
            continue;
        }
        let path = dir.join(&module.path);
        let module_params = params(name);
        let sender = sender.clone();
        let name = name.clone();
        pending += 1;
        // Detached on purpose: a module whose init never returns must not block the boot.
        thread::spawn(move || {
            let result = load_file(&path, &module_params);
            let _ = sender.send((name, result));
        });
    }
    let deadline = Instant::now() + WAVE_TIMEOUT;
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok((name, Ok(()))) => report.loaded.push(name),
            Ok((name, Err(reason))) => {
                failed_names.insert(name.clone());
                report.failed.push((name, reason));
            }
            Err(_) => break,
        }
        pending -= 1;
    }
    if pending > 0 {
        let done: BTreeSet<String> = report
            .loaded
            .iter()
            .chain(failed_names.iter())
            .cloned()
            .collect();
        for name in wave
            .iter()
            .filter(|name| !done.contains(*name) && !is_loaded(name))
        {
            failed_names.insert(name.clone());
            report.failed.push((
                name.clone(),
                format!(
                    "still loading after {} s; going on without it",
                    WAVE_TIMEOUT.as_secs()
                ),
            ));
        }
    }
}

fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name)
        .join("initstate")
        .exists()
}

/// Load one module file, compressed or not.
fn load_file(path: &Path, params: &str) -> Result<(), String> {
    let params =
        CString::new(params).map_err(|_| "module parameters contain a NUL byte".to_string())?;
    let mut file =
        File::open(path).map_err(|err| format!("cannot open {}: {err}", path.display()))?;
    let mut magic = [0u8; 6];
    let read = file.read(&mut magic).unwrap_or(0);
    let compression = Compression::detect(&magic[..read]);
    let result = if compression == Compression::None {
        finit_module(&file, &params, ModuleInitFlags::empty())
    } else {
        let flags = ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE);
        match finit_module(&file, &params, flags) {
            Err(Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOSYS) => {
                load_decompressed(path, &params, compression)
            }
            other => other,
        }
    };
    match result {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(explain(errno)),
    }
}

fn load_decompressed(path: &Path, params: &CString, compression: Compression) -> nix::Result<()> {
    let data = fs::read(path).map_err(|err| io_errno(&err))?;
    let image = compress::decode_all(&data).map_err(|err| {
        crate::warn!(
            "modules",
            "cannot decompress {} ({compression}): {err}",
            path.display()
        );
        Errno::ENOEXEC
    })?;
    init_module(&image, params)
}

fn io_errno(err: &io::Error) -> Errno {
    err.raw_os_error().map_or(Errno::EIO, Errno::from_raw)
}

/// What a failed module load means, in words a user can act on.
fn explain(errno: Errno) -> String {
    let hint = match errno {
        Errno::ENOEXEC => "invalid module format: built for another kernel than the one booted?",
        Errno::ENOENT => "unknown symbol: a dependency is missing from modules.dep",
        Errno::EPERM => "module loading is not permitted (lockdown, or modules disabled)",
        Errno::EKEYREJECTED => "the module's signature was rejected (Secure Boot?)",
        Errno::ENODEV => "no such device: the hardware this driver is for is absent",
        Errno::EBUSY => "the module is busy",
        _ => "the kernel refused it",
    };
    format!("{hint} ({errno})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_files_list_modules_and_skip_comments() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("b.conf"),
            "# network\nvirtio_net\n\n; old\ne1000e\n",
        )
        .unwrap();
        fs::write(dir.path().join("a.conf"), "nbd\n").unwrap();
        fs::write(dir.path().join("ignored.txt"), "xfs\n").unwrap();
        assert_eq!(
            names_from_conf_dir(dir.path()),
            ["nbd", "virtio_net", "e1000e"]
        );
        assert!(names_from_conf_dir(&dir.path().join("absent")).is_empty());
    }

    #[test]
    fn a_missing_index_reports_every_module_missing_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let report = load(dir.path(), &["nbd".to_string()], &|_| String::new());
        assert_eq!(report.missing, ["nbd"]);
        assert!(report.loaded.is_empty());
    }

    #[test]
    fn unknown_modules_and_their_dependents_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("modules.dep"),
            "kernel/a.ko: kernel/gone.ko\nkernel/b.ko:\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("modules.builtin"),
            "kernel/fs/ext4/ext4.ko\n",
        )
        .unwrap();
        let names = ["a", "ext4", "nosuch"].map(String::from);
        let report = load(dir.path(), &names, &|_| String::new());
        assert_eq!(report.builtin, ["ext4"]);
        assert_eq!(report.missing, ["gone (needed by a)", "nosuch"]);
        assert_eq!(report.failed.len(), 1);
        assert_eq!(report.failed[0].0, "a");
        assert!(report.failed[0].1.contains("gone"), "{:?}", report.failed);
    }

    #[test]
    fn load_errors_say_what_to_check() {
        assert!(explain(Errno::ENOEXEC).contains("another kernel"));
        assert!(explain(Errno::EKEYREJECTED).contains("signature"));
    }
}
