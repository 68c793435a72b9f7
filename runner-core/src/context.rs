//! Context variables: Python's `contextvars`, for tasks.
//!
//! A [`ContextVar`] is a key declared once (usually in a `static`); its value
//! lives in a [`Context`], not in the variable. Every thread has a base
//! context; every task runs in a context of its own that starts as a *copy*
//! of its spawner's, so a task can set variables without its changes leaking
//! back to the spawner or to sibling tasks. The runner's main task runs in the
//! runner's context, so what it sets is still there on the next
//! `Runner::run` call.
//!
//! # Design
//!
//! A context's contents are an immutable sorted array of `(variable id,
//! value)` pairs behind an `Rc` (`Map`, one pointer). Copying a context
//! clones that `Rc`: O(1), no allocation, which keeps `spawn` cheap.
//! Setting a variable builds a new array (O(number of variables set in the
//! context)), as a persistent map does; programs set few variables and
//! spawn often, so this trade is the right one.
//!
//! Which context is *current* is a thread-local `Slot`: the task being
//! polled (tasks carry their map inline, so spawning allocates nothing for
//! the context; the task layer points `enter_task` at it for the length
//! of each poll, or at the [`Context`] a task runs in, which the task then
//! reads and writes in place), a [`Context`] entered with [`Context::run`],
//! or the thread's base context. This module uses no other module of the
//! crate.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

type Value = Rc<dyn Any>;

/// One variable's binding in a context.
#[derive(Clone)]
struct Entry {
    id: usize,
    value: Value,
    /// Copied into spawned tasks (false for `not_inherited` variables).
    inherited: bool,
}

struct MapData {
    entries: Box<[Entry]>,
    /// Whether some entry is not inherited: only then does a spawn filter
    /// (otherwise a spawn's copy stays an O(1) `Rc` clone).
    has_uninherited: bool,
}

/// The immutable contents of a context, shared between copies: one
/// pointer, `None` when empty.
#[derive(Clone, Default)]
pub(crate) struct Map(Option<Rc<MapData>>);

impl Map {
    fn entries(&self) -> &[Entry] {
        self.0.as_deref().map_or(&[], |d| &d.entries)
    }

    /// The copy a spawned task starts with: without the variables marked
    /// `not_inherited`.
    pub(crate) fn for_spawn(&self) -> Map {
        match &self.0 {
            Some(d) if d.has_uninherited => {
                Map::from_entries(self.entries().iter().filter(|e| e.inherited).cloned().collect())
            }
            _ => self.clone(),
        }
    }

    fn from_entries(entries: Vec<Entry>) -> Map {
        if entries.is_empty() {
            return Map::default();
        }
        let has_uninherited = entries.iter().any(|e| !e.inherited);
        Map(Some(Rc::new(MapData {
            entries: entries.into_boxed_slice(),
            has_uninherited,
        })))
    }

    fn get(&self, id: usize) -> Option<&Value> {
        let entries = self.entries();
        entries
            .binary_search_by_key(&id, |e| e.id)
            .ok()
            .map(|i| &entries[i].value)
    }

    /// A new map equal to this one but with `id` bound to `value`
    /// (or unbound when `value` is `None`).
    fn with(&self, id: usize, value: Option<Value>, inherited: bool) -> Map {
        let mut entries: Vec<Entry> = self.entries().to_vec();
        match (entries.binary_search_by_key(&id, |e| e.id), value) {
            (Ok(i), Some(value)) => entries[i].value = value,
            (Ok(i), None) => {
                entries.remove(i);
            }
            (Err(i), Some(value)) => entries.insert(i, Entry { id, value, inherited }),
            (Err(_), None) => {}
        }
        Map::from_entries(entries)
    }

    fn len(&self) -> usize {
        self.entries().len()
    }
}

/// A snapshot of the map in `cell` (O(1)).
fn snapshot(cell: &Cell<Map>) -> Map {
    let map = cell.take();
    let copy = map.clone();
    cell.set(map);
    copy
}

/// Something that owns the map of the current context: a task, a
/// callback, or a [`Context`].
pub(crate) trait ContextHolder {
    fn map_cell(&self) -> &Cell<Map>;
    /// A number no other live or past context has, to check that a
    /// [`Token`] is reset where it was made.
    fn context_id(&self) -> u64;
}

/// Ids of [`Context`]s and callback contexts; task contexts use their task
/// id, so these have the top bit set to never collide with one.
static NEXT_CONTEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn new_context_id() -> u64 {
    NEXT_CONTEXT_ID.fetch_add(1, Ordering::Relaxed) | (1 << 63)
}

/// A context's state: its map and its id. Inline in every task (whose id
/// it is), and what a [`Context`] shares (a task that runs in a `Context`
/// is polled with that `Context`'s state as its own).
pub(crate) struct TaskContext {
    id: u64,
    map: Cell<Map>,
}

impl TaskContext {
    /// A task context starting with `map`.
    pub(crate) fn new(id: u64, map: Map) -> TaskContext {
        TaskContext {
            id,
            map: Cell::new(map),
        }
    }

    /// The id of the task this context belongs to.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Replaces the map (a finished task lets go of its values this way).
    pub(crate) fn replace(&self, map: Map) -> Map {
        self.map.replace(map)
    }
}

impl ContextHolder for TaskContext {
    fn map_cell(&self) -> &Cell<Map> {
        &self.map
    }

    fn context_id(&self) -> u64 {
        self.id
    }
}

/// Where the current context lives.
pub(crate) enum Slot {
    /// The thread's base context.
    Base,
    /// The task being polled (see [`enter_task`]); the base context between
    /// polls.
    Task,
    /// A context entered with [`Context::run`], or a callback's.
    Holder(Rc<dyn ContextHolder>),
}

thread_local! {
    static CURRENT: std::cell::RefCell<Slot> = const { std::cell::RefCell::new(Slot::Base) };
    static BASE: Context = Context::new();
    /// The context of the task being polled, while it is polled: its own,
    /// or the [`Context`] it runs in.
    static POLLED: Cell<Option<NonNull<TaskContext>>> = const { Cell::new(None) };
}

/// Makes `ctx` the polled task's context until the guard is dropped.
pub(crate) fn enter_task(ctx: &TaskContext) -> TaskGuard<'_> {
    let prev = POLLED.with(|p| p.replace(Some(NonNull::from(ctx))));
    TaskGuard {
        prev,
        _ctx: PhantomData,
    }
}

/// Restores the polled-task pointer (also when a poll unwinds).
pub(crate) struct TaskGuard<'a> {
    prev: Option<NonNull<TaskContext>>,
    _ctx: PhantomData<&'a TaskContext>,
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        let _ = POLLED.try_with(|p| p.set(self.prev));
    }
}

/// Runs `f` with `holder` as the current context, restoring the previous one
/// afterwards (also when `f` unwinds).
pub(crate) fn enter<R>(holder: Rc<dyn ContextHolder>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Slot>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(prev) = self.0.take() {
                // `try_with`: nothing to restore while the thread is exiting.
                let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
            }
        }
    }
    let prev = swap_slot(Slot::Holder(holder));
    let _restore = Restore(Some(prev));
    f()
}

/// Makes `slot` current and returns the previous one. The caller restores
/// it.
pub(crate) fn swap_slot(slot: Slot) -> Slot {
    CURRENT.with(|c| c.replace(slot))
}

/// [`swap_slot`] for drop guards: does nothing while the thread is exiting.
pub(crate) fn restore_slot(slot: Slot) {
    let _ = CURRENT.try_with(|c| *c.borrow_mut() = slot);
}

/// Calls `f` with the holder of the current context.
#[allow(unsafe_code)]
fn with_holder<R>(f: impl FnOnce(&dyn ContextHolder) -> R) -> R {
    CURRENT.with(|c| match &*c.borrow() {
        Slot::Holder(holder) => f(&**holder),
        Slot::Task => match POLLED.with(Cell::get) {
            // SAFETY: `POLLED` points at the context of the task being
            // polled (its own, or the `Context` it runs in), set by
            // `enter_task` from a reference that outlives its guard, and
            // reset when the guard drops (also on unwind): while it is
            // set, that context is alive and only this thread touches it
            // (through `Cell`s).
            Some(ctx) => f(unsafe { ctx.as_ref() }),
            None => BASE.with(|base| f(&*base.inner)),
        },
        Slot::Base => BASE.with(|base| f(&*base.inner)),
    })
}

/// Calls `f` with the map cell of the current context.
fn with_current<R>(f: impl FnOnce(&Cell<Map>) -> R) -> R {
    with_holder(|holder| f(holder.map_cell()))
}

/// A snapshot of the current context's contents (O(1)).
pub(crate) fn current_map() -> Map {
    with_current(snapshot)
}

/// An identity for the current context, used to check that a [`Token`] is
/// reset in the context that made it.
fn current_identity() -> u64 {
    with_holder(|holder| holder.context_id())
}

static NEXT_VAR_ID: AtomicUsize = AtomicUsize::new(1);

/// A context variable: a key whose value depends on the current [`Context`].
///
/// Declare it in a `static`; the constructors are `const`. `T` must be
/// `Clone` because [`get`](Self::get) hands out a copy; for large values store
/// an `Rc<T>` or use [`with`](Self::with).
///
/// ```
/// use runner_core::ContextVar;
///
/// static REQUEST_ID: ContextVar<u64> = ContextVar::new("request_id");
/// static RETRIES: ContextVar<u32> = ContextVar::with_default("retries", || 3);
///
/// assert_eq!(REQUEST_ID.get(), None);
/// assert_eq!(RETRIES.get(), Some(3));
/// let token = REQUEST_ID.set(7);
/// assert_eq!(REQUEST_ID.get(), Some(7));
/// REQUEST_ID.reset(token).unwrap();
/// assert_eq!(REQUEST_ID.get(), None);
/// ```
pub struct ContextVar<T: 'static> {
    name: &'static str,
    id: AtomicUsize,
    default: Option<fn() -> T>,
    inherited: bool,
    _marker: PhantomData<fn() -> T>,
}

impl<T: Clone + 'static> ContextVar<T> {
    /// A variable with no default: [`get`](Self::get) is `None` until it is set.
    pub const fn new(name: &'static str) -> Self {
        ContextVar {
            name,
            id: AtomicUsize::new(0),
            default: None,
            inherited: true,
            _marker: PhantomData,
        }
    }

    /// A variable whose value is `default()` in contexts where it was not set.
    pub const fn with_default(name: &'static str, default: fn() -> T) -> Self {
        ContextVar {
            name,
            id: AtomicUsize::new(0),
            default: Some(default),
            inherited: true,
            _marker: PhantomData,
        }
    }

    /// Marks the variable as not inherited: a spawned task starts without
    /// it (its default, or unset), for values such as a per-request buffer
    /// that must not cross a spawn. Copies made with
    /// [`Context::copy_current`] still include it, as Python's do.
    ///
    /// ```
    /// use runner_core::{spawn, ContextVar};
    ///
    /// static BUFFER: ContextVar<Vec<u8>> = ContextVar::new("buffer").not_inherited();
    /// static USER: ContextVar<&'static str> = ContextVar::new("user");
    ///
    /// let seen = runner_core::run(async {
    ///     let _ = BUFFER.set(vec![1, 2, 3]);
    ///     let _ = USER.set("ada");
    ///     spawn(async { (BUFFER.get(), USER.get()) }).await.unwrap()
    /// })
    /// .unwrap();
    /// assert_eq!(seen, (None, Some("ada")));
    /// ```
    pub const fn not_inherited(mut self) -> Self {
        self.inherited = false;
        self
    }

    /// Whether spawned tasks inherit the variable.
    pub fn is_inherited(&self) -> bool {
        self.inherited
    }

    /// The name given at declaration.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The id of this variable, assigned on first use (the constructor is
    /// `const`, so it cannot take one from the counter).
    fn id(&self) -> usize {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        let fresh = NEXT_VAR_ID.fetch_add(1, Ordering::Relaxed);
        match self.id.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => fresh,
            Err(winner) => winner,
        }
    }

    /// Calls `f` with a reference to the variable's value in the current
    /// context (`None` when unset and without default), without cloning it.
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let id = self.id();
        let value = with_current(|cell| snapshot(cell).get(id).cloned());
        match value {
            Some(v) => f(v.downcast_ref::<T>()),
            None => match self.default {
                Some(default) => f(Some(&default())),
                None => f(None),
            },
        }
    }

    /// The variable's value in the current context, or its default, or `None`.
    pub fn get(&self) -> Option<T> {
        self.with(|v| v.cloned())
    }

    /// Sets the variable in the current context. The returned [`Token`]
    /// restores the previous value with [`reset`](Self::reset).
    pub fn set(&self, value: T) -> Token<T> {
        let id = self.id();
        let old = with_current(|cell| {
            let map = cell.take();
            let old = map.get(id).cloned();
            cell.set(map.with(id, Some(Rc::new(value)), self.inherited));
            old
        });
        Token {
            var_id: id,
            context: current_identity(),
            old,
            _marker: PhantomData,
        }
    }

    /// Restores the value the variable had before the `set` that returned
    /// `token`.
    ///
    /// Fails, changing nothing, when the token belongs to another variable or
    /// was made in another context (as Python's `ContextVar.reset` does).
    pub fn reset(&self, token: Token<T>) -> Result<(), ContextError> {
        if token.var_id != self.id() {
            return Err(ContextError::WrongVariable { var: self.name });
        }
        if token.context != current_identity() {
            return Err(ContextError::WrongContext { var: self.name });
        }
        with_current(|cell| {
            let map = cell.take();
            cell.set(map.with(token.var_id, token.old, self.inherited));
        });
        Ok(())
    }
}

impl<T: 'static> fmt::Debug for ContextVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextVar")
            .field("name", &self.name)
            .field("has_default", &self.default.is_some())
            .field("inherited", &self.inherited)
            .finish()
    }
}

/// Returned by [`ContextVar::set`]; pass it to [`ContextVar::reset`] to undo
/// the change.
#[must_use = "dropping a token keeps the new value; pass it to ContextVar::reset to undo the set"]
pub struct Token<T: 'static> {
    var_id: usize,
    context: u64,
    old: Option<Value>,
    _marker: PhantomData<fn() -> T>,
}

impl<T: Clone + 'static> Token<T> {
    /// The value the variable had before the `set` that made this token
    /// (asyncio's `Token.old_value`); `None` where asyncio says
    /// `Token.MISSING`: the variable was not set (its default, if any,
    /// does not count).
    ///
    /// ```
    /// use runner_core::ContextVar;
    ///
    /// static LEVEL: ContextVar<u8> = ContextVar::with_default("level", || 1);
    ///
    /// let first = LEVEL.set(2);
    /// let second = LEVEL.set(3);
    /// assert_eq!((first.old_value(), second.old_value()), (None, Some(2)));
    /// LEVEL.reset(second).unwrap();
    /// LEVEL.reset(first).unwrap();
    /// ```
    pub fn old_value(&self) -> Option<T> {
        self.old.as_ref().and_then(|v| v.downcast_ref::<T>()).cloned()
    }
}

impl<T: 'static> fmt::Debug for Token<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token").field("had_value", &self.old.is_some()).finish()
    }
}

/// Why a [`ContextVar::reset`] was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextError {
    /// The token was returned by `set` on another variable.
    WrongVariable {
        /// The variable `reset` was called on.
        var: &'static str,
    },
    /// The token was made in another context (another task, or another
    /// `Context::run`).
    WrongContext {
        /// The variable `reset` was called on.
        var: &'static str,
    },
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::WrongVariable { var } => write!(
                f,
                "cannot reset context variable `{var}`: the token was created by another variable; \
                 pass the token returned by `{var}.set(..)`"
            ),
            ContextError::WrongContext { var } => write!(
                f,
                "cannot reset context variable `{var}`: the token was created in a different context; \
                 reset it in the task or Context::run call that set it"
            ),
        }
    }
}

impl std::error::Error for ContextError {}

/// A set of context-variable values: Python's `contextvars.Context`.
///
/// Cloning a `Context` gives another handle to the *same* context (changes
/// made through one are seen through the other); [`copy`](Self::copy) and
/// [`copy_current`](Self::copy_current) make an independent copy, in O(1).
///
/// ```
/// use runner_core::{Context, ContextVar};
///
/// static USER: ContextVar<&'static str> = ContextVar::new("user");
///
/// let ctx = Context::new();
/// ctx.run(|| {
///     let _ = USER.set("ada");
/// });
/// assert_eq!(ctx.get(&USER), Some("ada"));
/// assert_eq!(USER.get(), None); // the thread's own context is untouched
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Rc<TaskContext>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Context {
        Context::from_map(Map::default())
    }

    pub(crate) fn from_map(map: Map) -> Context {
        Context {
            inner: Rc::new(TaskContext::new(new_context_id(), map)),
        }
    }

    /// A copy of the current context (the running task's, the entered
    /// context's, or the thread's).
    pub fn copy_current() -> Context {
        Context::from_map(current_map())
    }

    /// An independent copy of this context.
    pub fn copy(&self) -> Context {
        Context::from_map(self.map())
    }

    /// A snapshot of this context's contents (O(1)).
    pub(crate) fn map(&self) -> Map {
        snapshot(&self.inner.map)
    }

    /// The state a task running in this context is polled with.
    pub(crate) fn state(&self) -> &TaskContext {
        &self.inner
    }

    /// Runs `f` with this context as the current one; variables `f` sets
    /// stay in this context.
    ///
    /// Inside a task that runs in this context (a `Runner`'s main task,
    /// one spawned with `spawn_in_context`), or inside another `run` of
    /// it, `f` goes on with the same variables: it sees what the task set,
    /// and the task sees what `f` sets (asyncio refuses to enter a context
    /// that is already entered).
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        enter(self.inner.clone(), f)
    }

    /// The value of `var` in this context (or its default).
    pub fn get<T: Clone + 'static>(&self, var: &ContextVar<T>) -> Option<T> {
        let value = self.map().get(var.id()).cloned();
        match value {
            Some(v) => v.downcast_ref::<T>().cloned(),
            None => var.default.map(|d| d()),
        }
    }

    /// Whether `var` has been set in this context (defaults do not count).
    pub fn contains<T: Clone + 'static>(&self, var: &ContextVar<T>) -> bool {
        self.map().get(var.id()).is_some()
    }

    /// How many variables are set in this context.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no variable is set in this context.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether two handles refer to the same context.
    pub fn ptr_eq(&self, other: &Context) -> bool {
        Rc::ptr_eq(&self.inner, &other.inner)
    }
}

impl ContextHolder for Context {
    fn map_cell(&self) -> &Cell<Map> {
        &self.inner.map
    }

    fn context_id(&self) -> u64 {
        self.inner.id
    }
}

impl Default for Context {
    fn default() -> Self {
        Context::new()
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("variables", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static A: ContextVar<i32> = ContextVar::new("a");
    static B: ContextVar<String> = ContextVar::with_default("b", || "dflt".to_string());

    #[test]
    fn unset_variable_without_default_is_none() {
        Context::new().run(|| assert_eq!(A.get(), None));
    }

    #[test]
    fn default_is_used_until_set() {
        Context::new().run(|| {
            assert_eq!(B.get().as_deref(), Some("dflt"));
            let _t = B.set("x".into());
            assert_eq!(B.get().as_deref(), Some("x"));
        });
    }

    #[test]
    fn reset_restores_previous_value() {
        Context::new().run(|| {
            let t1 = A.set(1);
            let t2 = A.set(2);
            A.reset(t2).unwrap();
            assert_eq!(A.get(), Some(1));
            A.reset(t1).unwrap();
            assert_eq!(A.get(), None);
        });
    }

    #[test]
    fn reset_with_token_of_other_context_is_refused() {
        let token = Context::new().run(|| A.set(5));
        let err = Context::new().run(|| A.reset(token)).unwrap_err();
        assert!(matches!(err, ContextError::WrongContext { var: "a" }));
        assert!(err.to_string().contains("different context"));
    }

    #[test]
    fn reset_with_token_of_other_variable_is_refused() {
        static C: ContextVar<i32> = ContextVar::new("c");
        Context::new().run(|| {
            let token = A.set(5);
            let err = C.reset(token).unwrap_err();
            assert!(matches!(err, ContextError::WrongVariable { var: "c" }));
        });
    }

    #[test]
    fn copy_is_independent() {
        let ctx = Context::new();
        ctx.run(|| {
            let _ = A.set(1);
        });
        let copy = ctx.copy();
        copy.run(|| {
            let _ = A.set(2);
        });
        assert_eq!(ctx.get(&A), Some(1));
        assert_eq!(copy.get(&A), Some(2));
    }

    #[test]
    fn nested_run_switches_and_restores() {
        let outer = Context::new();
        let inner = Context::new();
        outer.run(|| {
            let _ = A.set(1);
            inner.run(|| {
                assert_eq!(A.get(), None);
                let _ = A.set(2);
            });
            assert_eq!(A.get(), Some(1));
        });
        assert_eq!(inner.get(&A), Some(2));
    }

    #[test]
    fn many_variables_stay_sorted_and_findable() {
        static VARS: [ContextVar<usize>; 8] = [
            ContextVar::new("v0"),
            ContextVar::new("v1"),
            ContextVar::new("v2"),
            ContextVar::new("v3"),
            ContextVar::new("v4"),
            ContextVar::new("v5"),
            ContextVar::new("v6"),
            ContextVar::new("v7"),
        ];
        let ctx = Context::new();
        ctx.run(|| {
            for (i, v) in VARS.iter().enumerate().rev() {
                let _ = v.set(i * 10);
            }
            for (i, v) in VARS.iter().enumerate() {
                assert_eq!(v.get(), Some(i * 10));
            }
        });
        assert_eq!(ctx.len(), 8);
    }
}
