//! Connections are served by a pool of reused worker threads, never more
//! than `max_connections`: the daemon runs in this process, so its threads
//! are this process's (`/proc/self/task`).

use twofold_tests::daemon::TestDaemon;

/// Threads of this process named like connection workers (the kernel keeps
/// 15 bytes of a thread name: `twofoldd-worker`).
fn workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("twofoldd-worker"))
        .count()
}

#[test]
fn connections_reuse_a_pool_of_at_most_max_connections_workers() {
    let d = TestDaemon::start_with(|c| c.daemon.max_connections = 3);
    for _ in 0..30 {
        d.assert_serves_new_client();
    }
    let after_sequential = workers();
    assert!(
        (1..=3).contains(&after_sequential),
        "30 connections one after another: {after_sequential} workers"
    );
    // Three held at once need three workers; more never start.
    let held: Vec<_> = (0..3).map(|_| d.client()).collect();
    assert_eq!(workers(), 3);
    drop(held);
    for _ in 0..10 {
        d.assert_serves_new_client();
    }
    assert_eq!(workers(), 3, "idle workers are reused");
}
