//! A child process driven by a test: its stdout and stderr read line by
//! line with deadlines, signals sent with kill(2), its exit awaited within
//! a bound (a child that does not answer is killed and the test fails).
//!
//! A child starts with the signals the tests send at their default
//! disposition, whatever the test process inherited: `cargo test` run as
//! a background job of a script has SIGINT ignored, under `nohup` SIGHUP,
//! the child would inherit that (an ignored signal stays ignored across
//! exec, and runner leaves an ignored signal alone, as it should), and the
//! signal tests would fail for a reason that is not the code's. A test
//! that wants SIGINT ignored says so ([`Fixture::start_with_sigint_ignored`]).

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How long any one step may take.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The signals the tests send, by kill(1)'s names: reset to their default
/// in every child.
const SIGNALS: [(&str, libc::c_int); 5] = [
    ("INT", libc::SIGINT),
    ("TERM", libc::SIGTERM),
    ("HUP", libc::SIGHUP),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
];

pub struct Fixture {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
    errors: Receiver<String>,
    seen_errors: Vec<String>,
}

impl Fixture {
    /// Starts `program` with `mode` as its argument.
    pub fn start(program: &str, mode: &str) -> Fixture {
        Fixture::spawn(Command::new(program).arg(mode))
    }

    /// Started with SIGINT ignored, as `nohup` or a background job would
    /// (`exec` keeps an ignored disposition).
    pub fn start_with_sigint_ignored(program: &str, mode: &str) -> Fixture {
        Fixture::spawn(Command::new("sh").args(["-c", "trap '' INT; exec \"$0\" \"$1\"", program, mode]))
    }

    pub fn spawn(cmd: &mut Command) -> Fixture {
        // SAFETY: the closure runs in the child between fork and exec,
        // where only async-signal-safe calls are allowed: it calls
        // signal(2), which is one, and allocates nothing (the error is
        // built from errno).
        unsafe {
            cmd.pre_exec(|| {
                for (_, signal) in SIGNALS {
                    if libc::signal(signal, libc::SIG_DFL) == libc::SIG_ERR {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the fixture starts");
        let lines = super::lines_of(child.stdout.take().unwrap());
        let errors = super::lines_of(child.stderr.take().unwrap());
        Fixture {
            child,
            lines,
            seen: Vec::new(),
            errors,
            seen_errors: Vec::new(),
        }
    }

    pub fn expect_line(&mut self, want: &str) {
        if !wait_for(&self.lines, &mut self.seen, |l| l == want) {
            let _ = self.child.kill();
            panic!("no line {want:?} from the fixture; it printed {:?}", self.seen);
        }
    }

    /// Waits at most `limit` for a line on stdout that starts with
    /// `prefix`; returns it, or `None` (the child goes on).
    #[allow(dead_code)]
    pub fn line_within(&mut self, limit: Duration, prefix: &str) -> Option<String> {
        if wait_for_within(&self.lines, &mut self.seen, limit, |l| l.starts_with(prefix)) {
            self.seen.last().cloned()
        } else {
            None
        }
    }

    /// Waits for a line on stderr that contains `want`; returns it.
    pub fn expect_error_line(&mut self, want: &str) -> String {
        if !wait_for(&self.errors, &mut self.seen_errors, |l| l.contains(want)) {
            let _ = self.child.kill();
            panic!(
                "no line with {want:?} on the fixture's stderr; it printed {:?}",
                self.seen_errors
            );
        }
        self.seen_errors.last().cloned().unwrap_or_default()
    }

    pub fn sigint(&self) {
        self.signal("INT");
    }

    /// Sends the signal `name` (`"TERM"`, `"USR1"`, ...) with kill(2), as
    /// kill(1) would (without needing the program: a minimal image may
    /// lack it).
    pub fn signal(&self, name: &str) {
        let Some(&(_, signal)) = SIGNALS.iter().find(|(known, _)| *known == name) else {
            panic!("the fixture knows no signal {name:?}: add it to SIGNALS");
        };
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) takes plain integers; the pid is our own child's,
        // not yet reaped (`Child` reaps it only in `wait`/`try_wait`, and a
        // test signals before it waits), so it cannot name another process.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill -{name} {pid}: {}", io::Error::last_os_error());
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit (bounded); returns the status, the rest of stdout
    /// and all of stderr.
    pub fn wait(mut self) -> (ExitStatus, Vec<String>, String) {
        self.wait_within(PATIENCE)
    }

    /// As [`wait`](Self::wait), failing when the exit takes longer than
    /// `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the fixture did not exit within {limit:?}; it printed {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let mut rest = std::mem::take(&mut self.seen);
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            rest.push(line);
        }
        let mut errors = std::mem::take(&mut self.seen_errors);
        while let Ok(line) = self.errors.recv_timeout(Duration::from_millis(200)) {
            errors.push(line);
        }
        (status, rest, errors.join("\n"))
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

/// Receives lines until one matches (recording all), within `PATIENCE`.
fn wait_for(lines: &Receiver<String>, seen: &mut Vec<String>, matches: impl Fn(&str) -> bool) -> bool {
    wait_for_within(lines, seen, PATIENCE, matches)
}

/// Receives lines until one matches (recording all), within `limit`.
fn wait_for_within(
    lines: &Receiver<String>,
    seen: &mut Vec<String>,
    limit: Duration,
    matches: impl Fn(&str) -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = matches(&line);
                seen.push(line);
                if found {
                    return true;
                }
            }
            Err(_) => return false,
        }
    }
}
