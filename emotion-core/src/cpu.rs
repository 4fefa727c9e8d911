//! The CPU this program runs on, as tract sees it: its model name, the SIMD features
//! that decide which matrix kernels tract picks (after the `TRACT_CPU_ISA` edits tract
//! itself applies), and the [`CpuClass`] the board's variant rule keys on.
//!
//! The features use tract's own names (`avx2`, `avx512vnni`, `dotprod`, `fp16`, …), so
//! what `bench` records and what `TRACT_CPU_ISA` takes read the same. On aarch64 `neon`
//! (ASIMD) is the baseline every core has; tract keeps no token for it there (its `neon`
//! is 32-bit ARM's), so it is listed for people and never edited.
//!
//! [`detect`] asks the running machine (`is_x86_feature_detected!`,
//! `is_aarch64_feature_detected!`, `/proc/cpuinfo`); [`CpuInfo::from_cpuinfo`] does the
//! same from a `/proc/cpuinfo` text, which is how the parsing is tested for boards this
//! machine is not.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The environment variable tract reads to edit the detected features.
pub const TRACT_CPU_ISA: &str = "TRACT_CPU_ISA";
/// tract's switch that turns the aarch64 dot-product kernels off (`1`, `true`, `on`, `yes`).
pub const TRACT_DOTPROD_DISABLE: &str = "TRACT_DOTPROD_DISABLE";

/// The features that matter to tract on each architecture, in tract's names and order.
const X86_64_FEATURES: [&str; 9] = [
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512vnni",
    "avx512fp16",
    "avxvnni",
    "amx-int8",
];
const AARCH64_FEATURES: [&str; 4] = ["neon", "fp16", "dotprod", "sve2"];
const ARM_FEATURES: [&str; 1] = ["neon"];

/// Every feature name tract's `TRACT_CPU_ISA` knows, with the architecture it belongs to
/// (tract stops with a panic when a token names another architecture's feature).
const TRACT_TOKENS: [(&str, &str); 24] = [
    ("avx", "x86_64"),
    ("avx2", "x86_64"),
    ("fma", "x86_64"),
    ("f16c", "x86_64"),
    ("avx512f", "x86_64"),
    ("avx512vnni", "x86_64"),
    ("avx512fp16", "x86_64"),
    ("avxvnni", "x86_64"),
    ("amx-int8", "x86_64"),
    ("amx-bf16", "x86_64"),
    ("neon", "arm"),
    ("fp16", "aarch64"),
    ("dotprod", "aarch64"),
    ("sve2", "aarch64"),
    ("sme", "aarch64"),
    ("sme2", "aarch64"),
    ("apple-amx", "aarch64"),
    ("rvv", "riscv64"),
    ("vlen256", "riscv64"),
    ("zvfh", "riscv64"),
    ("simd128", "wasm32"),
    ("relaxed-simd", "wasm32"),
    ("arm", "arm"),
    ("aarch64", "aarch64"),
];

/// What kind of CPU, for choosing a bundle variant: the classes differ in which int8 and
/// float kernels tract has for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuClass {
    /// x86-64 with AVX2 and FMA, no AVX-512 and no VNNI.
    X86Avx2,
    /// x86-64 with AVX-512 or VNNI (native int8 dot products).
    X86Avx512Vnni,
    /// ARMv8.0 with NEON and no dot product: Pi 4 (Cortex-A72), Zero 2 W (Cortex-A53).
    Armv8Neon,
    /// ARMv8.2 with the dot product (SDOT/UDOT): Pi 5 (Cortex-A76).
    Armv82Dotprod,
    /// Anything else: older x86, 32-bit ARM (Pi 3 on a 32-bit OS), other architectures.
    Other,
}

impl CpuClass {
    /// Every class, for tables and tests.
    pub const ALL: [CpuClass; 5] = [
        CpuClass::X86Avx2,
        CpuClass::X86Avx512Vnni,
        CpuClass::Armv8Neon,
        CpuClass::Armv82Dotprod,
        CpuClass::Other,
    ];

    /// The class of a CPU with these (tract-named) features.
    pub fn of(arch: &str, features: &[String]) -> CpuClass {
        let has = |name: &str| features.iter().any(|f| f == name);
        match arch {
            "x86_64" if has("avx512f") || has("avx512vnni") || has("avxvnni") => {
                CpuClass::X86Avx512Vnni
            }
            "x86_64" if has("avx2") && has("fma") => CpuClass::X86Avx2,
            "aarch64" if has("dotprod") => CpuClass::Armv82Dotprod,
            "aarch64" => CpuClass::Armv8Neon,
            _ => CpuClass::Other,
        }
    }
}

impl fmt::Display for CpuClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuClass::X86Avx2 => "x86-64 AVX2",
            CpuClass::X86Avx512Vnni => "x86-64 AVX-512/VNNI",
            CpuClass::Armv8Neon => "ARMv8.0 NEON",
            CpuClass::Armv82Dotprod => "ARMv8.2 dot-product",
            CpuClass::Other => "other",
        })
    }
}

/// This machine's CPU as the variant choice and `bench` records see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuInfo {
    /// The architecture this program was built for (`std::env::consts::ARCH`).
    pub arch: String,
    /// The CPU's name: x86's `model name`; on ARM the cores named from `CPU part`
    /// (`Cortex-A76`), with the board's `Model` line when the OS prints one.
    pub model: String,
    /// The SIMD features tract's kernels depend on, tract's names, after the
    /// `TRACT_CPU_ISA` edits.
    pub features: Vec<String>,
    /// The class the variant rule keys on, from `features`.
    pub class: CpuClass,
    /// `TRACT_CPU_ISA` when it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tract_cpu_isa: Option<String>,
    /// What the edits did not do, or would make tract stop (not recorded).
    #[serde(skip)]
    pub notes: Vec<String>,
}

/// What `/proc/cpuinfo` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CpuinfoFacts {
    /// x86's `model name` or 32-bit ARM's.
    pub model_name: Option<String>,
    /// The cores, named from `CPU implementer` and `CPU part`, each once.
    pub cores: Vec<String>,
    /// The board (`Model` line, Raspberry Pi OS).
    pub board: Option<String>,
    /// Features in tract's names, from the `flags` or `Features` line.
    pub features: Vec<String>,
}

/// Reads `/proc/cpuinfo` text for `arch` (`x86_64`, `aarch64`, `arm`).
pub fn parse_cpuinfo(text: &str, arch: &str) -> CpuinfoFacts {
    let mut facts = CpuinfoFacts::default();
    let mut implementer: Option<String> = None;
    let mut flags: Vec<&str> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "model name" if facts.model_name.is_none() && !value.is_empty() => {
                facts.model_name = Some(value.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            "Model" if facts.board.is_none() && !value.is_empty() => {
                facts.board = Some(value.to_string());
            }
            "CPU implementer" => implementer = Some(value.to_lowercase()),
            "CPU part" => {
                let core = core_name(implementer.as_deref().unwrap_or(""), &value.to_lowercase());
                if !facts.cores.contains(&core) {
                    facts.cores.push(core);
                }
            }
            "flags" | "Features" if flags.is_empty() => {
                flags = value.split_whitespace().collect();
            }
            _ => {}
        }
    }
    let has = |flag: &str| flags.contains(&flag);
    let mapping: &[(&str, &str)] = match arch {
        "x86_64" => &[
            ("avx", "avx"),
            ("avx2", "avx2"),
            ("fma", "fma"),
            ("f16c", "f16c"),
            ("avx512f", "avx512f"),
            ("avx512_vnni", "avx512vnni"),
            ("avx512_fp16", "avx512fp16"),
            ("avx_vnni", "avxvnni"),
            ("amx_int8", "amx-int8"),
        ],
        "aarch64" => &[
            ("asimd", "neon"),
            ("asimdhp", "fp16"),
            ("asimddp", "dotprod"),
            ("sve2", "sve2"),
        ],
        "arm" => &[("neon", "neon")],
        _ => &[],
    };
    let mut found: Vec<&str> = mapping
        .iter()
        .filter(|(flag, _)| has(flag))
        .map(|(_, name)| *name)
        .collect();
    // tract trusts these cores with the dot product and fp16 by part number (kernels
    // before 4.15 never report them).
    if arch == "aarch64"
        && facts
            .cores
            .iter()
            .any(|c| c == "Cortex-A55" || c == "Cortex-A75")
    {
        found.extend(["fp16", "dotprod"]);
    }
    facts.features = canonical(arch, found);
    facts
}

/// The name of an ARM core from its implementer and part numbers (`0x41`, `0xd08`).
pub fn core_name(implementer: &str, part: &str) -> String {
    let known = match (implementer, part) {
        ("0x41", "0xd03") => Some("Cortex-A53"),
        ("0x41", "0xd04") => Some("Cortex-A35"),
        ("0x41", "0xd05") => Some("Cortex-A55"),
        ("0x41", "0xd07") => Some("Cortex-A57"),
        ("0x41", "0xd08") => Some("Cortex-A72"),
        ("0x41", "0xd09") => Some("Cortex-A73"),
        ("0x41", "0xd0a") => Some("Cortex-A75"),
        ("0x41", "0xd0b") => Some("Cortex-A76"),
        ("0x41", "0xd0c") => Some("Neoverse-N1"),
        ("0x41", "0xd0d") => Some("Cortex-A77"),
        ("0x41", "0xd40") => Some("Neoverse-V1"),
        ("0x41", "0xd41") => Some("Cortex-A78"),
        ("0x41", "0xd44") => Some("Cortex-X1"),
        ("0x41", "0xd46") => Some("Cortex-A510"),
        ("0x41", "0xd47") => Some("Cortex-A710"),
        ("0x41", "0xd48") => Some("Cortex-X2"),
        ("0x41", "0xd49") => Some("Neoverse-N2"),
        ("0x41", "0xd4b") => Some("Cortex-A78C"),
        ("0x41", "0xd4d") => Some("Cortex-A715"),
        ("0x41", "0xd4e") => Some("Cortex-X3"),
        ("0x41", "0xd4f") => Some("Neoverse-V2"),
        ("0x41", "0xd80") => Some("Cortex-A520"),
        ("0x41", "0xd81") => Some("Cortex-A720"),
        ("0x41", "0xd82") => Some("Cortex-X4"),
        ("0x41", "0xd85") => Some("Cortex-X925"),
        ("0x41", "0xd87") => Some("Cortex-A725"),
        ("0x41", "0xd8e") => Some("Neoverse-N3"),
        // Raspberry Pi 1 and Zero (ARM11), Pi 2 v1.1 (Cortex-A7).
        ("0x41", "0xb76") => Some("ARM1176"),
        ("0x41", "0xc07") => Some("Cortex-A7"),
        _ => None,
    };
    match known {
        Some(name) => name.to_string(),
        None => format!("ARM core (implementer {implementer}, part {part})"),
    }
}

/// `features` deduplicated, in the architecture's canonical order.
fn canonical<'a>(arch: &str, features: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let features: Vec<&str> = features.into_iter().collect();
    let order: &[&str] = match arch {
        "x86_64" => &X86_64_FEATURES,
        "aarch64" => &AARCH64_FEATURES,
        "arm" => &ARM_FEATURES,
        _ => &[],
    };
    let mut out: Vec<String> = order
        .iter()
        .filter(|name| features.contains(name))
        .map(|name| name.to_string())
        .collect();
    // Features added by TRACT_CPU_ISA that are not in this list (sme, amx-bf16, …).
    for name in features {
        if !out.iter().any(|f| f == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// What applying `TRACT_CPU_ISA` did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IsaEdits {
    /// Tokens tract does not know (it warns and ignores them; so do we).
    pub unknown: Vec<String>,
    /// Tokens of another architecture's feature: tract stops with a panic on these.
    pub foreign: Vec<(String, String)>,
    /// Tokens naming `neon` on aarch64, the baseline tract has no switch for (and whose
    /// token means 32-bit ARM's NEON: tract stops on it too).
    pub baseline: Vec<String>,
}

/// Applies `TRACT_CPU_ISA`'s comma-separated `+name` / `-name` / `name` edits to
/// `features` as tract does (a bare name adds).
pub fn apply_isa_edits(arch: &str, features: &mut Vec<String>, spec: &str) -> IsaEdits {
    let mut edits = IsaEdits::default();
    for token in spec.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let (add, name) = match token.split_at(1) {
            ("+", name) => (true, name),
            ("-", name) => (false, name),
            _ => (true, token),
        };
        let Some((_, owner)) = TRACT_TOKENS.iter().find(|(n, _)| *n == name) else {
            edits.unknown.push(name.to_string());
            continue;
        };
        if arch == "aarch64" && name == "neon" {
            edits.baseline.push(token.to_string());
            continue;
        }
        if *owner != arch {
            edits
                .foreign
                .push((token.to_string(), (*owner).to_string()));
            continue;
        }
        if name == *owner {
            continue; // the architecture itself: nothing to add or remove
        }
        features.retain(|f| f != name);
        if add {
            features.push(name.to_string());
        }
    }
    let kept: Vec<String> = std::mem::take(features);
    *features = canonical(arch, kept.iter().map(String::as_str));
    edits
}

impl IsaEdits {
    /// Why tract would stop on this `TRACT_CPU_ISA`, when it would.
    pub fn fatal(&self, arch: &str) -> Option<String> {
        let mut bad: Vec<String> = self
            .foreign
            .iter()
            .map(|(token, owner)| format!("{token} (a feature of {owner})"))
            .collect();
        bad.extend(self.baseline.iter().map(|token| {
            format!("{token} (tract's `neon` is 32-bit ARM's; NEON is always on in aarch64)")
        }));
        (!bad.is_empty()).then(|| {
            format!(
                "{TRACT_CPU_ISA} names {} on this {arch} machine, and tract stops with a panic on that: remove {} from {TRACT_CPU_ISA}",
                bad.join(", "),
                if bad.len() == 1 { "it" } else { "them" }
            )
        })
    }

    /// Notes for the user on what was ignored.
    fn notes(&self) -> Vec<String> {
        self.unknown
            .iter()
            .map(|name| {
                format!(
                    "{TRACT_CPU_ISA}: `{name}` is no feature tract knows; ignored (tract ignores it too)"
                )
            })
            .collect()
    }
}

impl CpuInfo {
    /// The CPU described by a `/proc/cpuinfo` text for `arch`, with `TRACT_CPU_ISA` (when
    /// given) applied. The features come from the text; [`detect`] asks the CPU instead.
    pub fn from_cpuinfo(text: &str, arch: &str, tract_cpu_isa: Option<&str>) -> CpuInfo {
        let facts = parse_cpuinfo(text, arch);
        let features = facts.features.clone();
        CpuInfo::from_facts(arch, &facts, features, tract_cpu_isa)
    }

    fn from_facts(
        arch: &str,
        facts: &CpuinfoFacts,
        mut features: Vec<String>,
        tract_cpu_isa: Option<&str>,
    ) -> CpuInfo {
        let mut notes = Vec::new();
        if let Some(spec) = tract_cpu_isa {
            let edits = apply_isa_edits(arch, &mut features, spec);
            notes.extend(edits.notes());
            notes.extend(edits.fatal(arch));
        }
        CpuInfo {
            arch: arch.to_string(),
            model: model_name(arch, facts),
            class: CpuClass::of(arch, &features),
            features,
            tract_cpu_isa: tract_cpu_isa.map(str::to_string),
            notes,
        }
    }

    /// Whether tract's int8 kernels beat its f32 ones on this CPU: x86 with AVX-512 VNNI
    /// or AVX-VNNI, and aarch64 (SDOT on ARMv8.2 cores such as the Pi 5's Cortex-A76;
    /// 16-bit widening multiply-accumulates on ARMv8.0 cores, twice the lanes of f32
    /// NEON). x86 with AVX2 + FMA only widens int8 to 16 bits: HuBERT-base's products
    /// ran at half their f32 speed there.
    pub fn int8_kernels_pay(&self) -> bool {
        let has = |name: &str| self.features.iter().any(|f| f == name);
        match self.arch.as_str() {
            "x86_64" => (has("avx512f") && has("avx512vnni")) || has("avxvnni"),
            "aarch64" => has("neon"),
            _ => false,
        }
    }

    /// Whether a record made on `other` describes this CPU: same architecture, model and
    /// features (so the same tract kernels).
    pub fn same_cpu(&self, other: &CpuInfo) -> bool {
        self.arch == other.arch && self.model == other.model && self.features == other.features
    }

    /// Why tract would stop on this machine's `TRACT_CPU_ISA`, when it would.
    pub fn fatal_isa(&self) -> Option<String> {
        let spec = self.tract_cpu_isa.as_deref()?;
        apply_isa_edits(&self.arch, &mut self.features.clone(), spec).fatal(&self.arch)
    }

    /// `model; features a,b,c; class …` (and `TRACT_CPU_ISA=…` when set), one line.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{} ({}); SIMD {}; class {}",
            self.model,
            self.arch,
            if self.features.is_empty() {
                "none".to_string()
            } else {
                self.features.join(",")
            },
            self.class
        );
        if let Some(spec) = &self.tract_cpu_isa {
            out.push_str(&format!("; {TRACT_CPU_ISA}={spec}"));
        }
        out
    }
}

fn model_name(arch: &str, facts: &CpuinfoFacts) -> String {
    let cores = (!facts.cores.is_empty()).then(|| facts.cores.join("+"));
    let cpu = match arch {
        "aarch64" | "arm" => cores.or_else(|| facts.model_name.clone()),
        _ => facts.model_name.clone().or(cores),
    };
    match (cpu, &facts.board) {
        (Some(cpu), Some(board)) => format!("{cpu} ({board})"),
        (Some(cpu), None) => cpu,
        (None, Some(board)) => board.clone(),
        (None, None) => format!("unknown {arch} CPU"),
    }
}

/// The running machine's CPU: `/proc/cpuinfo` for the names, the CPU itself for the
/// features, then `TRACT_CPU_ISA` (and `TRACT_DOTPROD_DISABLE`) as tract applies them.
pub fn detect() -> CpuInfo {
    let arch = std::env::consts::ARCH;
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let facts = parse_cpuinfo(&text, arch);
    let mut features = runtime_features(&facts);
    if arch == "aarch64" && env_flag(TRACT_DOTPROD_DISABLE) {
        features.retain(|f| f != "dotprod");
    }
    let spec = std::env::var(TRACT_CPU_ISA).ok();
    CpuInfo::from_facts(arch, &facts, features, spec.as_deref())
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "on" | "yes"
        )
    })
}

#[cfg(target_arch = "x86_64")]
fn runtime_features(facts: &CpuinfoFacts) -> Vec<String> {
    let mut found = Vec::new();
    for (name, present) in [
        ("avx", std::arch::is_x86_feature_detected!("avx")),
        ("avx2", std::arch::is_x86_feature_detected!("avx2")),
        ("fma", std::arch::is_x86_feature_detected!("fma")),
        ("f16c", std::arch::is_x86_feature_detected!("f16c")),
        ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
        (
            "avx512vnni",
            std::arch::is_x86_feature_detected!("avx512vnni"),
        ),
        (
            "avx512fp16",
            std::arch::is_x86_feature_detected!("avx512fp16"),
        ),
        ("avxvnni", std::arch::is_x86_feature_detected!("avxvnni")),
    ] {
        if present {
            found.push(name);
        }
    }
    // AMX detection is not stable in std: the kernel's flags say it.
    if facts.features.iter().any(|f| f == "amx-int8") {
        found.push("amx-int8");
    }
    canonical("x86_64", found)
}

#[cfg(target_arch = "aarch64")]
fn runtime_features(facts: &CpuinfoFacts) -> Vec<String> {
    let mut found = vec!["neon"];
    for (name, present) in [
        ("fp16", std::arch::is_aarch64_feature_detected!("fp16")),
        (
            "dotprod",
            std::arch::is_aarch64_feature_detected!("dotprod"),
        ),
        ("sve2", std::arch::is_aarch64_feature_detected!("sve2")),
    ] {
        if present {
            found.push(name);
        }
    }
    // tract trusts these cores by part number.
    if facts
        .cores
        .iter()
        .any(|c| c == "Cortex-A55" || c == "Cortex-A75")
    {
        found.extend(["fp16", "dotprod"]);
    }
    canonical("aarch64", found)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn runtime_features(facts: &CpuinfoFacts) -> Vec<String> {
    // 32-bit ARM (tract reads /proc/cpuinfo too) and the rest.
    facts.features.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Raspberry Pi 4 Model B on 64-bit Raspberry Pi OS (one core of four shown).
    const PI4: &str = "processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Revision\t: c03114
Serial\t\t: 100000001a2b3c4d
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
";

    /// A Raspberry Pi 5 on 64-bit Raspberry Pi OS.
    const PI5: &str = "processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x4
CPU part\t: 0xd0b
CPU revision\t: 1

Revision\t: c04170
Serial\t\t: 8a1b2c3d4e5f6a7b
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
";

    /// A Raspberry Pi Zero 2 W on 64-bit Raspberry Pi OS Lite.
    const ZERO2W: &str = "processor\t: 0
BogoMIPS\t: 38.40
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd03
CPU revision\t: 4

Revision\t: 902120
Serial\t\t: 00000000a1b2c3d4
Model\t\t: Raspberry Pi Zero 2 W Rev 1.0
";

    /// A Raspberry Pi 3 B+ on 32-bit Raspberry Pi OS.
    const PI3_32: &str = "processor\t: 0
model name\t: ARMv7 Processor rev 4 (v7l)
BogoMIPS\t: 38.40
Features\t: half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm crc32
CPU implementer\t: 0x41
CPU architecture: 7
CPU variant\t: 0x0
CPU part\t: 0xd03
CPU revision\t: 4

Hardware\t: BCM2835
Revision\t: a020d3
Model\t\t: Raspberry Pi 3 Model B Plus Rev 1.3
";

    /// An AVX-512 VNNI x86-64 (Zen 4), trimmed.
    const ZEN4: &str = "processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14 96-Core Processor
flags\t\t: fpu vme de pse sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt aes avx f16c rdrand bmi1 avx2 bmi2 avx512f avx512dq avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512vbmi avx512_vbmi2 avx512_vnni avx512_bitalg
";

    /// An AVX2-only x86-64 (Haswell).
    const HASWELL: &str = "processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz
flags\t\t: fpu vme de pse tsc msr sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt avx f16c rdrand avx2 bmi1 bmi2
";

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_pi_4_is_an_armv8_neon_cortex_a72() {
        let cpu = CpuInfo::from_cpuinfo(PI4, "aarch64", None);
        assert_eq!(cpu.model, "Cortex-A72 (Raspberry Pi 4 Model B Rev 1.4)");
        assert_eq!(cpu.features, strings(&["neon"]));
        assert_eq!(cpu.class, CpuClass::Armv8Neon);
        assert!(cpu.notes.is_empty());
    }

    #[test]
    fn a_pi_5_is_an_armv82_dot_product_cortex_a76() {
        let cpu = CpuInfo::from_cpuinfo(PI5, "aarch64", None);
        assert_eq!(cpu.model, "Cortex-A76 (Raspberry Pi 5 Model B Rev 1.0)");
        assert_eq!(cpu.features, strings(&["neon", "fp16", "dotprod"]));
        assert_eq!(cpu.class, CpuClass::Armv82Dotprod);
    }

    #[test]
    fn a_zero_2_w_is_an_armv8_neon_cortex_a53() {
        let cpu = CpuInfo::from_cpuinfo(ZERO2W, "aarch64", None);
        assert_eq!(cpu.model, "Cortex-A53 (Raspberry Pi Zero 2 W Rev 1.0)");
        assert_eq!(cpu.features, strings(&["neon"]));
        assert_eq!(cpu.class, CpuClass::Armv8Neon);
    }

    #[test]
    fn a_pi_3_on_a_32_bit_os_is_other_with_neon() {
        let cpu = CpuInfo::from_cpuinfo(PI3_32, "arm", None);
        assert_eq!(
            cpu.model,
            "Cortex-A53 (Raspberry Pi 3 Model B Plus Rev 1.3)"
        );
        assert_eq!(cpu.features, strings(&["neon"]));
        assert_eq!(cpu.class, CpuClass::Other);
    }

    #[test]
    fn x86_with_and_without_avx512() {
        let zen4 = CpuInfo::from_cpuinfo(ZEN4, "x86_64", None);
        assert_eq!(zen4.model, "AMD EPYC 9R14 96-Core Processor");
        assert_eq!(
            zen4.features,
            strings(&[
                "avx",
                "avx2",
                "fma",
                "f16c",
                "avx512f",
                "avx512vnni",
                "avxvnni"
            ])
        );
        assert_eq!(zen4.class, CpuClass::X86Avx512Vnni);

        let haswell = CpuInfo::from_cpuinfo(HASWELL, "x86_64", None);
        assert_eq!(haswell.model, "Intel(R) Core(TM) i7-4770 CPU @ 3.40GHz");
        assert_eq!(haswell.features, strings(&["avx", "avx2", "fma", "f16c"]));
        assert_eq!(haswell.class, CpuClass::X86Avx2);

        let old = CpuInfo::from_cpuinfo("model name : Old\nflags : sse sse2\n", "x86_64", None);
        assert_eq!(old.class, CpuClass::Other);
        assert!(old.features.is_empty());
    }

    #[test]
    fn int8_kernels_pay_with_dot_products_and_on_arm_only() {
        assert!(CpuInfo::from_cpuinfo(ZEN4, "x86_64", None).int8_kernels_pay());
        assert!(!CpuInfo::from_cpuinfo(HASWELL, "x86_64", None).int8_kernels_pay());
        let avx2_only = Some("-avx512f,-avx512vnni,-avxvnni");
        assert!(!CpuInfo::from_cpuinfo(ZEN4, "x86_64", avx2_only).int8_kernels_pay());
        // AVX-VNNI alone (256-bit dot products) is enough.
        let avx_vnni = Some("-avx512f,-avx512vnni");
        assert!(CpuInfo::from_cpuinfo(ZEN4, "x86_64", avx_vnni).int8_kernels_pay());
        assert!(CpuInfo::from_cpuinfo(PI4, "aarch64", None).int8_kernels_pay());
        assert!(CpuInfo::from_cpuinfo(PI5, "aarch64", None).int8_kernels_pay());
    }

    #[test]
    fn tract_cpu_isa_edits_the_features_and_so_the_class() {
        // What the issue measured: an AVX-512 machine made to dispatch as AVX2-only.
        let spec = "-avx512f,-avx512vnni,-avxvnni";
        let cpu = CpuInfo::from_cpuinfo(ZEN4, "x86_64", Some(spec));
        assert_eq!(cpu.features, strings(&["avx", "avx2", "fma", "f16c"]));
        assert_eq!(cpu.class, CpuClass::X86Avx2);
        assert_eq!(cpu.tract_cpu_isa.as_deref(), Some(spec));
        assert!(
            cpu.summary().contains("TRACT_CPU_ISA=-avx512f"),
            "{}",
            cpu.summary()
        );
        assert!(cpu.notes.is_empty(), "{:?}", cpu.notes);
        assert!(cpu.fatal_isa().is_none());

        // A Pi 5 without its dot product is a Pi 4 as far as tract's kernels go.
        let pi5 = CpuInfo::from_cpuinfo(PI5, "aarch64", Some(" -dotprod , -fp16 "));
        assert_eq!(pi5.features, strings(&["neon"]));
        assert_eq!(pi5.class, CpuClass::Armv8Neon);

        // `+name` and a bare name add, in canonical order.
        let pi4 = CpuInfo::from_cpuinfo(PI4, "aarch64", Some("dotprod,+fp16"));
        assert_eq!(pi4.features, strings(&["neon", "fp16", "dotprod"]));
        assert_eq!(pi4.class, CpuClass::Armv82Dotprod);

        // An empty value changes nothing.
        let same = CpuInfo::from_cpuinfo(HASWELL, "x86_64", Some(""));
        assert_eq!(same.features, strings(&["avx", "avx2", "fma", "f16c"]));
    }

    #[test]
    fn tract_cpu_isa_unknown_and_foreign_tokens() {
        let cpu = CpuInfo::from_cpuinfo(HASWELL, "x86_64", Some("-avx2,+warp9"));
        assert_eq!(cpu.features, strings(&["avx", "fma", "f16c"]));
        assert_eq!(cpu.class, CpuClass::Other);
        assert!(
            cpu.notes.iter().any(|n| n.contains("warp9")),
            "{:?}",
            cpu.notes
        );
        assert!(cpu.fatal_isa().is_none());

        // tract panics on another architecture's feature: say so before it does.
        let cpu = CpuInfo::from_cpuinfo(HASWELL, "x86_64", Some("-dotprod"));
        let fatal = cpu.fatal_isa().expect("dotprod is aarch64's");
        assert!(fatal.contains("-dotprod (a feature of aarch64)"), "{fatal}");
        assert!(fatal.contains("remove it"), "{fatal}");
        let pi4 = CpuInfo::from_cpuinfo(PI4, "aarch64", Some("-neon"));
        assert!(pi4.fatal_isa().is_some_and(|f| f.contains("32-bit ARM")));
        assert_eq!(pi4.features, strings(&["neon"]), "the baseline stays");
    }

    #[test]
    fn unknown_cores_and_missing_cpuinfo_still_name_something() {
        assert_eq!(
            core_name("0x51", "0x801"),
            "ARM core (implementer 0x51, part 0x801)"
        );
        let cpu = CpuInfo::from_cpuinfo("", "aarch64", None);
        assert_eq!(cpu.model, "unknown aarch64 CPU");
        assert_eq!(cpu.class, CpuClass::Armv8Neon);
        // big.LITTLE: both cores named, each once; A55 brings the dot product.
        let text = "CPU implementer : 0x41\nCPU part : 0xd05\nCPU implementer : 0x41\nCPU part : 0xd0b\nCPU implementer : 0x41\nCPU part : 0xd05\n";
        let cpu = CpuInfo::from_cpuinfo(text, "aarch64", None);
        assert_eq!(cpu.model, "Cortex-A55+Cortex-A76");
        assert_eq!(cpu.class, CpuClass::Armv82Dotprod);
    }

    #[test]
    fn this_machine_is_detected() {
        let cpu = detect();
        assert_eq!(cpu.arch, std::env::consts::ARCH);
        assert!(!cpu.model.is_empty());
        assert_eq!(cpu.class, CpuClass::of(&cpu.arch, &cpu.features));
        let round: CpuInfo = serde_json::from_str(&serde_json::to_string(&cpu).unwrap()).unwrap();
        assert!(round.same_cpu(&cpu));
    }
}
