//! Processors from /proc/cpuinfo, one `Processor` per physical package (socket).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The processors from /proc/cpuinfo, with totals over all packages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cpu {
    /// Physical cores over all packages.
    pub total_cores: u32,
    /// Logical CPUs (hardware threads) over all packages.
    pub total_threads: u32,
    /// One entry per physical package, by `physical id`.
    pub processors: Vec<Processor>,
}

/// One physical package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processor {
    /// The package's `physical id`.
    pub id: u32,
    /// Physical cores in the package (distinct `core id`s; its logical CPUs where cpuinfo names none).
    pub cores: u32,
    /// Logical CPUs in the package.
    pub threads: u32,
    /// `vendor_id` (x86) or `CPU implementer` (ARM); None when cpuinfo has neither.
    pub vendor: Option<String>,
    /// `model name` (x86) or `Model Name` (ARM); None when cpuinfo has neither.
    pub model: Option<String>,
    /// The CPU flags (`flags` on x86, `Features` on ARM).
    pub capabilities: Vec<String>,
}

/// What one `processor : N` paragraph of /proc/cpuinfo says about its logical CPU.
#[derive(Default)]
struct LogicalCpu {
    number: u32,
    package: Option<u32>,
    core: Option<u32>,
    vendor: Option<String>,
    model: Option<String>,
    flags: Vec<String>,
}

pub(crate) fn read(proc: &Path) -> Cpu {
    match std::fs::read_to_string(proc.join("cpuinfo")) {
        Ok(text) => from_cpuinfo(&text),
        Err(_) => Cpu::default(),
    }
}

fn from_cpuinfo(text: &str) -> Cpu {
    // Architectures without `physical id` (most ARM kernels) are reported as one package whose
    // cores are its logical CPUs: that is all cpuinfo can tell there.
    let mut packages: BTreeMap<u32, Vec<LogicalCpu>> = BTreeMap::new();
    for logical in text.split("\n\n").filter_map(parse_paragraph) {
        packages
            .entry(logical.package.unwrap_or(0))
            .or_default()
            .push(logical);
    }
    let processors: Vec<Processor> = packages
        .into_iter()
        .map(|(id, cpus)| package(id, cpus))
        .collect();
    Cpu {
        total_cores: processors.iter().map(|p| p.cores).sum(),
        total_threads: processors.iter().map(|p| p.threads).sum(),
        processors,
    }
}

fn package(id: u32, cpus: Vec<LogicalCpu>) -> Processor {
    let cores: BTreeSet<u32> = cpus
        .iter()
        .map(|cpu| cpu.core.unwrap_or(cpu.number))
        .collect();
    let first = cpus
        .iter()
        .find(|cpu| cpu.vendor.is_some() || cpu.model.is_some());
    Processor {
        id,
        cores: count(cores.len()),
        threads: count(cpus.len()),
        vendor: first.and_then(|cpu| cpu.vendor.clone()),
        model: first.and_then(|cpu| cpu.model.clone()),
        capabilities: cpus
            .first()
            .map(|cpu| cpu.flags.clone())
            .unwrap_or_default(),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn parse_paragraph(paragraph: &str) -> Option<LogicalCpu> {
    let mut logical = LogicalCpu::default();
    let mut has_number = false;
    for line in paragraph.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => {
                logical.number = value.parse().ok()?;
                has_number = true;
            }
            "physical id" => logical.package = value.parse().ok(),
            "core id" => logical.core = value.parse().ok(),
            "vendor_id" | "CPU implementer" if !value.is_empty() => {
                logical.vendor = Some(value.to_string())
            }
            "model name" | "Model Name" if !value.is_empty() => {
                logical.model = Some(value.to_string())
            }
            "flags" | "Features" => {
                logical.flags = value.split_whitespace().map(str::to_string).collect()
            }
            _ => {}
        }
    }
    has_number.then_some(logical)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_cpuinfo_without_packages_counts_each_cpu_as_a_core() {
        let text = "processor\t: 0\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n\n\
                    processor\t: 1\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n";
        let cpu = from_cpuinfo(text);
        assert_eq!((cpu.total_cores, cpu.total_threads), (2, 2));
        assert_eq!(cpu.processors[0].vendor.as_deref(), Some("0x41"));
        assert_eq!(cpu.processors[0].capabilities, ["fp", "asimd"]);
    }
}
