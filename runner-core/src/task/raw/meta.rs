//! What a task's header points at besides its loop: its vtable (what
//! differs with the future's type) and where it was spawned, in one
//! record per pair of the two, made the first time the pair is spawned and
//! kept for the process (the pairs are as many as the program's spawn
//! sites and future types: a fixed number). One pointer where two would
//! be: 8 bytes off every task. Uses `raw`'s `Vtable` (its parent module).
//!
//! Finding the record is a look in a small per-thread cache of recent
//! pairs (two pointer comparisons); on a miss, in the thread's own table
//! of the pairs it has spawned (no lock); only a pair the thread has never
//! spawned goes to the process-wide table, behind a lock.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::panic::Location;
use std::sync::{Mutex, OnceLock};

use super::Vtable;

/// A task's vtable and spawn location.
pub(crate) struct Meta {
    pub(super) vtable: Vtable,
    /// The vtable's own address: which type the record is for.
    key: &'static Vtable,
    pub(crate) spawned_at: &'static Location<'static>,
}

/// Recent records, by a hash of the pair: a spawn site that spawns again
/// finds its record here.
const RECENT: usize = 16;

/// Records by the addresses of the pair.
type Records = HashMap<(usize, usize), &'static Meta>;

thread_local! {
    static CACHE: [Cell<Option<&'static Meta>>; RECENT] = const { [const { Cell::new(None) }; RECENT] };
    /// Every record this thread has used.
    static SEEN: RefCell<Records> = RefCell::new(Records::new());
}

/// Every record made.
static TABLE: OnceLock<Mutex<Records>> = OnceLock::new();

impl Meta {
    /// The record of tasks of the type of `vtable` spawned at `at`.
    #[inline]
    pub(super) fn of(vtable: &'static Vtable, at: &'static Location<'static>) -> &'static Meta {
        let key = (std::ptr::from_ref(vtable).addr(), std::ptr::from_ref(at).addr());
        let slot = ((key.0 >> 4) ^ (key.1 >> 3)) % RECENT;
        CACHE.with(|cache| match cache[slot].get() {
            Some(meta) if std::ptr::eq(meta.key, vtable) && std::ptr::eq(meta.spawned_at, at) => meta,
            _ => {
                let meta = Meta::lookup(key, vtable, at);
                cache[slot].set(Some(meta));
                meta
            }
        })
    }

    #[cold]
    fn lookup(key: (usize, usize), vtable: &'static Vtable, at: &'static Location<'static>) -> &'static Meta {
        // The thread's table is gone only while the thread exits.
        let seen = SEEN.try_with(|seen| seen.borrow().get(&key).copied()).ok().flatten();
        seen.unwrap_or_else(|| {
            let meta = Meta::lookup_shared(key, vtable, at);
            let _ = SEEN.try_with(|seen| seen.borrow_mut().insert(key, meta));
            meta
        })
    }

    #[cold]
    fn lookup_shared(key: (usize, usize), vtable: &'static Vtable, at: &'static Location<'static>) -> &'static Meta {
        let table = TABLE.get_or_init(Mutex::default);
        // A panic while the lock was held cannot leave the map half
        // changed (an insert of a ready value): a poisoned lock is used.
        let mut table = table.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        table.entry(key).or_insert_with(|| {
            Box::leak(Box::new(Meta {
                vtable: *vtable,
                key: vtable,
                spawned_at: at,
            }))
        })
    }
}
