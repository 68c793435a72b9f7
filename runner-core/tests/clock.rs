//! The virtual clock: start_paused, auto-advance, advance by hand.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use runner_core::{get_running_loop, sleep, spawn, spawn_blocking, time, timeout, yield_now, Error, EventLoop};

fn paused_loop() -> EventLoop {
    EventLoop::builder().start_paused(true).build().unwrap()
}

#[test]
fn an_hour_long_sleep_takes_no_wall_time_on_a_paused_clock() {
    let lp = paused_loop();
    let wall = Instant::now();
    let virtual_start = lp.time();
    lp.run_until_complete(sleep(Duration::from_secs(3600))).unwrap();
    assert!(wall.elapsed() < Duration::from_secs(1), "{:?}", wall.elapsed());
    assert!(lp.time() - virtual_start >= Duration::from_secs(3600));
}

#[test]
fn ten_thousand_timers_fire_in_deadline_order() {
    let lp = paused_loop();
    let fired = Rc::new(RefCell::new(Vec::with_capacity(10_000)));
    let base = lp.time();
    // Deadlines scattered over a day, several sharing a deadline.
    let mut deadlines: Vec<(u64, usize)> = (0..10_000usize).map(|i| (((i * 7919) % 86_400) as u64, i)).collect();
    for &(secs, i) in &deadlines {
        let f = fired.clone();
        lp.call_at(base + Duration::from_secs(secs), move || f.borrow_mut().push(i))
            .unwrap();
    }
    let wall = Instant::now();
    lp.run_until_complete(sleep(Duration::from_secs(86_400))).unwrap();
    assert!(wall.elapsed() < Duration::from_secs(5));
    // Expected: by deadline, and equal deadlines in scheduling order.
    deadlines.sort_by_key(|&(secs, i)| (secs, i));
    let expected: Vec<usize> = deadlines.iter().map(|&(_, i)| i).collect();
    assert_eq!(*fired.borrow(), expected);
}

#[test]
fn advance_moves_time_exactly() {
    let lp = paused_loop();
    lp.run_until_complete(async {
        time::pause_auto_advance().unwrap();
        let lp = get_running_loop().unwrap();
        let t0 = lp.time();
        time::advance(Duration::from_millis(1500)).await.unwrap();
        assert_eq!(lp.time() - t0, Duration::from_millis(1500));
        time::advance(Duration::from_secs(2)).await.unwrap();
        assert_eq!(lp.time() - t0, Duration::from_millis(3500));
    })
    .unwrap();
}

#[test]
fn with_auto_advance_off_timers_wait_for_advance_while_real_wakeups_still_work() {
    let lp = paused_loop();
    lp.run_until_complete(async {
        time::pause_auto_advance().unwrap();
        let timer = spawn(sleep(Duration::from_secs(60)));
        // A real wake-up from another thread, 30 ms of wall time later.
        let (tx, rx) = std::sync::mpsc::channel();
        let handle = get_running_loop().unwrap().handle();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            handle.call_soon_threadsafe(move || tx.send(()).unwrap()).unwrap();
        });
        let woke = spawn_blocking(move || rx.recv_timeout(Duration::from_secs(10)).is_ok());
        assert!(woke.await.unwrap(), "the other thread's wake-up arrived");
        assert!(!timer.is_done(), "the clock did not jump on its own");
        time::advance(Duration::from_secs(59)).await.unwrap();
        yield_now().await;
        assert!(!timer.is_done());
        time::advance(Duration::from_secs(1)).await.unwrap();
        yield_now().await;
        assert!(timer.is_done());
        time::resume_auto_advance().unwrap();
        sleep(Duration::from_secs(3600)).await; // auto-advance is back
    })
    .unwrap();
}

#[test]
fn the_clock_does_not_jump_while_a_blocking_job_is_in_flight() {
    let lp = paused_loop();
    let out = lp
        .run_until_complete(async {
            let job = spawn_blocking(|| {
                std::thread::sleep(Duration::from_millis(50));
                "done"
            });
            timeout(Duration::from_secs(1), job).await
        })
        .unwrap();
    assert_eq!(
        out.unwrap().unwrap(),
        "done",
        "the virtual 1 s timeout did not fire early"
    );
}

#[test]
fn advancing_a_real_clock_is_a_clear_error() {
    let lp = EventLoop::new().unwrap();
    assert!(!lp.is_clock_paused());
    let err = lp.advance(Duration::from_secs(1)).unwrap_err();
    assert!(matches!(err, Error::ClockNotPaused));
    assert!(err.to_string().contains("start_paused"));
    let err = lp
        .run_until_complete(async { time::pause_auto_advance().unwrap_err() })
        .unwrap();
    assert!(matches!(err, Error::ClockNotPaused));
    // What `time::advance(..).await.unwrap()` prints says what to do, too.
    let err = lp
        .run_until_complete(async { time::advance(Duration::from_secs(1)).await.unwrap_err() })
        .unwrap();
    let debug = format!("{err:?}");
    assert!(
        debug.starts_with("ClockNotPaused { message: ") && debug.contains("#[runner_test(start_paused)]"),
        "{debug}"
    );
}

#[test]
fn pause_clock_switches_a_running_program_to_virtual_time() {
    let lp = EventLoop::new().unwrap();
    let wall = Instant::now();
    lp.run_until_complete(async {
        get_running_loop().unwrap().pause_clock();
        sleep(Duration::from_secs(600)).await;
    })
    .unwrap();
    assert!(lp.is_clock_paused());
    assert!(wall.elapsed() < Duration::from_secs(1));
}

mod intervals {
    use std::time::Duration;

    use runner_core::time::{interval, interval_at, MissedTickBehavior};
    use runner_core::{get_running_loop, sleep};

    use super::paused_loop;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Ticks (as offsets from the first) of an interval of 100 ms whose
    /// task is busy for 350 ms after its second tick, then ticks 4 more.
    fn after_a_stall(behavior: MissedTickBehavior) -> (Vec<Duration>, Vec<Duration>) {
        let lp = paused_loop();
        let out = lp
            .run_until_complete(async move {
                let now = || get_running_loop().unwrap().time();
                let mut every = interval(ms(100));
                every.set_missed_tick_behavior(behavior);
                let start = every.tick().await;
                let mut due = Vec::new();
                let mut at = Vec::new();
                let second = every.tick().await;
                due.push(second - start);
                sleep(ms(350)).await; // busy: ticks at 200, 300 and 400 are missed
                for _ in 0..4 {
                    let d = every.tick().await;
                    due.push(d - start);
                    at.push(now() - start);
                }
                (due, at)
            })
            .unwrap();
        lp.close().unwrap();
        out
    }

    #[test]
    fn an_interval_ticks_at_exact_virtual_times_the_first_at_once() {
        let lp = paused_loop();
        let (first_after, offsets) = lp
            .run_until_complete(async {
                let t0 = get_running_loop().unwrap().time();
                let mut every = interval(ms(250));
                let start = every.tick().await;
                let mut offsets = Vec::new();
                for _ in 0..4 {
                    offsets.push(every.tick().await - start);
                }
                (start - t0, offsets)
            })
            .unwrap();
        assert_eq!(first_after, Duration::ZERO);
        assert_eq!(offsets, [250, 500, 750, 1000].map(ms));
    }

    #[test]
    fn burst_gives_the_missed_ticks_at_once_and_stays_on_the_grid() {
        let (due, at) = after_a_stall(MissedTickBehavior::Burst);
        assert_eq!(due, [100, 200, 300, 400, 500].map(ms));
        // The stall ended at 450: three ticks come then, the next on time.
        assert_eq!(at, [450, 450, 450, 500].map(ms));
    }

    #[test]
    fn delay_shifts_the_schedule_by_the_stall() {
        let (due, at) = after_a_stall(MissedTickBehavior::Delay);
        assert_eq!(due, [100, 200, 550, 650, 750].map(ms));
        assert_eq!(at, [450, 550, 650, 750].map(ms));
    }

    #[test]
    fn skip_drops_the_missed_ticks_and_keeps_the_grid() {
        let (due, at) = after_a_stall(MissedTickBehavior::Skip);
        assert_eq!(due, [100, 200, 500, 600, 700].map(ms));
        assert_eq!(at, [450, 500, 600, 700].map(ms));
    }

    #[test]
    fn interval_at_starts_at_its_instant_and_reset_restarts_from_now() {
        let lp = paused_loop();
        let offsets = lp
            .run_until_complete(async {
                let t0 = get_running_loop().unwrap().time();
                let mut every = interval_at(t0 + ms(30), ms(100));
                let mut offsets = vec![every.tick().await - t0, every.tick().await - t0];
                sleep(ms(10)).await;
                every.reset();
                offsets.push(every.tick().await - t0);
                offsets
            })
            .unwrap();
        assert_eq!(offsets, [30, 130, 240].map(ms));
    }
}
