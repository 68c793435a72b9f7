//! Where a cancellation meant for one scope lands when the task is
//! suspended in several branches at once (`join!`, `select!`).
//!
//! A task suspended in one chain of `cancellable` scopes has one innermost
//! scope, and every cancellation is delivered there (`core`). A task that
//! polls several futures at once can be suspended in several chains: each
//! chain's innermost scope is a *leaf*, and the task's innermost scope is
//! only one of them (the deepest; the last polled among equals). Most
//! cancellations are the task's (`cancel()`, Ctrl-C) and go there. Some are
//! meant for one scope: a `scoped_timeout`'s deadline for the code it
//! bounds, a task group's failure for its body, a caught cancellation
//! handed on for the scopes around the code that hands it on. Delivered to
//! a leaf of another branch, such a cancellation would interrupt code it
//! was not meant for and miss the code it was.
//!
//! So while a task is polled, this module records the chains: the scope
//! ids enclosing the code being polled (by depth), and, for each scope that
//! returns `Pending` with none recorded inside it, its chain (a leaf). A
//! poll that leaves two leaves or more is kept, per task, until the task's
//! next poll; a cancellation aimed at scope `S` then goes to the deepest
//! leaf whose chain holds `S` (the last polled among equals), or, when no
//! leaf does, where any cancellation goes. A task in one chain, the common
//! case, keeps nothing: its innermost scope is under every scope pending.
//!
//! An await of another task's handle is such an end of a branch too: a
//! cancellation of a task that awaits a handle is handed to the task
//! awaited (asyncio cancels the future a task waits on). An aimed one is
//! handed to a task awaited inside the aimed scope, if any, and to no
//! other.
//!
//! Per thread, in `core`'s record of a poll (polls do not nest). This
//! module uses `raw` (task references) and nothing else of the runtime.

use std::cell::{Cell, RefCell};

use super::raw::{RawTask, TaskRef};

/// Chains deeper than this are not followed: an aimed cancellation in a
/// task suspended that deep goes where any cancellation goes.
const PATH_MAX: usize = 16;

/// What one poll records, but its lists: plain cells, kept in `core`'s
/// per-thread record of a poll (no thread-local of its own to look up on
/// every poll), so that a poll that records nothing costs a read of
/// `used` at its start and end (the common case: a task without scopes,
/// or in one chain without awaits of handles, records little and keeps
/// nothing).
pub(crate) struct Record {
    /// Something was recorded in this poll.
    used: Cell<bool>,
    /// How many tasks `BRANCHED` holds.
    branched: Cell<u32>,
    /// The ids of the scopes enclosing the code being polled, by depth.
    path: [Cell<u32>; PATH_MAX],
    /// How many scopes returned `Pending` so far in this poll: a scope
    /// that returns `Pending` with the count unchanged since it was
    /// entered had none inside it, and is a leaf.
    pending: Cell<u32>,
    /// How many leaves this poll recorded. The first one's chain is kept
    /// here (`first`, `first_len`); the lists get them all from the second
    /// on, so that a task in one chain never touches them.
    count: Cell<u32>,
    first: [Cell<u32>; PATH_MAX],
    first_len: Cell<u32>,
    /// How many handles this poll awaited; the first one kept here, the
    /// lists get them all from the second on.
    awaited: Cell<u32>,
    first_await: Cell<Option<(u32, RawTask)>>,
    /// The lists were written to in this poll.
    spilled: Cell<bool>,
    /// A scope was deeper than `PATH_MAX`: the leaves are not known.
    overflow: Cell<bool>,
    /// The scope a cancellation requested during this poll (of the task
    /// polled) is meant for; 0: none.
    target: Cell<u32>,
}

/// What one poll records in lists.
struct Lists {
    /// The leaves of this poll, each its chain (outermost first) followed
    /// by the chain's length.
    leaves: RefCell<Vec<u32>>,
    /// The handles awaited in this poll, each with the innermost scope
    /// around its await (0: outside any). Valid during the poll: each
    /// handle, pending, holds its task.
    awaits: RefCell<Vec<(u32, RawTask)>>,
}

/// A task whose last poll left it in several branches.
struct Branched {
    task: u64,
    leaves: Vec<u32>,
    awaits: Vec<(u32, TaskRef)>,
}

impl Record {
    pub(crate) const fn new() -> Record {
        Record {
            used: Cell::new(false),
            branched: Cell::new(0),
            path: [const { Cell::new(0) }; PATH_MAX],
            pending: Cell::new(0),
            count: Cell::new(0),
            first: [const { Cell::new(0) }; PATH_MAX],
            first_len: Cell::new(0),
            awaited: Cell::new(0),
            first_await: Cell::new(None),
            spilled: Cell::new(false),
            overflow: Cell::new(false),
            target: Cell::new(0),
        }
    }
}

thread_local! {
    static LISTS: Lists = const {
        Lists {
            leaves: RefCell::new(Vec::new()),
            awaits: RefCell::new(Vec::new()),
        }
    };
    static BRANCHED: RefCell<Vec<Branched>> = const { RefCell::new(Vec::new()) };
}

/// Where an aimed cancellation goes.
pub(crate) struct Aim<T = TaskRef> {
    /// The leaf it is delivered to.
    pub(crate) leaf: u32,
    /// The task it is handed to first: one whose handle is awaited inside
    /// the aimed scope (the last one polled), if any.
    pub(crate) forward_to: Option<T>,
}

/// A poll begins.
#[inline]
pub(crate) fn begin_poll(r: &Record) {
    if r.used.replace(false) {
        reset(r);
    }
}

/// Out of line: the common poll records nothing and keeps this out of its
/// way.
#[cold]
#[inline(never)]
fn reset(r: &Record) {
    r.pending.set(0);
    r.count.set(0);
    r.awaited.set(0);
    r.first_await.set(None);
    r.overflow.set(false);
    r.target.set(0);
    if r.spilled.replace(false) {
        LISTS.with(|l| {
            l.leaves.borrow_mut().clear();
            l.awaits.borrow_mut().clear();
        });
    }
}

/// Scope `scope` is entered at `depth`; what [`leave_pending`] needs back.
#[inline]
pub(crate) fn enter(r: &Record, depth: u16, scope: u32) -> u32 {
    r.used.set(true);
    match r.path.get(usize::from(depth)) {
        Some(cell) => cell.set(scope),
        None => r.overflow.set(true),
    }
    r.pending.get()
}

/// Scope `scope`, entered at `depth`, returned `Pending`; `entered` is what
/// [`enter`] gave.
pub(crate) fn leave_pending(r: &Record, depth: u16, scope: u32, entered: u32) {
    let depth = usize::from(depth);
    if r.pending.get() == entered && depth < PATH_MAX {
        let count = r.count.get();
        r.count.set(count + 1);
        if count == 0 {
            // `path[depth]` is this scope.
            for (kept, at) in r.first.iter().zip(&r.path[..=depth]) {
                kept.set(at.get());
            }
            r.first_len.set(depth as u32 + 1);
        } else {
            r.spilled.set(true);
            LISTS.with(|l| {
                let mut leaves = l.leaves.borrow_mut();
                if count == 1 {
                    push_first(r, &mut leaves);
                }
                leaves.extend(r.path[..depth].iter().map(Cell::get));
                leaves.push(scope);
                leaves.push(depth as u32 + 1);
            });
        }
    }
    r.pending.set(r.pending.get() + 1);
}

/// The first leaf's chain, into the list.
fn push_first(r: &Record, leaves: &mut Vec<u32>) {
    let len = r.first_len.get();
    leaves.extend(r.first[..len as usize].iter().map(Cell::get));
    leaves.push(len);
}

/// The innermost scope around the code being polled at `depth` (0: none).
pub(crate) fn enclosing(r: &Record, depth: u16) -> u32 {
    let Some(inner) = usize::from(depth).checked_sub(1) else {
        return 0;
    };
    r.path.get(inner).map_or(0, Cell::get)
}

/// The task polled awaits `awaited`'s handle, at `depth`.
pub(crate) fn note_await(r: &Record, depth: u16, awaited: RawTask) {
    let scope = enclosing(r, depth);
    r.used.set(true);
    let n = r.awaited.get();
    r.awaited.set(n + 1);
    if n == 0 {
        r.first_await.set(Some((scope, awaited)));
    } else {
        r.spilled.set(true);
        LISTS.with(|l| {
            let mut awaits = l.awaits.borrow_mut();
            if n == 1 {
                awaits.extend(r.first_await.get());
            }
            awaits.push((scope, awaited));
        });
    }
}

/// The handle of `awaited`, awaited earlier in this poll, was dropped in
/// it (a `select!` whose other branch won): that await is no end of a
/// branch any more. The last await of this poll left, if any.
pub(crate) fn forget_await(r: &Record, awaited: RawTask) -> Option<RawTask> {
    match r.awaited.get() {
        0 => None,
        1 => {
            let first = r.first_await.get().map(|(_, t)| t);
            if first == Some(awaited) {
                r.first_await.set(None);
                r.awaited.set(0);
                return None;
            }
            first
        }
        _ => LISTS.with(|l| {
            // Several: all of them are in the list.
            let mut awaits = l.awaits.borrow_mut();
            awaits.retain(|(_, t)| *t != awaited);
            r.awaited.set(awaits.len() as u32);
            let last = awaits.last().map(|(_, t)| *t);
            if awaits.len() <= 1 {
                // One left (or none): kept in the cells, as `note_await`
                // keeps the first.
                r.first_await.set(awaits.pop());
            }
            last
        }),
    }
}

/// A cancellation of the task polled, requested during its poll, is meant
/// for `target` (a scope enclosing, or being, the code that asks).
pub(crate) fn aim_now(r: &Record, target: u32) {
    if target != 0 {
        r.used.set(true);
        r.target.set(target);
    }
}

/// The poll of task `task` ended `Pending`: its branches are kept if there
/// are several; where a cancellation aimed during the poll goes.
pub(crate) fn end_poll(r: &Record, task: u64) -> Option<Aim> {
    if one_branch(r) {
        if r.branched.get() > 0 {
            forget(r, task);
        }
        return None;
    }
    LISTS.with(|l| end_branched(task, r, l))
}

/// Whether the poll left one end of a branch at most (one leaf, one await
/// of a handle inside it or none; or no leaf and one await): counted from
/// the cells, without the lists.
#[inline]
fn one_branch(r: &Record) -> bool {
    let (count, awaited) = (r.count.get(), r.awaited.get());
    if r.overflow.get() || count > 1 || awaited > 1 {
        return false;
    }
    let inside_leaf = |scope: u32| count == 1 && scope != 0 && scope == r.first[r.first_len.get() as usize - 1].get();
    let separate = r.first_await.get().is_some_and(|(scope, _)| !inside_leaf(scope));
    count + u32::from(separate) < 2
}

/// Whether [`end_poll`] has anything to do: the poll that just ended left
/// several ends of branches, or some task's branches are kept.
#[inline]
pub(crate) fn recorded(r: &Record) -> bool {
    (r.used.get() && !one_branch(r)) || r.branched.get() > 0
}

fn end_branched(task: u64, r: &Record, l: &Lists) -> Option<Aim> {
    let (count, awaited) = (r.count.get(), r.awaited.get());
    {
        // Several ends: all of them in the lists.
        r.spilled.set(true);
        if count == 1 {
            push_first(r, &mut l.leaves.borrow_mut());
        }
        if awaited == 1 {
            l.awaits.borrow_mut().extend(r.first_await.get());
        }
        let leaves = l.leaves.borrow();
        let awaits = l.awaits.borrow();
        let branched = !r.overflow.get() && ends(&leaves, count, &awaits) >= 2;
        let aim = if branched && r.target.get() != 0 {
            aim_in(&leaves, r.target.get(), awaits.iter().map(|(s, t)| (*s, t.task_ref())))
        } else {
            None
        };
        // Task references replaced or removed are dropped after the
        // borrow (dropping one may run a task's output's destructor).
        let _replaced = BRANCHED.with(|b| {
            let mut b = b.borrow_mut();
            let at = b.iter().position(|e| e.task == task);
            let kept = || awaits.iter().map(|(s, t)| (*s, t.task_ref()));
            match (branched, at) {
                (true, Some(i)) => {
                    let entry = &mut b[i];
                    entry.leaves.clear();
                    entry.leaves.extend_from_slice(&leaves);
                    Some(std::mem::replace(&mut entry.awaits, kept().collect()))
                }
                (true, None) => {
                    b.push(Branched {
                        task,
                        leaves: leaves.clone(),
                        awaits: kept().collect(),
                    });
                    r.branched.set(r.branched.get() + 1);
                    None
                }
                (false, Some(i)) => {
                    r.branched.set(r.branched.get() - 1);
                    Some(b.swap_remove(i).awaits)
                }
                (false, None) => None,
            }
        });
        aim
    }
}

/// The chains of `leaves`, the last recorded first.
fn chains(leaves: &[u32]) -> impl Iterator<Item = &[u32]> {
    let mut end = leaves.len();
    std::iter::from_fn(move || {
        let len = *leaves.get(end.checked_sub(1)?)? as usize;
        let chain = &leaves[end - 1 - len..end - 1];
        end -= len + 1;
        Some(chain)
    })
}

/// How many ends of branches a poll left: its leaves, and its awaits of
/// handles outside every leaf.
fn ends<T>(leaves: &[u32], count: u32, awaits: &[(u32, T)]) -> u32 {
    let is_leaf = |scope: u32| chains(leaves).any(|c| c.last() == Some(&scope));
    count
        + awaits
            .iter()
            .filter(|(scope, _)| *scope == 0 || !is_leaf(*scope))
            .count() as u32
}

/// Where a cancellation of task `task` meant for `target`, requested
/// between its polls, goes; `None`: where any goes (the task is in one
/// branch, or no leaf is under `target`).
pub(crate) fn aim(r: &Record, task: u64, target: u32) -> Option<Aim> {
    if target == 0 || r.branched.get() == 0 {
        return None;
    }
    BRANCHED.with(|b| {
        let b = b.borrow();
        let entry = b.iter().find(|e| e.task == task)?;
        aim_in(&entry.leaves, target, entry.awaits.iter().map(|(s, t)| (*s, t.clone())))
    })
}

/// Task `task` is done.
#[inline]
pub(crate) fn forget(r: &Record, task: u64) {
    if r.branched.get() == 0 {
        return;
    }
    BRANCHED.with(|b| {
        let mut b = b.borrow_mut();
        if let Some(i) = b.iter().position(|e| e.task == task) {
            // Dropped outside the borrow (task references).
            let gone = b.swap_remove(i);
            r.branched.set(r.branched.get() - 1);
            drop(b);
            drop(gone);
        }
    });
}

/// The deepest leaf under `target` (the last among equals), and the last
/// task awaited inside `target`.
fn aim_in<T>(leaves: &[u32], target: u32, awaits: impl DoubleEndedIterator<Item = (u32, T)>) -> Option<Aim<T>> {
    // The chains come last first: a later leaf wins a tie.
    let leaf = chains(leaves)
        .filter(|c| c.contains(&target))
        .fold(None::<&[u32]>, |best, c| match best {
            Some(b) if b.len() >= c.len() => Some(b),
            _ => Some(c),
        })?;
    let leaf = *leaf.last().expect("invariant: a chain holds its leaf");
    let position = |chain: &[u32], scope: u32| chain.iter().position(|&s| s == scope);
    let under = |scope: u32| {
        scope != 0
            && chains(leaves).any(|c| matches!((position(c, target), position(c, scope)), (Some(t), Some(s)) if s >= t))
    };
    let forward_to = awaits.rev().find(|(scope, _)| under(*scope)).map(|(_, task)| task);
    Some(Aim { leaf, forward_to })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Leaves as chains, outermost first.
    fn leaves(chains: &[&[u32]]) -> Vec<u32> {
        let mut v = Vec::new();
        for c in chains {
            v.extend_from_slice(c);
            v.push(c.len() as u32);
        }
        v
    }

    fn leaf(l: &[u32], target: u32) -> Option<u32> {
        aim_in(l, target, std::iter::empty::<(u32, ())>()).map(|a| a.leaf)
    }

    #[test]
    fn the_deepest_leaf_under_the_target_wins_and_the_later_among_equals() {
        // join!(a{ b{ c } }, d{ e }): leaves c (under a, b) and e (under d).
        let l = leaves(&[&[1, 2, 3], &[4, 5]]);
        assert_eq!(leaf(&l, 1), Some(3));
        assert_eq!(leaf(&l, 2), Some(3));
        assert_eq!(leaf(&l, 4), Some(5));
        assert_eq!(leaf(&l, 5), Some(5));
        assert_eq!(leaf(&l, 9), None, "no leaf under it");
        // Two leaves under one scope, equally deep: the later one.
        let l = leaves(&[&[1, 2], &[1, 3]]);
        assert_eq!(leaf(&l, 1), Some(3));
    }

    #[test]
    fn an_aimed_cancellation_is_handed_to_a_task_awaited_inside_its_scope_only() {
        let l = leaves(&[&[1, 2], &[4, 5]]);
        let to = |target, awaits: &[(u32, char)]| aim_in(&l, target, awaits.iter().copied()).unwrap().forward_to;
        assert_eq!(to(1, &[(2, 'a')]), Some('a'), "awaited inside 1");
        assert_eq!(to(1, &[(1, 'a')]), Some('a'), "awaited in 1 itself");
        assert_eq!(to(1, &[(5, 'a')]), None, "awaited in the other branch");
        assert_eq!(to(1, &[(0, 'a')]), None, "awaited outside any scope");
        assert_eq!(to(1, &[(2, 'a'), (5, 'b')]), Some('a'), "the one inside, polled first");
        assert_eq!(to(1, &[(2, 'a'), (1, 'b')]), Some('b'), "the last inside");
    }

    #[test]
    fn awaits_inside_a_leaf_are_no_branch_of_their_own() {
        let l = leaves(&[&[1, 2]]);
        let t = ();
        assert_eq!(ends(&l, 1, &[(2, t)]), 1, "awaited inside the leaf");
        assert_eq!(ends(&l, 1, &[(1, t)]), 2, "awaited beside the leaf, in its parent");
        assert_eq!(ends(&l, 1, &[(0, t)]), 2, "awaited outside any scope");
        assert_eq!(ends(&[], 0, &[(0, t), (0, t)]), 2, "two handles awaited");
    }
}
