//! Measurement helpers: process CPU time (`getrusage`), peak RSS (VmHWM), allocated
//! disk usage of a directory, page-cache eviction for cold reads, and latency
//! percentiles.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Res;

/// User + system CPU time of this process (all threads).
pub fn cpu_time() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Peak resident set size of this process (VmHWM), in KiB.
pub fn peak_rss_kib() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Res<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk_files(&entry.path(), out)?;
        } else if ty.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Allocated size of everything under `dir` (like `du -s --block-size=1`).
pub fn disk_usage(dir: &Path) -> Res<u64> {
    let mut files = Vec::new();
    walk_files(dir, &mut files)?;
    let mut total = 0;
    for f in files {
        total += fs::symlink_metadata(&f)?.blocks() * 512;
    }
    Ok(total)
}

/// Evict the files under `dir` from the page cache (they are fsynced first so the
/// pages are clean), to simulate the cold cache of a restart after power loss.
pub fn evict_page_cache(dir: &Path) -> Res<()> {
    let mut files = Vec::new();
    walk_files(dir, &mut files)?;
    for path in files {
        let f = File::open(&path)?;
        f.sync_all()?;
        // SAFETY: plain syscall on a valid, open file descriptor.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(format!("posix_fadvise({}) failed: {rc}", path.display()).into());
        }
    }
    Ok(())
}

/// The `p` quantile (0..=1) of ascending `sorted` durations, in milliseconds
/// (nearest rank; 0 when empty).
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx].as_secs_f64() * 1e3
}
