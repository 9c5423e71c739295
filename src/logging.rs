//! The slog logger: JSON or text, a level filter, and a bridge for the `log`
//! records of dependencies.
//!
//! The async drain blocks instead of dropping when its channel is full, so no
//! record is lost under load. Secrets never reach a record: settings carry
//! them as [`crate::config::Secret`], which prints as `***`.

use std::io::IsTerminal;

use slog::{o, Drain, Logger};

use crate::config::{LogFormat, LogSettings};

/// Keeps the async drain and the `log` bridge alive; drop it last, to flush.
pub struct LogGuard {
    _scope: Option<slog_scope::GlobalLoggerGuard>,
    _async: Option<slog_async::AsyncGuard>,
}

/// Builds the root logger and routes the `log` crate into it.
pub fn init(settings: &LogSettings) -> (Logger, LogGuard) {
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let drain: Box<dyn Drain<Ok = (), Err = slog::Never> + Send> = if json {
        Box::new(
            slog_json::Json::new(std::io::stdout())
                .add_key_value(o!(
                    "ts" => slog::PushFnValue(|_, ser| ser.emit(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string())),
                    "level" => slog::FnValue(|r| r.level().as_short_str()),
                    "msg" => slog::PushFnValue(|r, ser| ser.emit(r.msg())),
                ))
                .build()
                .fuse(),
        )
    } else {
        let decorator = slog_term::TermDecorator::new().stdout().build();
        Box::new(slog_term::FullFormat::new(decorator).build().fuse())
    };
    let (drain, async_guard) = slog_async::Async::new(drain)
        .chan_size(8192)
        .overflow_strategy(slog_async::OverflowStrategy::Block)
        .build_with_guard();
    let drain = slog::LevelFilter::new(drain.fuse(), settings.level).fuse();
    let logger = Logger::root(drain, o!());
    let scope = slog_scope::set_global_logger(logger.new(o!("source" => "dependency")));
    // Dependencies log at their own level, and never above ours.
    let dependency_level =
        if settings.dependencies.is_at_least(settings.level) { settings.dependencies } else { settings.level };
    let level = match dependency_level {
        slog::Level::Trace => log::LevelFilter::Trace,
        slog::Level::Debug => log::LevelFilter::Debug,
        slog::Level::Info => log::LevelFilter::Info,
        slog::Level::Warning => log::LevelFilter::Warn,
        _ => log::LevelFilter::Error,
    };
    if slog_stdlog::init_with_level(level.to_level().unwrap_or(log::Level::Error)).is_ok() {
        log::set_max_level(level);
    }
    (logger, LogGuard { _scope: Some(scope), _async: Some(async_guard) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_configurable_level_is_compiled_in() {
        // Without slog's max-level features, debug and trace records are
        // compiled out of release builds: the image would ignore `log.level`.
        assert_eq!(slog::__slog_static_max_level(), slog::FilterLevel::Trace);
    }
}
