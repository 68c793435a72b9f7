//! The default exception handler reports through the `log` facade when the
//! application installed a logger. A single test: the logger is global.

use std::sync::Mutex;

static RECORDS: Mutex<Vec<(log::Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS
            .lock()
            .unwrap()
            .push((record.level(), record.target().to_string(), record.args().to_string()));
    }
    fn flush(&self) {}
}

#[test]
fn reports_go_to_the_log_facade_when_a_logger_is_installed() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Warn);
    runner_core::run(async {
        drop(runner_core::spawn(async { panic!("lost panic") }));
        runner_core::sleep(std::time::Duration::from_millis(2)).await;
        let lp = runner_core::get_running_loop().unwrap();
        lp.call_exception_handler(&runner_core::ExceptionContext::new("a plain warning"));
    })
    .unwrap();
    let records = RECORDS.lock().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].0, log::Level::Error);
    assert_eq!(records[0].1, "runner");
    assert!(records[0].2.contains("lost panic"));
    assert_eq!(records[1].0, log::Level::Warn);
    assert_eq!(records[1].2, "a plain warning");
}
