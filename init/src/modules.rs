//! Kernel module loading: what `modules-load=` and the image ask for, with dependencies from
//! `modules.dep`, built-in modules skipped, independent modules loaded in parallel.
//!
//! Modules load with `finit_module`; a compressed module is first offered to the kernel as is
//! (MODULE_INIT_COMPRESSED_FILE, kernels with CONFIG_MODULE_DECOMPRESS) and otherwise
//! decompressed here and passed to `init_module`.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
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

/// How long the loader waits without any module finishing before it goes on without the
/// stragglers: a module whose init hangs must not hang the boot.
const MODULE_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// From the start of the load until the last module was in.
    pub elapsed: Duration,
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

/// Modules being loaded in the background; [`Loading::wait`] gives the outcome.
pub struct Loading {
    thread: Option<thread::JoinHandle<LoadReport>>,
    report: Option<LoadReport>,
}

impl Loading {
    /// Wait until every module has loaded, failed or timed out.
    pub fn wait(self) -> LoadReport {
        if let Some(report) = self.report {
            return report;
        }
        let Some(thread) = self.thread else {
            return LoadReport::default();
        };
        thread.join().unwrap_or_else(|_| LoadReport {
            failed: vec![("(all)".to_string(), "the module loader crashed".to_string())],
            ..LoadReport::default()
        })
    }
}

/// Start loading `names` and their dependencies from `dir` in the background, so the boot
/// can unpack the rootfs meanwhile. Every module file is opened before this returns: the
/// loads go on from those descriptors even after switch_root has freed the initramfs.
pub fn start(dir: &Path, names: &[String], params: &dyn Fn(&str) -> String) -> Loading {
    let started = Instant::now();
    let (mut report, jobs) = prepare(dir, names, params);
    let spawned = thread::Builder::new()
        .name("modules".to_string())
        .spawn(move || {
            run_jobs(jobs, &mut report, load_file);
            report.elapsed = started.elapsed();
            report
        });
    match spawned {
        Ok(thread) => Loading {
            thread: Some(thread),
            report: None,
        },
        Err(err) => Loading {
            thread: None,
            report: Some(LoadReport {
                failed: names
                    .iter()
                    .map(|name| {
                        (
                            name.clone(),
                            format!("cannot start the module loader: {err}"),
                        )
                    })
                    .collect(),
                ..LoadReport::default()
            }),
        },
    }
}

/// Load `names` and their dependencies from `dir`, and wait for the outcome.
#[cfg(test)]
pub fn load(dir: &Path, names: &[String], params: &dyn Fn(&str) -> String) -> LoadReport {
    start(dir, names, params).wait()
}

/// One module to load, with its file already open.
struct Job {
    file: File,
    params: CString,
    /// Modules of this load that must be loaded first.
    waits_for: Vec<String>,
}

/// Plan the load: what is built in, missing or already loaded, and a job for the rest.
fn prepare(
    dir: &Path,
    names: &[String],
    params: &dyn Fn(&str) -> String,
) -> (LoadReport, BTreeMap<String, Job>) {
    let mut report = LoadReport::default();
    let mut jobs = BTreeMap::new();
    if names.is_empty() {
        return (report, jobs);
    }
    let index = match read_index(dir) {
        Ok(index) => index,
        Err(reason) => {
            crate::warn!("modules", "{reason}");
            report.missing = names.to_vec();
            return (report, jobs);
        }
    };
    let plan = match index.plan(names) {
        Ok(plan) => plan,
        Err(err) => {
            report.failed = names.iter().map(|n| (n.clone(), err.to_string())).collect();
            return (report, jobs);
        }
    };
    report.builtin = plan.builtin.clone();
    for missing in &plan.missing {
        report.missing.push(match &missing.needed_by {
            Some(by) => format!("{} (needed by {by})", missing.name),
            None => missing.name.clone(),
        });
    }
    let planned: BTreeSet<&str> = plan.modules().collect();
    let missing: BTreeSet<&str> = plan.missing.iter().map(|m| m.name.as_str()).collect();
    for name in plan.modules() {
        let Some(module) = index.get(name) else {
            continue;
        };
        if let Some(dep) = module
            .deps
            .iter()
            .find(|dep| missing.contains(dep.as_str()))
        {
            report.failed.push((
                name.to_string(),
                format!("needs {dep}, which is not in the image"),
            ));
            continue;
        }
        if is_loaded(name) {
            report.already_loaded.push(name.to_string());
            continue;
        }
        let path = dir.join(&module.path);
        let opened =
            File::open(&path).map_err(|err| format!("cannot open {}: {err}", path.display()));
        let params = CString::new(params(name))
            .map_err(|_| "its parameters on the command line contain a NUL byte".to_string());
        match (opened, params) {
            (Ok(file), Ok(params)) => {
                let waits_for = module
                    .deps
                    .iter()
                    .filter(|dep| planned.contains(dep.as_str()))
                    .cloned()
                    .collect();
                jobs.insert(
                    name.to_string(),
                    Job {
                        file,
                        params,
                        waits_for,
                    },
                );
            }
            (Err(reason), _) | (_, Err(reason)) => report.failed.push((name.to_string(), reason)),
        }
    }
    (report, jobs)
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

/// Load every job as soon as the modules it needs are in: not in fixed waves, so a slow
/// module (nbd creating its devices) delays only the modules that need it.
/// What loads one module; tests give a fake one.
type LoadFn = fn(File, &CString) -> Result<(), String>;

fn run_jobs(mut pending: BTreeMap<String, Job>, report: &mut LoadReport, load: LoadFn) {
    let mut failed: BTreeSet<String> = report.failed.iter().map(|(name, _)| name.clone()).collect();
    let mut finished: BTreeSet<String> = report.already_loaded.iter().cloned().collect();
    let mut running: BTreeSet<String> = BTreeSet::new();
    let (sender, receiver) = mpsc::channel();
    loop {
        let state = (&finished, &mut failed, &mut running);
        start_ready_jobs(&mut pending, state, &sender, report, load);
        if running.is_empty() {
            break;
        }
        match receiver.recv_timeout(MODULE_TIMEOUT) {
            Ok((name, result)) => {
                running.remove(&name);
                match result {
                    Ok(()) => {
                        finished.insert(name.clone());
                        report.loaded.push(name);
                    }
                    Err(reason) => {
                        failed.insert(name.clone());
                        report.failed.push((name, reason));
                    }
                }
            }
            Err(_) => {
                for name in std::mem::take(&mut running) {
                    let reason = format!(
                        "still loading after {} s; going on without it",
                        MODULE_TIMEOUT.as_secs()
                    );
                    failed.insert(name.clone());
                    report.failed.push((name, reason));
                }
            }
        }
    }
    for name in pending.into_keys() {
        report.failed.push((
            name,
            "the modules it needs never finished loading".to_string(),
        ));
    }
}

/// (finished, failed, running) module names.
type JobState<'a> = (
    &'a BTreeSet<String>,
    &'a mut BTreeSet<String>,
    &'a mut BTreeSet<String>,
);

fn start_ready_jobs(
    pending: &mut BTreeMap<String, Job>,
    (finished, failed, running): JobState<'_>,
    sender: &mpsc::Sender<(String, Result<(), String>)>,
    report: &mut LoadReport,
    load: LoadFn,
) {
    // Failing one job can fail its dependents in turn: repeat until nothing changes.
    loop {
        let blocked = pending.iter().find_map(|(name, job)| {
            let dep = job.waits_for.iter().find(|dep| failed.contains(*dep))?;
            Some((name.clone(), dep.clone()))
        });
        let Some((name, dep)) = blocked else {
            break;
        };
        pending.remove(&name);
        failed.insert(name.clone());
        report
            .failed
            .push((name, format!("needs {dep}, which did not load")));
    }
    let ready: Vec<String> = pending
        .iter()
        .filter(|(_, job)| job.waits_for.iter().all(|dep| finished.contains(dep)))
        .map(|(name, _)| name.clone())
        .collect();
    for name in ready {
        let Some(job) = pending.remove(&name) else {
            continue;
        };
        let sender = sender.clone();
        let worker_name = name.clone();
        // Detached on purpose: a module whose init never returns must not block the boot.
        // Named after its module, so the panic hook's log line says which load died.
        let spawned = thread::Builder::new()
            .name(format!("module {name}"))
            .spawn(move || {
                let result = load(job.file, &job.params);
                let _ = sender.send((worker_name, result));
            });
        match spawned {
            Ok(_) => {
                running.insert(name);
            }
            Err(err) => {
                failed.insert(name.clone());
                report
                    .failed
                    .push((name, format!("cannot start a loader thread: {err}")));
            }
        }
    }
}

fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name)
        .join("initstate")
        .exists()
}

/// Load one module from its open file, compressed or not.
fn load_file(mut file: File, params: &CString) -> Result<(), String> {
    let mut magic = [0u8; 6];
    let read = file.read(&mut magic).unwrap_or(0);
    let compression = Compression::detect(&magic[..read]);
    let result = if compression == Compression::None {
        finit_module(&file, params, ModuleInitFlags::empty())
    } else {
        let flags = ModuleInitFlags::from_bits_retain(MODULE_INIT_COMPRESSED_FILE);
        match finit_module(&file, params, flags) {
            Err(Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOSYS) => {
                load_decompressed(file, params, compression)
            }
            other => other,
        }
    };
    match result {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(errno) => Err(explain(errno)),
    }
}

fn load_decompressed(
    mut file: File,
    params: &CString,
    compression: Compression,
) -> nix::Result<()> {
    let mut data = Vec::new();
    file.seek(SeekFrom::Start(0))
        .map_err(|err| io_errno(&err))?;
    file.read_to_end(&mut data).map_err(|err| io_errno(&err))?;
    let image = compress::decode_all(&data).map_err(|err| {
        crate::warn!("modules", "cannot decompress a {compression} module: {err}");
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

    /// A fake loader: the module's "file" holds its name; `bad` fails; every load is
    /// recorded with the names already loaded at that moment.
    fn fake_load(mut file: File, _params: &CString) -> Result<(), String> {
        let mut name = String::new();
        file.read_to_string(&mut name)
            .map_err(|err| err.to_string())?;
        thread::sleep(Duration::from_millis(if name == "slow" { 100 } else { 5 }));
        LOADED
            .lock()
            .map_err(|err| err.to_string())?
            .push(name.clone());
        if name == "bad" {
            Err("the kernel refused it".into())
        } else {
            Ok(())
        }
    }

    static LOADED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

    fn job(dir: &Path, name: &str, waits_for: &[&str]) -> (String, Job) {
        let path = dir.join(name);
        fs::write(&path, name).unwrap();
        let job = Job {
            file: File::open(&path).unwrap(),
            params: CString::new("").unwrap(),
            waits_for: waits_for.iter().map(|s| s.to_string()).collect(),
        };
        (name.to_string(), job)
    }

    #[test]
    fn modules_start_as_soon_as_their_own_dependencies_are_in() {
        let dir = tempfile::tempdir().unwrap();
        let jobs = BTreeMap::from([
            job(dir.path(), "slow", &[]),
            job(dir.path(), "base", &[]),
            job(dir.path(), "driver", &["base"]),
            job(dir.path(), "needs_slow", &["slow"]),
            job(dir.path(), "bad", &[]),
            job(dir.path(), "needs_bad", &["base", "bad"]),
        ]);
        let mut report = LoadReport::default();
        run_jobs(jobs, &mut report, fake_load);
        let order = LOADED.lock().unwrap().clone();
        let at = |name: &str| order.iter().position(|n| n == name).unwrap();
        assert!(at("base") < at("driver") && at("slow") < at("needs_slow"));
        assert!(
            at("driver") < at("slow"),
            "driver does not wait for the unrelated slow module: {order:?}"
        );
        let mut loaded = report.loaded.clone();
        loaded.sort();
        assert_eq!(loaded, ["base", "driver", "needs_slow", "slow"]);
        let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(failed, ["bad", "needs_bad"], "{:?}", report.failed);
        assert!(
            report.failed[1].1.contains("needs bad"),
            "{:?}",
            report.failed
        );
    }

    #[test]
    fn load_errors_say_what_to_check() {
        assert!(explain(Errno::ENOEXEC).contains("another kernel"));
        assert!(explain(Errno::EKEYREJECTED).contains("signature"));
    }
}
