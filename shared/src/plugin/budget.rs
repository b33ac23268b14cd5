//! The VM's budget for body bytes held by whole-body reads.
//!
//! Each request may hold a body up to its own limit, but a few hundred concurrent large bodies
//! would still exhaust the 4 GiB of a wasm32 VM and abort it for every request on the worker.
//! Every whole-body read reserves the bytes it holds here; the stream whose next chunk would take
//! the VM over the budget is answered (413 for a request, 502 for a response, in the caller's
//! protocol) and lets go of its bytes; the others go on. A VM runs one thread, so the count is a
//! thread-local.

use std::cell::Cell;

/// Bytes all whole-body reads of one VM may hold together (1 GiB: a quarter of wasm32's
/// address space, leaving room for the copies a plugin makes while rewriting).
pub const DEFAULT_BUDGET: usize = 1 << 30;

thread_local! {
    static HELD: Cell<usize> = const { Cell::new(0) };
    static LIMIT: Cell<usize> = const { Cell::new(DEFAULT_BUDGET) };
}

/// Change the budget (tests; a host with less memory).
pub fn set_budget(bytes: usize) {
    LIMIT.with(|l| l.set(bytes));
}

/// Bytes held now by every whole-body read of this VM.
pub fn held() -> usize {
    HELD.with(Cell::get)
}

/// Grow a reservation from `from` to `to` bytes; false (nothing changed) when that would take
/// the VM over its budget.
pub(crate) fn grow(from: usize, to: usize) -> bool {
    let more = to.saturating_sub(from);
    let total = held().saturating_add(more);
    if total > LIMIT.with(Cell::get) {
        return false;
    }
    HELD.with(|h| h.set(total));
    true
}

/// Give a reservation of `bytes` back.
pub(crate) fn release(bytes: usize) {
    HELD.with(|h| h.set(h.get().saturating_sub(bytes)));
}

/// Bytes a plugin holds on its own (a partial stream event, a buffered answer) counted in the
/// VM's budget; given back when it is resized down or dropped.
#[derive(Debug, Default)]
pub struct Reservation(usize);

impl Reservation {
    /// Hold `bytes` now instead of the current amount; false (nothing changed) when that would
    /// take the VM over its budget.
    pub fn resize(&mut self, bytes: usize) -> bool {
        if bytes <= self.0 {
            release(self.0.saturating_sub(bytes));
        } else if !grow(self.0, bytes) {
            return false;
        }
        self.0 = bytes;
        true
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        release(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_follows_its_size_and_is_given_back_when_dropped() {
        set_budget(100);
        let before = held();
        let mut r = Reservation::default();
        assert!(r.resize(70));
        assert!(!r.resize(120), "over the budget");
        assert_eq!(r.bytes(), 70);
        assert!(r.resize(10));
        assert_eq!(held(), before + 10);
        drop(r);
        assert_eq!(held(), before);
    }

    #[test]
    fn reservations_grow_until_the_budget_and_are_given_back() {
        set_budget(100);
        assert!(grow(0, 60));
        assert!(grow(0, 30));
        assert_eq!(held(), 90);
        assert!(!grow(30, 50), "would take the VM to 110");
        assert_eq!(held(), 90, "a refused reservation changes nothing");
        release(60);
        assert!(grow(30, 50));
        assert_eq!(held(), 50);
        release(50);
        assert_eq!(held(), 0);
    }
}
