//! Helpers shared by the integration tests.

use std::cell::RefCell;
use std::rc::Rc;

use runner_core::{EventLoop, ExceptionContext};

/// Which branch of [`select_won_by`] must win.
#[allow(dead_code)]
pub enum Won {
    First,
    Second,
}

/// `futures::future::select(first, second)` that must end by the branch
/// `won` names (`why` says why it does): the other is dropped unfinished,
/// a `select!`'s losing branch. `first` is polled first.
#[allow(dead_code)]
pub async fn select_won_by<A, B>(won: Won, first: A, second: B, why: &str)
where
    A: std::future::Future + Unpin,
    B: std::future::Future + Unpin,
{
    let first_won = matches!(
        futures::future::select(first, second).await,
        futures::future::Either::Left(_)
    );
    assert_eq!(first_won, matches!(won, Won::First), "the other branch won: {why}");
}

/// Routes `lp`'s reports to a list the test can read.
#[allow(dead_code)] // not every test file uses every helper
pub fn capture_reports(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    lp.set_exception_handler(move |_, ctx| sink.borrow_mut().push(ctx.clone()));
    seen
}

/// This thread's CPU time (user + system), from /proc, to check that a
/// waiting loop sleeps rather than spins.
#[allow(dead_code)]
pub fn thread_cpu() -> std::time::Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    std::time::Duration::from_millis(ticks * 10)
}

/// Runs its closure when dropped: a destructor to observe (a cancelled
/// task's future is dropped, so its destructors are its `finally`).
#[allow(dead_code)] // not every test file uses every helper
pub struct OnDrop<F: FnMut()>(pub F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// An empty directory of its own for a test's files (Unix socket paths,
/// say), made anew: `name` and the process id keep tests and runs apart.
#[allow(dead_code)]
pub fn fresh_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// An error to fail with: "boom: {what}".
#[allow(dead_code)]
#[derive(Debug, PartialEq)]
pub struct Boom(pub &'static str);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

impl std::error::Error for Boom {}

/// A loop on a paused clock: sleeps take no wall time and end in the
/// order of their virtual deadlines.
#[allow(dead_code)]
pub fn paused_loop() -> EventLoop {
    EventLoop::builder().start_paused(true).build().unwrap()
}

/// Runs `fut` to completion on a fresh [`paused_loop`], then closes it,
/// within two minutes of wall time ([`within_wall_time`]): the virtual
/// clock jumps over every sleep, so only a lost wake-up could hang it.
#[allow(dead_code)]
pub fn run_paused<T: 'static>(fut: impl std::future::Future<Output = T> + 'static) -> T {
    within_wall_time(std::time::Duration::from_secs(120), || {
        let lp = paused_loop();
        let out = lp.run_until_complete(fut).unwrap();
        lp.close().unwrap();
        out
    })
}

/// Runs `f`; if it has not returned within `limit` of wall time, a
/// watchdog ends the test binary, saying so, so that a hang is a red test
/// and not a stuck CI. (Not under Miri, whose clock is its own.)
#[allow(dead_code)]
pub fn within_wall_time<T>(limit: std::time::Duration, f: impl FnOnce() -> T) -> T {
    let (done, watched) = std::sync::mpsc::channel::<()>();
    let watchdog = (!cfg!(miri)).then(|| {
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = watched.recv_timeout(limit) {
                eprintln!("a test did not finish within {limit:?} of wall time: a lost wake-up?");
                std::process::exit(101);
            }
        })
    });
    let out = f();
    drop(done);
    if let Some(watchdog) = watchdog {
        watchdog.join().unwrap();
    }
    out
}
