//! The allocator of the `sidebus` binary and of the benchmark harnesses: mimalloc (malloc/free
//! were ~19% of CPU on the single-event path with glibc's; mimalloc's thread-local free lists cut
//! that), with its arenas committed on demand.

pub use mimalloc::MiMalloc;

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
