//! The one-word forms of a task pointer the loop keeps: [`TaskOrRc`] (the
//! ready queue's item: a task or a loop callback), [`Slot`] (the
//! registry's: a task or a free slot) and [`JoinSlot`] (whoever awaits a
//! task's handle: a task or a boxed waker). Each is a pointer whose lowest
//! bit tells what it is; a task pointer never has it set (aligned to 8).
//! Uses `raw`'s task pointers and waker vtable (this is its child module).

use std::cell::Cell;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::Waker;

use super::{raw, Prefix, RawTask, VTABLE};

/// A task or an `Rc<T>` in one word (the ready queue's item: a task or a
/// loop callback): the pointer, its lowest bit set for an `Rc`. Both are
/// aligned to at least 2, so that bit is free. The `Rc`'s reference is
/// owned; the task is not (the registry's reference covers a queued task).
pub(crate) struct TaskOrRc<T> {
    word: NonNull<()>,
    _owns: PhantomData<Rc<T>>,
}

/// What a [`TaskOrRc`] held.
pub(crate) enum Unpacked<T> {
    Task(RawTask),
    Rc(Rc<T>),
}

/// The low bit of a word that is a task pointer or something else
/// ([`TaskOrRc`], [`Slot`]): never set in a task pointer (aligned to 8).
const TAG_BIT: usize = 1;

/// The task a word points at, when its tag bit is clear.
fn untagged_task(word: NonNull<()>) -> Option<RawTask> {
    (word.as_ptr().addr() & TAG_BIT == 0).then_some(RawTask { ptr: word.cast() })
}

#[allow(unsafe_code)]
impl<T> TaskOrRc<T> {
    const ALIGNED: () = assert!(
        std::mem::align_of::<T>() >= 2 && std::mem::align_of::<Prefix>() >= 2,
        "the tag bit must be free"
    );

    pub(crate) fn task(task: RawTask) -> TaskOrRc<T> {
        TaskOrRc {
            word: task.ptr.cast(),
            _owns: PhantomData,
        }
    }

    pub(crate) fn rc(rc: Rc<T>) -> TaskOrRc<T> {
        let () = Self::ALIGNED;
        let ptr = Rc::into_raw(rc).cast_mut().cast::<()>().map_addr(|a| a | TAG_BIT);
        TaskOrRc {
            // SAFETY: the tag bit is set: not null.
            word: unsafe { NonNull::new_unchecked(ptr) },
            _owns: PhantomData,
        }
    }

    pub(crate) fn unpack(self) -> Unpacked<T> {
        let word = ManuallyDrop::new(self).word;
        if let Some(task) = untagged_task(word) {
            Unpacked::Task(task)
        } else {
            let ptr = word.as_ptr().map_addr(|a| a & !TAG_BIT).cast::<T>();
            // SAFETY: `rc` made this word from `Rc::into_raw` (the tag bit
            // set), and `ManuallyDrop` above keeps the word from being
            // used again: the reference is taken back once.
            Unpacked::Rc(unsafe { Rc::from_raw(ptr) })
        }
    }
}

impl<T> Drop for TaskOrRc<T> {
    fn drop(&mut self) {
        let this: TaskOrRc<T> = TaskOrRc {
            word: self.word,
            _owns: PhantomData,
        };
        drop(this.unpack());
    }
}

/// A slot of the loop's registry in one word: a task (the registry's
/// reference to it), or a free slot with the index of the next free one,
/// shifted left with the lowest bit set (no task pointer has it).
#[derive(Clone, Copy)]
pub(crate) struct Slot(NonNull<()>);

impl Slot {
    /// The end of the free chain.
    const NONE: u32 = u32::MAX;

    pub(crate) fn used(task: RawTask) -> Slot {
        Slot(task.ptr.cast())
    }

    /// A free slot; `next`: the next free slot, if any.
    pub(crate) fn free(next: Option<u32>) -> Slot {
        let next = next.unwrap_or(Self::NONE) as usize;
        let word = std::ptr::without_provenance_mut((next << 1) | TAG_BIT);
        Slot(NonNull::new(word).expect("the tag bit is set"))
    }

    pub(crate) fn task(self) -> Option<RawTask> {
        untagged_task(self.0)
    }

    /// For a free slot, the next free one.
    pub(crate) fn next_free(self) -> Option<u32> {
        let next = u32::try_from(self.0.as_ptr().addr() >> 1).ok()?;
        (self.0.as_ptr().addr() & TAG_BIT != 0 && next != Self::NONE).then_some(next)
    }
}

/// Who awaits a task's handle, in one word (an `Option<Waker>` takes two):
/// nothing (null); a runner task that awaits the handle itself, as the
/// task pointer (with a reference: what a clone of its waker would hold);
/// or any other waker, boxed, its pointer with the tag bit set. Awaiting
/// a handle from a task is what spawn-then-await does; the box is for
/// combinators with wakers of their own and for foreign executors.
/// Touched only on the loop's thread; what it holds may be dropped on any
/// (a reference count, a `Waker`: both `Send`).
pub(crate) struct JoinSlot {
    word: Cell<*mut ()>,
}

// A boxed waker's pointer leaves the tag bit free too.
const _: () = assert!(std::mem::align_of::<Waker>() >= 2);

#[allow(unsafe_code)]
impl JoinSlot {
    pub(super) fn empty() -> JoinSlot {
        JoinSlot {
            word: Cell::new(std::ptr::null_mut()),
        }
    }

    /// Wakes `waker` when the task ends, instead of whoever was there.
    pub(crate) fn register(&self, waker: &Waker) {
        let old = self.word.get();
        let new = if std::ptr::eq(waker.vtable(), &VTABLE) {
            let task = raw(waker.data());
            if old == task.ptr.as_ptr().cast() {
                return;
            }
            task.retain();
            task.ptr.as_ptr().cast::<()>()
        } else {
            if old.addr() & TAG_BIT != 0 {
                let boxed = old.map_addr(|a| a & !TAG_BIT).cast::<Waker>();
                // SAFETY: a tagged word is a `Box<Waker>` this slot owns
                // (made below); only borrowed here.
                if unsafe { &*boxed }.will_wake(waker) {
                    return;
                }
            }
            Box::into_raw(Box::new(waker.clone()))
                .cast::<()>()
                .map_addr(|a| a | TAG_BIT)
        };
        self.word.set(new);
        // The old one is dropped after the slot holds the new one: a
        // foreign waker's drop may run any code.
        // SAFETY: the word the slot held, taken out of it.
        unsafe { Held::from_word(old) }.discard();
    }

    /// Wakes whoever awaits, and forgets them.
    #[inline]
    pub(crate) fn wake(&self) {
        if self.word.get().is_null() {
            return;
        }
        // SAFETY: the word the slot held, taken out of it.
        match unsafe { Held::from_word(self.word.replace(std::ptr::null_mut())) } {
            Held::Nobody => {}
            Held::Task(task) => {
                task.wake();
                // SAFETY: the reference the slot held.
                unsafe { task.release() }
            }
            Held::Waker(waker) => waker.wake(),
        }
    }

    /// Forgets whoever awaits, without waking them.
    #[inline]
    pub(crate) fn clear(&self) {
        if self.word.get().is_null() {
            return;
        }
        // SAFETY: the word the slot held, taken out of it.
        unsafe { Held::from_word(self.word.replace(std::ptr::null_mut())) }.discard();
    }
}

impl Drop for JoinSlot {
    #[inline]
    fn drop(&mut self) {
        self.clear();
    }
}

/// What a [`JoinSlot`]'s word holds, taken out of it: to wake or
/// [`discard`](Held::discard).
enum Held {
    Nobody,
    /// A task with a reference (released on drop).
    Task(RawTask),
    Waker(Box<Waker>),
}

#[allow(unsafe_code)]
impl Held {
    /// # Safety
    /// `word` was a [`JoinSlot`]'s, and that slot holds it no more.
    unsafe fn from_word(word: *mut ()) -> Held {
        match NonNull::new(word) {
            None => Held::Nobody,
            Some(word) => match untagged_task(word) {
                Some(task) => Held::Task(task),
                // SAFETY: a tagged word is a `Box<Waker>` (`register`),
                // given up by the slot: owned here.
                None => Held::Waker(unsafe { Box::from_raw(word.as_ptr().map_addr(|a| a & !TAG_BIT).cast()) }),
            },
        }
    }
}

impl Held {
    /// Lets go of it without waking it.
    #[allow(unsafe_code)]
    fn discard(self) {
        match self {
            Held::Nobody => {}
            // SAFETY: the reference the slot held, released once.
            Held::Task(task) => unsafe { task.release() },
            Held::Waker(waker) => drop(waker),
        }
    }
}
