//! The allocator of the `sidebus` binary and of the benchmark harnesses: mimalloc (malloc/free
//! were ~19% of CPU on the single-event path with glibc's; mimalloc's thread-local free lists cut
//! that), with its arenas committed on demand and what a load freed handed back once sidebus is
//! idle ([`release_when_idle`]).

use std::time::Duration;

pub use mimalloc::MiMalloc;

/// How often [`release_when_idle`] looks at the process's CPU time.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// CPU time per [`IDLE_CHECK`] below which the process counts as idle: 5 % of a core (an idle
/// sidecar with a Kafka broker configured spends about 1 % in librdkafka's threads).
const IDLE_CPU: Duration = Duration::from_millis(50);

/// mimalloc's `arena_eager_commit` option (its position in mimalloc v3's `mi_option_e`).
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// mimalloc's default for `arena_eager_commit`: eager where the OS overcommits (Linux).
const EAGER_WHERE_OVERCOMMIT: std::os::raw::c_long = 2;

/// By default mimalloc commits each arena it reserves in full; committing on demand keeps an
/// idle sidecar at about 2 MiB of heap instead of 10. The option must be set before the first
/// allocation reserves an arena, which happens in the Rust runtime's start-up, before `main`:
/// [`mimalloc_on_demand!`](crate::mimalloc_on_demand) runs this as an ELF initializer, after
/// mimalloc's own (priority 101) has read the environment. It allocates nothing. An explicit
/// `MIMALLOC_ARENA_EAGER_COMMIT=1` in the environment still wins.
pub extern "C" fn commit_arena_on_demand() {
    // SAFETY: reads and sets a plain integer option; mimalloc allows this at any time.
    unsafe {
        if libmimalloc_sys::mi_option_get(ARENA_EAGER_COMMIT) == EAGER_WHERE_OVERCOMMIT {
            libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        }
    }
}

/// Makes mimalloc the global allocator of the binary it is used in, committing arenas on demand
/// ([`commit_arena_on_demand`](crate::allocator::commit_arena_on_demand), run before `main`).
#[macro_export]
macro_rules! mimalloc_on_demand {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::allocator::MiMalloc = $crate::allocator::MiMalloc;

        #[cfg(target_os = "linux")]
        #[used]
        #[link_section = ".init_array"]
        static COMMIT_ARENA_ON_DEMAND: extern "C" fn() = $crate::allocator::commit_arena_on_demand;
    };
}

/// Hands the memory the allocators hold free back to the OS each time sidebus goes idle after
/// work.
///
/// mimalloc returns freed pages to the OS after `purge_delay` (1 s), but only while the
/// allocator is being called: a sidecar that goes quiet after a burst would keep the burst's
/// pages (45 MiB after the RSS harness's load) until the next one. Purging sooner costs
/// system calls and page faults on every busy second; instead, once a check finds the process
/// used under 5 % of a core since the last one, this forces one purge (`mi_collect(true)`) and
/// trims the C allocator the broker libraries use (librdkafka's queues), and does not again
/// until the process has been busy. Without mimalloc as the global allocator the first call
/// finds nothing to release.
pub async fn release_when_idle() {
    let mut checks = tokio::time::interval(IDLE_CHECK);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut before = process_cpu();
    let mut released = false;
    loop {
        checks.tick().await;
        let now = process_cpu();
        if now.saturating_sub(before) >= IDLE_CPU {
            released = false;
        } else if !released {
            release();
            released = true;
        }
        before = process_cpu();
    }
}

/// Returns free memory to the OS: mimalloc's (program-wide for its arenas, this thread's pages)
/// and, with glibc, malloc's.
fn release() {
    // SAFETY: plain calls into the allocators, allowed from any thread at any time.
    unsafe {
        libmimalloc_sys::mi_collect(true);
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        libc::malloc_trim(0);
    }
}

/// CPU time (user and system) of the whole process so far.
fn process_cpu() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid timespec for the call to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut time) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_advances_while_this_process_works() {
        let before = process_cpu();
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while process_cpu().saturating_sub(before) < Duration::from_millis(20) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "30 s of work did not show as 20 ms of CPU time"
            );
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
    }
}
