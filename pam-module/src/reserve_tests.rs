use super::*;
use std::sync::atomic::AtomicBool;

/// The system allocator, failing every request while `fail` is set,
/// counting what it frees.
#[derive(Debug, Default)]
struct Flaky {
    fail: AtomicBool,
    freed: AtomicUsize,
}

unsafe impl GlobalAlloc for Flaky {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.fail.load(Ordering::SeqCst) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        self.freed.fetch_add(1, Ordering::SeqCst);
        unsafe { System.dealloc(p, layout) }
    }
}

fn flaky<const N: usize>(fail: bool) -> Box<WithReserve<Flaky, N>> {
    let a = Box::new(WithReserve::<Flaky, N>::new(Flaky::default()));
    a.system.fail.store(fail, Ordering::SeqCst);
    a
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

#[test]
fn the_system_serves_while_it_can_and_nothing_is_counted() {
    let a = flaky::<1024>(false);
    let l = layout(100, 8);
    let p = unsafe { a.alloc(l) };
    assert!(!p.is_null() && !a.in_reserve(p));
    unsafe { a.dealloc(p, l) };
    assert_eq!((a.failures(), a.reserve_used()), (0, 0));
    assert_eq!(a.system.freed.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failure_is_served_by_the_reserve_aligned_and_counted() {
    let a = flaky::<1024>(true);
    let mut blocks = Vec::new();
    for (size, align) in [(3, 1), (40, 8), (16, 64), (1, 256)] {
        let l = layout(size, align);
        let p = unsafe { a.alloc(l) };
        assert!(a.in_reserve(p), "{size}@{align}");
        assert!((p as usize).is_multiple_of(align), "{size}@{align}");
        unsafe { p.write_bytes(0xA5, size) };
        blocks.push((p, l));
    }
    assert_eq!(a.failures(), 4);
    // No two blocks overlap: each still holds its own bytes.
    for (p, l) in &blocks {
        let bytes = unsafe { std::slice::from_raw_parts(*p, l.size()) };
        assert!(bytes.iter().all(|&b| b == 0xA5));
    }
    let z = unsafe { a.alloc_zeroed(layout(32, 8)) };
    assert!(a.in_reserve(z));
    assert!(unsafe { std::slice::from_raw_parts(z, 32) }
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn a_reserve_block_is_wiped_when_freed_and_never_handed_to_the_system() {
    let a = flaky::<1024>(true);
    let l = layout(6, 1);
    let p = unsafe { a.alloc(l) };
    unsafe { p.copy_from_nonoverlapping(b"123456".as_ptr(), 6) };
    unsafe { a.dealloc(p, l) };
    assert_eq!(unsafe { std::slice::from_raw_parts(p, 6) }, [0; 6]);
    assert_eq!(a.system.freed.load(Ordering::SeqCst), 0);
}

#[test]
fn the_reserve_starts_over_once_every_block_is_back() {
    let a = flaky::<64>(true);
    let (l, m) = (layout(24, 8), layout(16, 8));
    let p = unsafe { a.alloc(l) };
    let q = unsafe { a.alloc(m) };
    assert_eq!(a.reserve_used(), 40);
    unsafe { a.dealloc(p, l) };
    // q is still out: nothing is reused yet.
    assert_eq!(a.reserve_used(), 40);
    let r = unsafe { a.alloc(m) };
    assert!(a.in_reserve(r) && r != p && r != q);
    unsafe {
        a.dealloc(q, m);
        a.dealloc(r, m);
    }
    assert_eq!(a.reserve_used(), 0);
    // The whole arena again, for one block as large as it.
    let all = unsafe { a.alloc(layout(64, 8)) };
    assert!(a.in_reserve(all));
    assert_eq!(a.failures(), 4);
}

#[test]
fn the_last_block_carved_grows_and_shrinks_where_it_lies() {
    let a = flaky::<1024>(true);
    let p = unsafe { a.alloc(layout(16, 8)) };
    unsafe { p.write_bytes(7, 16) };
    let grown = unsafe { a.realloc(p, layout(16, 8), 512) };
    assert_eq!((grown, a.reserve_used()), (p, 512));
    let shrunk = unsafe { a.realloc(p, layout(512, 8), 8) };
    assert_eq!((shrunk, a.reserve_used()), (p, 8));
    // What it gave up is wiped; what it kept is kept.
    assert_eq!(
        unsafe { std::slice::from_raw_parts(p, 16) },
        [7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // Once another block lies above it, it moves.
    let q = unsafe { a.alloc(layout(8, 8)) };
    let moved = unsafe { a.realloc(p, layout(8, 8), 32) };
    assert!(moved != p && a.in_reserve(moved));
    assert_eq!(unsafe { std::slice::from_raw_parts(moved, 8) }, [7; 8]);
    // Every failure counted: two allocations, three reallocations.
    assert_eq!(a.failures(), 5);
    unsafe {
        a.dealloc(q, layout(8, 8));
        a.dealloc(moved, layout(32, 8));
    }
    assert_eq!(a.reserve_used(), 0);
}

#[test]
fn an_exhausted_reserve_returns_null_without_panicking() {
    let a = flaky::<64>(true);
    assert!(unsafe { a.alloc(layout(65, 1)) }.is_null());
    assert!(!unsafe { a.alloc(layout(64, 1)) }.is_null());
    assert!(unsafe { a.alloc(layout(1, 1)) }.is_null());
    assert!(unsafe { a.alloc(layout(1, 1 << 40)) }.is_null());
    assert_eq!(a.failures(), 4);
}

#[test]
fn a_failed_realloc_moves_the_block_into_the_reserve() {
    let a = flaky::<1024>(false);
    let l = layout(8, 1);
    let p = unsafe { a.alloc(l) };
    unsafe { p.copy_from_nonoverlapping(b"abcdefgh".as_ptr(), 8) };
    a.system.fail.store(true, Ordering::SeqCst);
    // Flaky's realloc is GlobalAlloc's default: alloc, copy, dealloc.
    let q = unsafe { a.realloc(p, l, 100) };
    assert!(a.in_reserve(q));
    assert_eq!(unsafe { std::slice::from_raw_parts(q, 8) }, b"abcdefgh");
    assert_eq!(a.system.freed.load(Ordering::SeqCst), 1, "the old block");
    assert_eq!(a.failures(), 1);
    // Out of the reserve again once the system can serve.
    a.system.fail.store(false, Ordering::SeqCst);
    let r = unsafe { a.realloc(q, layout(100, 1), 200) };
    assert!(!r.is_null() && !a.in_reserve(r));
    assert_eq!(unsafe { std::slice::from_raw_parts(r, 8) }, b"abcdefgh");
    assert_eq!(unsafe { std::slice::from_raw_parts(q, 100) }, [0; 100]);
    unsafe { a.dealloc(r, layout(200, 1)) };
    // A realloc the reserve cannot serve leaves the block as it was.
    a.system.fail.store(true, Ordering::SeqCst);
    let s = unsafe { a.alloc(layout(4, 1)) };
    unsafe { s.copy_from_nonoverlapping(b"wxyz".as_ptr(), 4) };
    assert!(unsafe { a.realloc(s, layout(4, 1), 4096) }.is_null());
    assert_eq!(unsafe { std::slice::from_raw_parts(s, 4) }, b"wxyz");
}

#[test]
fn threads_never_share_a_reserve_byte() {
    let a = flaky::<{ 64 * 1024 }>(true);
    let got: Vec<Vec<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    (0..200)
                        .map(|_| unsafe { a.alloc(layout(24, 8)) } as usize)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<usize> = got.into_iter().flatten().collect();
    all.sort_unstable();
    assert!(all.iter().all(|&p| p != 0));
    assert!(all.windows(2).all(|w| w[1] - w[0] >= 24));
    assert_eq!(a.failures(), 800);
    // Given back from several threads at once, the arena is whole again.
    std::thread::scope(|s| {
        for chunk in all.chunks(200) {
            let a = &a;
            s.spawn(move || {
                for &p in chunk {
                    unsafe { a.dealloc(p as *mut u8, layout(24, 8)) };
                }
            });
        }
    });
    assert_eq!(a.reserve_used(), 0);
}
