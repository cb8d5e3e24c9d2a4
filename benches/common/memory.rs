//! Resident memory from `/proc/<pid>/status`, shared by the RSS and load harnesses.

/// A `kB` field of `/proc/<process>/status` (`VmRSS:`, `VmHWM:`, `RssAnon:`…) in KiB; `process`
/// is a PID or `self`.
pub(crate) fn status_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}
