//! The instruction-set switch every SIMD dispatch in this crate asks, and a record of which
//! kernel paths ran in this process.
//!
//! The level in use ([`active`]) is the CPU's best level ([`detected`]) capped by, in order of
//! precedence, [`set_cap`] (for a binary's flag or a test), the environment variable
//! `ONESHOT_ISA` (`portable`, `avx2`, `avx512`, `avx512bf16`, `amx`, `neon` or `auto`), and the
//! older `ONESHOT_AMX=0`, which caps at `avx512bf16` (AMX off, for A/B comparisons). A cap above
//! what the CPU has leaves the detected level. On aarch64 every x86 name above `portable` means
//! `neon`, and on x86_64 `neon` means `auto`, so one setting works on both.
//!
//! An unknown `ONESHOT_ISA` value is an error from [`from_env`], which a binary should call at
//! start-up so a typo (say `portabel`) stops the run instead of silently leaving the CPU's
//! kernels on. Code that only calls [`active`] never panics on it: the first use prints the
//! error to stderr once and runs at the detected level.
//!
//! `portable` is the numeric mode whose results do not depend on the CPU: plain Rust scalar
//! code, which the compiler may vectorise but never reassociates or fuses into FMAs, with a
//! summation order fixed by the code (never by the thread count or cache sizes). The
//! model crate routes every product through this crate's fixed-order kernel at this level.
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use std::sync::OnceLock;

/// Instruction-set levels, ordered within an architecture: on x86_64
/// `Portable < Avx2 < Avx512 < Avx512Bf16 < Amx`, on aarch64 `Portable < Neon`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Scalar Rust, bit-identical on every CPU.
    Portable,
    /// AVX2 + FMA.
    Avx2,
    /// AVX-512 F + BW.
    Avx512,
    /// AVX-512 F + BW + BF16 (`vdpbf16ps`).
    Avx512Bf16,
    /// AMX-TILE + AMX-BF16 (with the OS permission to use the tile state) on top of AVX512_BF16.
    Amx,
    /// aarch64 Advanced SIMD.
    Neon,
}

/// The values `ONESHOT_ISA` accepts.
pub const ALLOWED: &str = "portable, avx2, avx512, avx512bf16, amx, neon, auto";

impl Isa {
    /// Every level, lowest first.
    pub const ALL: [Isa; 6] = [
        Isa::Portable,
        Isa::Avx2,
        Isa::Avx512,
        Isa::Avx512Bf16,
        Isa::Amx,
        Isa::Neon,
    ];

    /// The `ONESHOT_ISA` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
            Isa::Amx => "amx",
            Isa::Neon => "neon",
        }
    }

    fn is_x86(self) -> bool {
        matches!(self, Isa::Avx2 | Isa::Avx512 | Isa::Avx512Bf16 | Isa::Amx)
    }

    /// Whether code written for `level` may run at this level: `level` is `Portable`, or of
    /// the same architecture and not above this one.
    pub fn allows(self, level: Isa) -> bool {
        level == Isa::Portable
            || (level == Isa::Neon && self == Isa::Neon)
            || (level.is_x86() && self.is_x86() && level <= self)
    }

    /// This level limited to what the CPU has (`detected`) and translated to its architecture.
    fn capped_to(self, detected: Isa) -> Isa {
        match self {
            Isa::Portable => Isa::Portable,
            _ if detected == Isa::Neon => Isa::Neon,
            Isa::Neon => detected,
            _ => self.min(detected),
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Isa {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Isa::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("unknown instruction-set level `{s}` (allowed: {ALLOWED})"))
    }
}

/// The best level this CPU (and OS) runs, detected once.
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    if !(has!("avx2") && has!("fma")) {
        return Isa::Portable;
    }
    if !(has!("avx512f") && has!("avx512bw")) {
        return Isa::Avx2;
    }
    if !has!("avx512bf16") {
        return Isa::Avx512;
    }
    if crate::gemm_bf16::amx_supported() {
        Isa::Amx
    } else {
        Isa::Avx512Bf16
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> Isa {
    if std::arch::is_aarch64_feature_detected!("neon") {
        Isa::Neon
    } else {
        Isa::Portable
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> Isa {
    Isa::Portable
}

/// Where the cap in force comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CapSource {
    /// No cap: the detected level.
    Auto,
    /// `ONESHOT_ISA=<value>`.
    Env(String),
    /// `ONESHOT_AMX=0` (caps at avx512bf16).
    AmxOff,
    /// An unknown `ONESHOT_ISA` value, ignored (see [`from_env`]).
    EnvInvalid(String),
    /// [`set_cap`].
    Program,
}

/// Reads `ONESHOT_ISA` (and `ONESHOT_AMX`): the cap they ask for (`None` = auto), or an error
/// naming the variable and the allowed values. Call it at start-up to reject a bad value.
pub fn from_env() -> Result<Option<Isa>, String> {
    match std::env::var("ONESHOT_ISA") {
        Ok(v) if v.is_empty() || v == "auto" => Ok(amx_off().then_some(Isa::Avx512Bf16)),
        Ok(v) => v
            .parse::<Isa>()
            .map(Some)
            .map_err(|_| format!("ONESHOT_ISA=`{v}` is not a level (allowed: {ALLOWED})")),
        Err(std::env::VarError::NotPresent) => Ok(amx_off().then_some(Isa::Avx512Bf16)),
        Err(e) => Err(format!("ONESHOT_ISA: {e} (allowed: {ALLOWED})")),
    }
}

fn amx_off() -> bool {
    std::env::var("ONESHOT_AMX").is_ok_and(|v| v == "0")
}

fn env_cap() -> &'static (Option<Isa>, CapSource) {
    static ENV: OnceLock<(Option<Isa>, CapSource)> = OnceLock::new();
    ENV.get_or_init(|| match from_env() {
        Ok(None) => (None, CapSource::Auto),
        Ok(Some(l)) if std::env::var("ONESHOT_ISA").is_ok_and(|v| v == l.name()) => {
            (Some(l), CapSource::Env(l.name().to_string()))
        }
        Ok(Some(l)) => (Some(l), CapSource::AmxOff),
        Err(e) => {
            eprintln!("oneshot-kernels: {e}; running at the detected level");
            (None, CapSource::EnvInvalid(e))
        }
    })
}

/// `u8::MAX` = not set by the program; otherwise an index into `Isa::ALL`.
static PROGRAM_CAP: AtomicU8 = AtomicU8::new(u8::MAX);
/// Cached active level (index into `Isa::ALL`), `u8::MAX` until first computed.
static ACTIVE: AtomicU8 = AtomicU8::new(u8::MAX);

/// Caps the level for the rest of the process (`None` returns to the environment's cap);
/// takes precedence over `ONESHOT_ISA`. Kernel calls already running keep their level.
pub fn set_cap(cap: Option<Isa>) {
    let idx = cap.map_or(u8::MAX, |l| {
        Isa::ALL.iter().position(|&x| x == l).unwrap() as u8
    });
    PROGRAM_CAP.store(idx, Relaxed);
    ACTIVE.store(compute_active() as u8, Relaxed);
}

fn program_cap() -> Option<Isa> {
    Isa::ALL.get(PROGRAM_CAP.load(Relaxed) as usize).copied()
}

fn compute_active() -> usize {
    let cap = program_cap().or(env_cap().0);
    let level = cap.map_or(detected(), |c| c.capped_to(detected()));
    Isa::ALL.iter().position(|&x| x == level).unwrap()
}

/// The level kernels use: [`detected`] under the cap in force. One relaxed load once known.
#[inline]
pub fn active() -> Isa {
    let idx = ACTIVE.load(Relaxed);
    if let Some(&l) = Isa::ALL.get(idx as usize) {
        return l;
    }
    let idx = compute_active();
    ACTIVE.store(idx as u8, Relaxed);
    Isa::ALL[idx]
}

/// Whether the active level is [`Isa::Portable`] (the CPU-independent numeric mode).
pub fn is_portable() -> bool {
    active() == Isa::Portable
}

/// Detected level, active level and where the cap comes from, for run records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub detected: Isa,
    pub active: Isa,
    pub cap: Option<Isa>,
    pub cap_source: CapSource,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.cap_source {
            CapSource::Auto => "auto".to_string(),
            CapSource::Env(v) => format!("ONESHOT_ISA={v}"),
            CapSource::AmxOff => "ONESHOT_AMX=0".to_string(),
            CapSource::EnvInvalid(e) => format!("ignored: {e}"),
            CapSource::Program => "set by the program".to_string(),
        };
        write!(
            f,
            "detected {}, active {} (cap: {source})",
            self.detected, self.active
        )
    }
}

/// See [`Summary`].
pub fn summary() -> Summary {
    let (cap, cap_source) = match program_cap() {
        Some(c) => (Some(c), CapSource::Program),
        None => env_cap().clone(),
    };
    Summary {
        detected: detected(),
        active: active(),
        cap,
        cap_source,
    }
}

/// One kernel path; `hit` marks it as having run in this process.
pub struct Path {
    name: &'static str,
    used: AtomicBool,
}

impl Path {
    const fn new(name: &'static str) -> Self {
        Self {
            name,
            used: AtomicBool::new(false),
        }
    }

    /// Marks the path as used (a relaxed load, and a store only the first time).
    #[inline]
    pub fn hit(&self) {
        if !self.used.load(Relaxed) {
            self.used.store(true, Relaxed);
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

macro_rules! paths {
    ($($(#[$doc:meta])* $id:ident = $name:literal),* $(,)?) => {
        /// Every kernel path the dispatch sites record.
        pub mod path {
            use super::Path;
            $($(#[$doc])* pub static $id: Path = Path::new($name);)*
        }
        static ALL_PATHS: &[&Path] = &[$(&path::$id),*];
    };
}

paths! {
    /// `matmul_nt_inference` / the small-row f32 and bf16-weight products, scalar code.
    MATMUL_NT_PORTABLE = "matmul_nt:portable",
    /// The same with AVX2 + FMA tiles.
    MATMUL_NT_AVX2 = "matmul_nt:avx2",
    /// The same with AVX-512 tiles.
    MATMUL_NT_AVX512 = "matmul_nt:avx512",
    /// The same with NEON tiles.
    MATMUL_NT_NEON = "matmul_nt:neon",
    /// bf16 x bf16 dot-product tiles (`vdpbf16ps`).
    MATMUL_NT_BF16DOT = "matmul_nt_bf16:avx512bf16",
    /// Packed bf16 GEMM, AVX512_BF16 micro-kernel.
    GEMM_BF16_AVX512 = "gemm_bf16:avx512bf16",
    /// Packed bf16 GEMM, AMX tiles.
    GEMM_BF16_AMX = "gemm_bf16:amx",
    /// The differentiable fixed-order f32 product (`portable_matmul_nt`).
    PORTABLE_MATMUL_OP = "portable_matmul_nt",
    /// Fused row kernels (softmax, RMSNorm, attention) compiled for the baseline target.
    SIMD_PORTABLE = "simd:portable",
    /// The same compiled with AVX2 + FMA enabled.
    SIMD_AVX2 = "simd:avx2",
    /// candle's matmul (the `gemm` crate), recorded by callers that use it.
    CANDLE_MATMUL = "candle_matmul",
    /// `linear_bf16` through `reference::linear_bf16` (candle's matmul on rounded operands).
    LINEAR_BF16_REFERENCE = "linear_bf16:reference",
}

/// Names of the kernel paths that ran in this process (e.g. `matmul_nt:avx512`).
pub fn paths_used() -> Vec<String> {
    ALL_PATHS
        .iter()
        .filter(|p| p.used.load(Relaxed))
        .map(|p| p.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_values_name_the_choices() {
        for l in Isa::ALL {
            assert_eq!(l.name().parse::<Isa>(), Ok(l));
        }
        let err = "portabel".parse::<Isa>().unwrap_err();
        assert!(err.contains("portabel") && err.contains(ALLOWED), "{err}");
    }

    #[test]
    fn levels_allow_lower_levels_of_their_architecture_only() {
        assert!(Isa::Amx.allows(Isa::Avx2) && Isa::Avx512.allows(Isa::Avx512));
        assert!(!Isa::Avx2.allows(Isa::Avx512) && !Isa::Portable.allows(Isa::Avx2));
        assert!(!Isa::Neon.allows(Isa::Avx2) && !Isa::Amx.allows(Isa::Neon));
        assert!(Isa::Neon.allows(Isa::Portable) && Isa::Avx2.allows(Isa::Portable));
        assert_eq!(Isa::Amx.capped_to(Isa::Avx2), Isa::Avx2);
        assert_eq!(Isa::Avx2.capped_to(Isa::Amx), Isa::Avx2);
        assert_eq!(Isa::Avx512.capped_to(Isa::Neon), Isa::Neon);
        assert_eq!(Isa::Neon.capped_to(Isa::Avx512), Isa::Avx512);
        assert_eq!(Isa::Portable.capped_to(Isa::Neon), Isa::Portable);
    }

    #[test]
    fn paths_record_once_hit() {
        path::CANDLE_MATMUL.hit();
        assert!(paths_used().contains(&"candle_matmul".to_string()));
    }
}
