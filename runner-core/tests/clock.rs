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

/// A job's result on its way to the loop holds the paused clock too: the
/// job used to be counted done just before it woke its awaiter, and a
/// loop that looked in between jumped its clock to the next timer (here,
/// an hour-long timeout fired for a job that had finished). About 100 of
/// 20,000 did before the fix.
#[test]
fn the_clock_does_not_jump_while_a_finished_jobs_result_is_on_its_way() {
    let lp = paused_loop();
    let early = lp
        .run_until_complete(async {
            let mut early = 0;
            for i in 0..5_000u32 {
                if timeout(Duration::from_secs(3600), spawn_blocking(move || i))
                    .await
                    .is_err()
                {
                    early += 1;
                }
            }
            early
        })
        .unwrap();
    assert_eq!(early, 0, "hour-long timeouts fired for jobs that had finished");
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

/// What `other` has done when the main task comes back from `pause`:
/// whether the pause let the other ready task run.
fn others_turn_during(pause: impl std::future::Future<Output = ()> + 'static) -> Vec<&'static str> {
    runner_core::run(async move {
        let log = Rc::new(RefCell::new(Vec::new()));
        let l = log.clone();
        let other = spawn(async move { l.borrow_mut().push("other ran") });
        pause.await;
        log.borrow_mut().push("main resumed");
        other.await.unwrap();
        log.take()
    })
    .unwrap()
}

#[test]
fn a_zero_or_past_sleep_still_gives_the_other_tasks_a_turn() {
    // asyncio's sleep(0) is its yield; a loop of zero sleeps must not
    // starve the others.
    assert_eq!(others_turn_during(sleep(Duration::ZERO)), ["other ran", "main resumed"]);
    let past = Instant::now() - Duration::from_secs(1);
    assert_eq!(
        others_turn_during(runner_core::sleep_until(past)),
        ["other ran", "main resumed"]
    );
    // A task spinning on zero sleeps lets a timer-driven stop through.
    let spins = runner_core::run(async {
        let stop = Rc::new(std::cell::Cell::new(false));
        let s = stop.clone();
        get_running_loop()
            .unwrap()
            .call_later(Duration::from_millis(5), move || s.set(true))
            .unwrap();
        let mut spins = 0u64;
        while !stop.get() {
            sleep(Duration::ZERO).await;
            spins += 1;
        }
        spins
    })
    .unwrap();
    assert!(spins > 0);
}

#[test]
fn a_finished_sleep_polled_again_stays_ready() {
    runner_core::run(async {
        let mut nap = std::pin::pin!(sleep(Duration::from_millis(1)));
        nap.as_mut().await;
        let again =
            std::future::poll_fn(|cx| std::task::Poll::Ready(std::future::Future::poll(nap.as_mut(), cx))).await;
        assert!(again.is_ready(), "a finished sleep must stay finished");
    })
    .unwrap();
}

#[test]
fn delays_too_large_for_the_clock_mean_the_far_future_never_a_panic() {
    const YEARS_29: Duration = Duration::from_secs(86400 * 365 * 29);
    runner_core::run(async {
        let lp = get_running_loop().unwrap();
        let handle = lp.call_later(Duration::MAX, || panic!("must never run")).unwrap();
        assert!(handle.when() - lp.time() > YEARS_29);
        handle.cancel();
        assert!(timeout(Duration::from_millis(5), sleep(Duration::MAX)).await.is_err());
        let mut every = time::interval(Duration::MAX);
        every.tick().await;
        assert!(timeout(Duration::from_millis(5), every.tick()).await.is_err());
    })
    .unwrap();
    let lp = paused_loop();
    let before = lp.time();
    lp.advance(Duration::MAX).unwrap();
    lp.advance(Duration::MAX).unwrap();
    assert!(lp.time() - before > YEARS_29 * 2);
    // A sleep of Duration::MAX on the virtual clock ends after the far
    // future's 30 years, as on tokio's.
    lp.run_until_complete(sleep(Duration::MAX)).unwrap();
    lp.close().unwrap();
}

#[test]
fn a_reset_sleep_keeps_its_waker_and_a_finished_one_waits_again() {
    use std::future::{poll_fn, Future};
    use std::pin::Pin;
    use std::task::Poll;

    let lp = paused_loop();
    let (waited, again) = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            // A safety net: had the reset lost the timer, the clock would
            // jump to this one instead.
            let _net = lp.call_later(Duration::from_secs(7200), || ()).unwrap();
            let start = lp.time();
            let mut nap = sleep(Duration::from_secs(3600));
            let first = poll_fn(|cx| Poll::Ready(Pin::new(&mut nap).poll(cx))).await;
            assert!(first.is_pending());
            nap.reset(start + Duration::from_secs(5));
            // Suspend without polling the sleep: only its timer can wake us.
            let mut suspended = false;
            poll_fn(|_| {
                if suspended {
                    Poll::Ready(())
                } else {
                    suspended = true;
                    Poll::Pending
                }
            })
            .await;
            let waited = lp.time() - start;
            (&mut nap).await;
            // Reset after it finished: it waits again, to the new deadline.
            let restart = lp.time();
            nap.reset(restart + Duration::from_secs(2));
            (&mut nap).await;
            (waited, lp.time() - restart)
        })
        .unwrap();
    lp.close().unwrap();
    assert_eq!(waited, Duration::from_secs(5));
    assert_eq!(again, Duration::from_secs(2));
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
    fn a_zero_period_ticks_at_every_turn_of_the_loop() {
        let lp = paused_loop();
        let (turns, ticks) = lp
            .run_until_complete(async {
                let turns = std::rc::Rc::new(std::cell::Cell::new(0u32));
                let t = turns.clone();
                let counter = runner_core::spawn(async move {
                    loop {
                        t.set(t.get() + 1);
                        runner_core::yield_now().await;
                    }
                });
                let mut every = interval(Duration::ZERO);
                let mut ticks = Vec::new();
                for _ in 0..3 {
                    every.tick().await;
                    ticks.push(turns.get());
                }
                counter.cancel();
                (turns.get(), ticks)
            })
            .unwrap();
        // The other task ran between any two ticks: the ticks did not spin.
        assert!(ticks.windows(2).all(|w| w[1] > w[0]), "{ticks:?}");
        assert!(turns >= 3);
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
