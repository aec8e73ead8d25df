//! The module's global allocator: the system's, with an emergency reserve,
//! so that a failed allocation fails the login instead of aborting the
//! application (sshd, su, sudo, a screen locker) that loaded the module.
//!
//! Rust's default reaction to an allocator returning NULL is to abort the
//! process, without unwinding, so `catch_unwind` cannot help, and the ways
//! to react otherwise (`-Zoom=panic`, `std::alloc::set_alloc_error_hook`)
//! are unstable. So the allocator does not return NULL while it can help
//! it: when malloc fails, [`WithReserve`] hands out memory from a fixed
//! static reserve instead and counts the failure. The entry points read
//! that count with a [`Watch`] and return PAM_BUF_ERR when it grew during
//! the call; the link to the daemon sends and reads nothing more, and the
//! conversation shows and asks nothing more, once it grew. So a login that
//! met an allocation failure never succeeds, spends no code, and needs the
//! reserve only for the rest of the step it was in.
//!
//! The reserve is a bump arena: each block is carved off the free end with
//! one atomic compare-and-swap and recognised as the reserve's by its
//! address when it comes back. A block given back is wiped; the free end
//! moves down over it when it was the last one carved (which is also the
//! one block that grows and shrinks where it lies, so a growing buffer
//! costs its final size), and back to the start once no block is out, so
//! an application that runs for weeks (a screen locker) has the whole
//! reserve again after each episode. Other holes wait for that. This keeps
//! it lock-free and simple enough never to fail itself: no code here can
//! panic, unwind or allocate. When the reserve is exhausted too the
//! allocator returns NULL and the default abort happens; [`RESERVE_BYTES`]
//! is sized against what a login allocates, measured by the fault suite
//! (tests/tests/module_faults.rs).
//!
//! As the crate's `#[global_allocator]` it governs only the module's own
//! Rust allocations, in the `.so` (libpam, libc and the application keep
//! theirs). The crate's own unit tests (`cfg(test)`) keep the system
//! allocator; nothing else links the rlib.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use twofold_proto::zeroize::Zeroize;

/// Size of the emergency reserve. Measured by the fault suite: a whole
/// login asks for 6–9 KB (the largest block the 4 KiB read buffer), and
/// with every allocation failing from any point on, at most 4.6 KB of the
/// reserve is in use at once. The most any step can take is a failure
/// while the module reads an information line as long as a frame may be
/// (`MAX_FRAME`, 64 KiB) and full of JSON escapes: 215 KB (the frame, the
/// parser's scratch buffer and the text). It lies in .bss, so it costs
/// the `.so` no file size and a process no memory until a failure touches
/// it.
pub const RESERVE_BYTES: usize = 256 * 1024;

/// The allocator of `pam_twofold.so`.
#[cfg_attr(not(test), global_allocator)]
static ALLOCATOR: WithReserve<System, RESERVE_BYTES> = WithReserve::new(System);

/// How many allocations have failed (been served by the reserve, or not at
/// all) in this process so far.
pub fn failures() -> usize {
    ALLOCATOR.failures()
}

/// The most bytes of the reserve ever in use at once in this process.
pub fn most_used() -> usize {
    ALLOCATOR.most_used()
}

/// Whether an allocation failed since a point in time: taken at the start
/// of an entry point (or of the link to the daemon), asked at its end.
///
/// The count is the process's, not the thread's: in an application that
/// runs logins on several threads at once, a failure in one fails the
/// others that overlap it too, which fails closed.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    at_start: usize,
}

impl Watch {
    /// Starts watching.
    pub fn start() -> Watch {
        Watch {
            at_start: failures(),
        }
    }

    /// Whether an allocation failed since [`Watch::start`].
    pub fn failed(&self) -> bool {
        failures() != self.at_start
    }
}

/// The bytes of a reserve, aligned for any ordinary type.
#[repr(C, align(16))]
struct Arena<const N: usize>(UnsafeCell<[u8; N]>);

/// An allocator `A` that, when `A` returns NULL, serves the request from a
/// reserve of `N` bytes and counts the failure.
#[derive(Debug)]
pub struct WithReserve<A, const N: usize> {
    system: A,
    arena: Arena<N>,
    /// The blocks of the arena out (high 32 bits) and the bytes of it used
    /// (low 32 bits: handed out or skipped for alignment), changed together.
    state: AtomicU64,
    /// Requests `system` could not serve.
    failures: AtomicUsize,
    /// The most bytes of the arena ever in use at once.
    most: AtomicUsize,
}

/// The low 32 bits of [`WithReserve::state`].
const USED: u64 = 0xffff_ffff;
/// One block in the high 32 bits of [`WithReserve::state`].
const ONE_LIVE: u64 = 1 << 32;

impl<const N: usize> std::fmt::Debug for Arena<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Arena({N} bytes)")
    }
}

// SAFETY: the arena's bytes are only reached through blocks handed out by
// `carve` (or grown by `resize_last` over the free end), each range claimed
// by an atomic compare-and-swap and claimed again only after its block came
// back, so no two live blocks share a byte; the rest is atomics and `A`.
unsafe impl<A: Sync, const N: usize> Sync for WithReserve<A, N> {}

impl<A, const N: usize> WithReserve<A, N> {
    /// `system` with a reserve of `N` bytes.
    pub const fn new(system: A) -> Self {
        // Checked at compile time: the used bytes fit in `state`.
        const { assert!(N as u64 <= USED) };
        WithReserve {
            system,
            arena: Arena(UnsafeCell::new([0; N])),
            state: AtomicU64::new(0),
            failures: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }

    /// Requests `system` could not serve so far.
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::SeqCst)
    }

    /// The most bytes of the reserve ever in use at once.
    pub fn most_used(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    /// Bytes of the reserve in use: 0 once no block of it is out.
    pub fn reserve_used(&self) -> usize {
        (self.state.load(Ordering::SeqCst) & USED) as usize
    }

    fn base(&self) -> *mut u8 {
        self.arena.0.get().cast()
    }

    /// Whether `p` was handed out by the reserve.
    fn in_reserve(&self, p: *mut u8) -> bool {
        let (base, p) = (self.base() as usize, p as usize);
        p >= base && p - base < N
    }

    /// Counts a failure of `system` and carves `layout` off the reserve;
    /// NULL when the reserve has no room left for it.
    #[cold]
    #[inline(never)]
    fn carve(&self, layout: Layout) -> *mut u8 {
        self.failures.fetch_add(1, Ordering::SeqCst);
        let base = self.base() as usize;
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let used = (state & USED) as usize;
            // Aligned by address: the arena's own alignment may be smaller.
            let Some(start) = base
                .checked_add(used)
                .and_then(|a| a.checked_next_multiple_of(layout.align()))
                .map(|a| a - base)
            else {
                return std::ptr::null_mut();
            };
            let end = match start.checked_add(layout.size().max(1)) {
                Some(end) if end <= N => end,
                _ => return std::ptr::null_mut(),
            };
            if state >> 32 == USED {
                return std::ptr::null_mut();
            }
            // end <= N <= USED (checked in `new`): fits the low half.
            let next = (state & !USED) + ONE_LIVE + end as u64;
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.most.fetch_max(end, Ordering::SeqCst);
                    // SAFETY: start < end <= N: inside the arena.
                    return unsafe { self.base().add(start) };
                }
                Err(now) => state = now,
            }
        }
    }

    /// Where the reserve block at `p` of `size` bytes starts and ends, as
    /// offsets into the arena (a block takes at least one byte).
    fn span(&self, p: *mut u8, size: usize) -> (usize, usize) {
        let start = p as usize - self.base() as usize;
        (start, start.saturating_add(size.max(1)))
    }

    /// Takes back the reserve block at `p` of `size` bytes, already wiped:
    /// one block fewer out; the free end moves down over it when it is the
    /// last block carved, and back to the start when no block is out.
    fn back_to_reserve(&self, p: *mut u8, size: usize) {
        let (start, end) = self.span(p, size);
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            let live = (state >> 32).saturating_sub(1);
            let used = match state & USED {
                _ if live == 0 => 0,
                used if used == end as u64 => start as u64,
                used => used,
            };
            match self.state.compare_exchange_weak(
                state,
                (live << 32) | used,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(now) => state = now,
            }
        }
    }

    /// Resizes the reserve block at `p` from `old` to `new` bytes where it
    /// lies, which only the last block carved can do; false otherwise. So a
    /// buffer that keeps growing (a `Vec`, serde_json's scratch) costs the
    /// reserve its final size, not the sum of every size it had.
    fn resize_last(&self, p: *mut u8, old: usize, new: usize) -> bool {
        let (start, old_end) = self.span(p, old);
        let new_end = match start.checked_add(new.max(1)) {
            Some(end) if end <= N => end,
            _ => return false,
        };
        if new < old {
            // What is given up is wiped first (it may be handed out next).
            // SAFETY: p holds old bytes; new..old lies inside them.
            unsafe { std::slice::from_raw_parts_mut(p.add(new), old - new) }.zeroize();
        }
        let mut state = self.state.load(Ordering::Acquire);
        loop {
            if state & USED != old_end as u64 {
                return false;
            }
            match self.state.compare_exchange_weak(
                state,
                (state & !USED) | new_end as u64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.most.fetch_max(new_end, Ordering::SeqCst);
                    return true;
                }
                Err(now) => state = now,
            }
        }
    }

    /// Moves the block `p` of `layout` into `q` of `new_size` bytes and
    /// frees `p`; NULL, leaving `p` as it was, when `q` is NULL.
    ///
    /// # Safety
    /// `p` is a live block of `layout` from this allocator; `q` is null or
    /// a distinct block of at least `new_size` bytes.
    unsafe fn moved(&self, p: *mut u8, layout: Layout, q: *mut u8, new_size: usize) -> *mut u8
    where
        A: GlobalAlloc,
    {
        if q.is_null() {
            return q;
        }
        // SAFETY: p holds layout.size() bytes, q new_size; distinct blocks.
        unsafe {
            std::ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            self.dealloc(p, layout);
        }
        q
    }
}

// SAFETY: every block returned is either `system`'s (valid for `layout` by
// its contract) or a range of the arena of at least `layout.size()` bytes
// at `layout.align()`, which no other live block overlaps: a range is
// claimed by one compare-and-swap and handed out again only after its
// block came back. Blocks go back to whichever of the two they came from.
unsafe impl<A: GlobalAlloc, const N: usize> GlobalAlloc for WithReserve<A, N> {
    // Each method is the system's call and a test; the rest is out of line
    // (`#[cold]`), since with LTO these methods are inlined wherever the
    // module allocates.

    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller's contract.
        let p = unsafe { self.system.alloc(layout) };
        if p.is_null() {
            self.carve(layout)
        } else {
            p
        }
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded from our caller's contract.
        let p = unsafe { self.system.alloc_zeroed(layout) };
        if p.is_null() {
            self.zeroed_from_reserve(layout)
        } else {
            p
        }
    }

    #[inline(never)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if self.in_reserve(p) {
            // SAFETY: p is a reserve block of this layout its owner gives up.
            unsafe { self.free_reserve_block(p, layout) };
        } else {
            // SAFETY: p came from `system` with this layout (caller's contract).
            unsafe { self.system.dealloc(p, layout) }
        }
    }

    #[inline(never)]
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.in_reserve(p) {
            // SAFETY: p came from `system` with this layout; new_size is
            // valid (caller's contract).
            let q = unsafe { self.system.realloc(p, layout, new_size) };
            if !q.is_null() {
                return q;
            }
            // `system` failed and left p as it was.
        }
        // SAFETY: forwarded from our caller's contract.
        unsafe { self.realloc_failed(p, layout, new_size) }
    }
}

impl<A: GlobalAlloc, const N: usize> WithReserve<A, N> {
    #[cold]
    #[inline(never)]
    fn zeroed_from_reserve(&self, layout: Layout) -> *mut u8 {
        let p = self.carve(layout);
        if !p.is_null() {
            // Bytes of the arena are wiped when given back, so zero
            // already; said again here rather than relied upon.
            // SAFETY: p is a fresh reserve block of layout.size() bytes.
            unsafe { p.write_bytes(0, layout.size()) };
        }
        p
    }

    /// Wipes a reserve block and gives it back: wiped first, since after
    /// that another thread may be handed it, and so that a block waiting
    /// for the whole arena to come back does not keep what it held (maybe
    /// a code) meanwhile.
    ///
    /// # Safety
    /// `p` is a live reserve block of `layout` that its owner gives up.
    #[cold]
    #[inline(never)]
    unsafe fn free_reserve_block(&self, p: *mut u8, layout: Layout) {
        // SAFETY: p holds layout.size() bytes (caller).
        unsafe { std::slice::from_raw_parts_mut(p, layout.size()) }.zeroize();
        self.back_to_reserve(p, layout.size());
    }

    /// `realloc` of a reserve block, or of a system block the system could
    /// not resize.
    ///
    /// # Safety
    /// As for [`GlobalAlloc::realloc`].
    #[cold]
    #[inline(never)]
    unsafe fn realloc_failed(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that new_size, rounded up to
        // layout.align(), does not overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !self.in_reserve(p) {
            let q = self.carve(new_layout);
            // SAFETY: p is live with layout; q is null or a new block.
            return unsafe { self.moved(p, layout, q, new_size) };
        }
        // Out of the reserve when the system can serve again.
        // SAFETY: new_layout has a non-zero size (caller's contract).
        let q = unsafe { self.system.alloc(new_layout) };
        if !q.is_null() {
            // SAFETY: as above.
            return unsafe { self.moved(p, layout, q, new_size) };
        }
        if self.resize_last(p, layout.size(), new_size) {
            self.failures.fetch_add(1, Ordering::SeqCst);
            return p;
        }
        let q = self.carve(new_layout);
        // SAFETY: as above.
        unsafe { self.moved(p, layout, q, new_size) }
    }
}

#[cfg(test)]
#[path = "reserve_tests.rs"]
mod tests;
