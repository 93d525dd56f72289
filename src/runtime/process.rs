//! Process-wide settings for tensor work: candle's thread pool, the
//! allocator and the floating-point environment (subnormals flushed). Call [`init`] once at program start, before any tensor work.

/// What the process is about to do; the best settings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// Encoding only: stpipe's fused kernels and gemm parallelise through
    /// rayon, and candle's own elementwise pool, spin-waiting between ops,
    /// would steal cores from them (measured: ~15% of encode time).
    Inference,
    /// Training: the backward pass is mostly candle's elementwise and
    /// reduction ops, which only its own pool parallelises.
    Training,
}

/// Configure candle's thread pool (unless `CANDLE_NUM_THREADS` is set) and
/// the allocator for `workload`.
pub fn init(workload: Workload) {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() && workload == Workload::Inference {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    keep_freed_memory();
    // Before any thread exists: every thread created later inherits the
    // flags, and the pools are built with them.
    super::fp_env::ensure();
}

/// Every tensor op allocates its output, and glibc hands blocks of a few
/// megabytes back to the kernel as soon as they are freed (mmap'd chunks,
/// heap trimming), so the next step faults and zeroes the same pages again:
/// a quarter of training time went to page faults and page clearing. Keep
/// freed memory in the process instead: blocks up to 32 MiB (glibc's
/// ceiling) come from the heap, and the heap is not trimmed. The resident
/// size then stays at the peak of a step, which the next step needs anyway.
/// `GLIBC_TUNABLES` / `MALLOC_*` settings made by the user are respected.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    let user_set = std::env::var_os("GLIBC_TUNABLES")
        .is_some_and(|v| v.to_string_lossy().contains("malloc"))
        || std::env::vars_os().any(|(k, _)| k.to_string_lossy().starts_with("MALLOC_"));
    if user_set {
        return;
    }
    // SAFETY: mallopt only changes allocator parameters; it is called at
    // start-up, before the program's threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_TOP_PAD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// One line on the machine's compute for `stpipe run`'s header: which
/// vectorised kernels run, the bf16 instructions the CPU has (and which of
/// them a stage's `precision: bf16` uses), the thread count, whether
/// subnormals are flushed on every compute thread, and which training step
/// runs.
pub fn cpu_summary() -> String {
    let kernels = kernel_level();
    let bf16 = match bf16_features().as_slice() {
        [] => String::new(),
        f => format!(
            " (the CPU has {}; f32 unless a stage sets `precision: bf16`{})",
            f.join(", "),
            if super::step::bf16::available() {
                ", which runs on AVX512-BF16"
            } else {
                ""
            }
        ),
    };
    let threads = rayon::current_num_threads();
    let ftz = if super::fp_env::enabled_everywhere() {
        "subnormals flushed to zero on every compute thread"
    } else {
        "subnormals NOT flushed (slow on Intel CPUs)"
    };
    let step = if super::step::enabled() {
        "explicit encoder step for the BERT family, autograd for other encoders"
    } else {
        "autograd for every encoder (STPIPE_AUTOGRAD is set)"
    };
    format!("cpu: {kernels} kernels{bf16}, {threads} threads, {ftz}; training: {step}")
}

/// The bf16 matrix instructions of the CPU, by their usual names.
fn bf16_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid_count;
        // SAFETY: `cpuid` exists on every x86_64 CPU; leaf 7 is read only
        // where the highest leaf (leaf 0's eax) reaches it.
        #[allow(unused_unsafe)]
        let (max_leaf, l7, l7_1) = unsafe {
            let max = __cpuid_count(0, 0).eax;
            if max >= 7 {
                (max, __cpuid_count(7, 0), __cpuid_count(7, 1))
            } else {
                (max, __cpuid_count(0, 0), __cpuid_count(0, 0))
            }
        };
        if max_leaf >= 7 {
            if l7_1.eax & (1 << 5) != 0 {
                out.push("AVX512-BF16");
            }
            if l7.edx & (1 << 22) != 0 {
                out.push("AMX-BF16");
            }
        }
    }
    out
}

/// The instruction set the fused kernels and gemm dispatch to.
fn kernel_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
        {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return "AVX2+FMA";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return "NEON";
    }
    #[allow(unreachable_code)]
    "scalar"
}
