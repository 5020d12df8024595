//! Limits how many VMs run at once. `cargo test` runs tests in parallel
//! threads; two TCG guests on a 2-core machine would each run at half speed
//! and make every timeout meaningless. A VM waits for a slot *before* QEMU
//! starts, so its timeouts only count its own run time.
//!
//! `BOOTKIT_QEMU_JOBS` sets the limit (default: half the cores, at least 1).
//! A thread that already holds a slot gets another at once, so a test that
//! boots two VMs together cannot deadlock against itself.

use std::cell::Cell;
use std::sync::{Condvar, Mutex};

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

thread_local! {
    static HELD_HERE: Cell<usize> = const { Cell::new(0) };
}

fn limit() -> usize {
    std::env::var("BOOTKIT_QEMU_JOBS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| (n.get() / 2).max(1))
                .unwrap_or(1)
        })
}

/// A held VM slot; released on drop (from whichever thread drops it).
pub(crate) struct Slot {
    owner: std::thread::ThreadId,
}

impl Slot {
    pub(crate) fn acquire() -> Slot {
        let limit = limit();
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if HELD_HERE.with(Cell::get) == 0 {
            // Unbounded on purpose: a waiting test is waiting for other tests'
            // VMs, each of which is bounded by its own timeouts and Drop.
            while *running >= limit {
                running = FREED.wait(running).unwrap_or_else(|e| e.into_inner());
            }
        }
        *running += 1;
        HELD_HERE.with(|h| h.set(h.get() + 1));
        Slot {
            owner: std::thread::current().id(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if std::thread::current().id() == self.owner {
            HELD_HERE.with(|h| h.set(h.get().saturating_sub(1)));
        }
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        drop(running);
        FREED.notify_all();
    }
}
