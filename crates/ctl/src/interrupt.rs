//! SIGINT / SIGTERM for `ferry ctl`: the handler only sets a flag; [`crate::Driver::run`]
//! polls it between steps and asks the running sequence to finish or undo itself
//! ([`ferry_migrate::Sequence::interrupt`]) instead of dying half-way through a migration.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the SIGINT/SIGTERM handler (a second signal still only sets the flag: the
/// rollback or completion is bounded by the sequence's own deadlines).
pub fn install() {
    extern "C" fn on_signal(_: libc::c_int) {
        REQUESTED.store(true, Ordering::SeqCst);
    }
    // SAFETY: the handler only does an atomic store, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Asks for an interrupt as a signal would (EOF on the console, tests).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether an interrupt was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
