//! How much more device memory the engine may allocate, checked before every large allocation
//! (a graph's buffers, a weight) so that a request too big for the machine is an error naming
//! the sizes, never an abort.
//!
//! WebGPU reports no memory size and drivers differ in how they fail: a real GPU's driver
//! returns out-of-memory (caught by the executor's error scope), but lavapipe allocates device
//! memory from the host and, in Mesa 25.0, crashes on a failed `mmap` (issue #24). So the
//! budget is, in this order: one the host set ([`super::GpuContext::set_memory_budget`], or
//! `PTDIT_MEMORY_BUDGET` natively); on a CPU adapter, the host memory left; else none.

/// What a budget check compares against, for the error message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headroom {
    /// Bytes that may still be allocated.
    pub left: u64,
    /// Where the figure comes from.
    pub source: String,
}

/// Reads a size such as `512M`, `2G`, `1.5GiB` or `1048576` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let scale: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0_f64.powi(4),
        _ => return None,
    };
    let bytes = value * scale;
    (bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// Host memory this process may still take, on Linux: the smaller of the memory the kernel
/// reports available and what the address-space limit (`ulimit -v`) leaves. A CPU adapter's
/// device memory is host memory. One eighth is kept back for the driver's own allocations
/// (compiled kernels, staging copies).
pub fn host_memory_left() -> Option<Headroom> {
    let available = meminfo_available();
    let address_space = address_space_left();
    let (left, source) = match (available, address_space) {
        (Some(a), Some(s)) if s < a => (s, "the address-space limit (ulimit -v)"),
        (Some(a), _) => (a, "the host's available memory"),
        (None, Some(s)) => (s, "the address-space limit (ulimit -v)"),
        (None, None) => return None,
    };
    Some(Headroom {
        left: left - left / 8,
        source: format!("{source}, less an eighth for the driver; the adapter runs on the CPU"),
    })
}

#[cfg(target_os = "linux")]
fn meminfo_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    kib_field(&text, "MemAvailable:")
}

#[cfg(target_os = "linux")]
fn address_space_left() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))?;
    // "Max address space   <soft>   <hard>   bytes": the soft limit is the one enforced.
    let soft: u64 = line["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let used = kib_field(&status, "VmSize:")?;
    Some(soft.saturating_sub(used))
}

#[cfg(not(target_os = "linux"))]
fn meminfo_available() -> Option<u64> {
    None
}

#[cfg(not(target_os = "linux"))]
fn address_space_left() -> Option<u64> {
    None
}

/// A `Name:   1234 kB` field of a /proc file, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("1.5g"), Some(3 << 29));
        for bad in ["", "M", "-1", "12 parsecs", "0", "1e400", "99999999999T"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn proc_fields_read_in_bytes() {
        let text = "MemTotal:  100 kB\nMemAvailable:    25 kB\n";
        assert_eq!(kib_field(text, "MemAvailable:"), Some(25 * 1024));
        assert_eq!(kib_field(text, "VmSize:"), None);
    }
}
