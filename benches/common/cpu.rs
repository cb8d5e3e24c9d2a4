//! CPU seconds from `/proc`, shared by the load and delivery harnesses: this process's own (all
//! of it, or by thread group), a child server's, and an external broker's, so that a phase's
//! cost per operation counts the broker too.

/// utime + stime of a `/proc/…/stat` file, in seconds (USER_HZ is 100 on Linux).
pub(crate) fn stat_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// CPU seconds of this process.
pub(crate) fn own_seconds() -> f64 {
    stat_seconds("/proc/self/stat").unwrap_or(0.0)
}

/// CPU seconds of the processes `pids`, added up.
pub(crate) fn seconds_of(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| stat_seconds(&format!("/proc/{pid}/stat")))
        .sum()
}

/// PIDs of the processes whose command name is `comm` (`nats-server`, `beam.smp`).
pub(crate) fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .collect()
}

/// CPU seconds of this process's threads, summed by group: a thread (`/proc/self/task/<tid>`)
/// counts in the first group whose prefix its name starts with, and in none if none matches.
/// A tokio runtime's threads are named after it (`Builder::thread_name`), so this splits the
/// process's CPU between the runtimes (the load client, a receiver, a native client) in it.
pub(crate) fn own_threads_seconds<const N: usize>(prefixes: [&str; N]) -> [f64; N] {
    let mut seconds = [0.0; N];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return seconds;
    };
    for task in tasks.filter_map(Result::ok) {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let Some(group) = prefixes.iter().position(|p| comm.starts_with(p)) else {
            continue;
        };
        if let Some(s) = stat_seconds(&dir.join("stat").to_string_lossy()) {
            seconds[group] += s;
        }
    }
    seconds
}

/// The share of a combined operation's cost that a bare HTTP request is: `bare / (bare +
/// native)`, each in CPU seconds per operation, the native one with its broker's CPU. A rate that needs both a bare request's work and
/// a native broker operation's work, on the same cores, is at most this fraction of the bare
/// HTTP rate, whatever sits between them.
pub(crate) fn ceiling(bare_cpu_per_op: f64, native_cpu_per_op: f64) -> f64 {
    bare_cpu_per_op / (bare_cpu_per_op + native_cpu_per_op)
}
