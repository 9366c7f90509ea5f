//! Worker threads and their scheduling priority.
//!
//! A worker runs on a `blocking` thread. In a low-priority class it first lowers that thread's
//! nice value to [`WORKER_NICE`], so CPU jobs yield to the loop and to response writes. It gives
//! the thread back to `blocking` only if it can restore the priority: an unprivileged process
//! usually cannot, and a lowered thread handed back would run unrelated `unblock` work (and
//! threads it spawns) at low priority for good. Such a thread is kept instead, parked in a
//! stash that the next low-priority class to need a worker reuses.

use std::sync::{mpsc, Arc, Mutex};

use super::class::{lock, Class, WorkerExit};

/// The nice value pool workers run at when low priority is on (the loop stays at its own).
const WORKER_NICE: i32 = 10;

/// Threads that lowered their priority, could not restore it, and wait to serve another class.
static STASH: Mutex<Vec<mpsc::Sender<Arc<Class>>>> = Mutex::new(Vec::new());

/// Starts a worker for `class`, reusing a stashed low-priority thread when one is free.
pub(super) fn start_worker(class: Arc<Class>) {
    let mut class = class;
    if class.low_priority {
        while let Some(tx) = lock(&STASH).pop() {
            match tx.send(class) {
                Ok(()) => return,
                // That thread has ended: try the next one.
                Err(mpsc::SendError(back)) => class = back,
            }
        }
    }
    blocking::unblock(move || worker_thread(class)).detach();
}

/// Runs workers on this `blocking` thread for as long as it is ours.
fn worker_thread(class: Arc<Class>) {
    let original = if class.low_priority {
        lower_priority()
    } else {
        None
    };
    let mut class = class;
    loop {
        let exit = class.work(original.is_some());
        let Some(original) = original else {
            return;
        };
        if matches!(exit, WorkerExit::Idle) || restore_priority(original) {
            return;
        }
        // The priority cannot be raised back: keep the thread and wait for another class.
        let (tx, rx) = mpsc::channel();
        lock(&STASH).push(tx);
        match rx.recv() {
            Ok(next) => class = next,
            Err(_) => return,
        }
    }
}

/// Lowers this thread's scheduling priority; returns the previous nice value on success.
fn lower_priority() -> Option<i32> {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        let original = rustix::process::getpriority_process(Some(tid)).ok()?;
        if original >= WORKER_NICE {
            return None;
        }
        rustix::process::setpriority_process(Some(tid), WORKER_NICE).ok()?;
        Some(original)
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Only Linux lets one thread's priority be changed on its own.
        None
    }
}

/// Restores this thread's nice value; returns `false` if the OS refuses (unprivileged).
fn restore_priority(original: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        rustix::process::setpriority_process(Some(tid), original).is_ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = original;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_lowered_thread_runs_at_worker_nice_and_reports_whether_it_restored() {
        std::thread::spawn(|| {
            let tid = rustix::thread::gettid();
            let before = rustix::process::getpriority_process(Some(tid)).unwrap();
            let Some(original) = lower_priority() else {
                // Already at or below the worker priority: nothing to lower.
                assert!(before >= WORKER_NICE);
                return;
            };
            assert_eq!(original, before);
            let now = rustix::process::getpriority_process(Some(tid)).unwrap();
            assert_eq!(now, WORKER_NICE);
            let restored = restore_priority(original);
            let after = rustix::process::getpriority_process(Some(tid)).unwrap();
            assert_eq!(after == original, restored);
        })
        .join()
        .unwrap();
    }
}
