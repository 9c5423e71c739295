//! What each subcommand does. `run` is the daemon ([`crate::actors::pipeline`]);
//! the others are tools around it.

mod check;
mod dead;
mod enqueue;
pub(crate) mod healthcheck;
mod seed;
mod status;

use std::path::Path;

use crate::actors::pipeline;
use crate::cli::{Cli, Command, CommandError, DeadAction};
use crate::config::Settings;
use crate::paste_server;

/// Loads the configuration: the file, then the environment.
pub fn load_settings(path: &Path) -> Result<Settings, CommandError> {
    Ok(Settings::load(path, std::env::vars())?)
}

/// Runs one subcommand to completion.
pub fn execute(cli: Cli) -> Result<(), CommandError> {
    // awc's TLS needs a process-wide crypto provider before any client exists.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let system = actix_rt::System::new();
    match cli.command {
        Command::PasteServer { listen, api_dev_key, public_url, dir, delay, knee } => {
            system.block_on(paste_server::serve(paste_server::Options {
                listen,
                api_dev_key,
                public_url,
                dir,
                delay,
                knee,
            }))?;
            Ok(())
        }
        Command::Run => {
            let settings = load_settings(&cli.config)?;
            let (log, guard) = crate::logging::init(&settings.log);
            install_panic_hook(log.clone());
            let res = system.block_on(pipeline::run(settings, log));
            drop(guard);
            Ok(res?)
        }
        Command::Seed { rows, seed, truncate, batch, no_optimize } => {
            let settings = load_settings(&cli.config)?;
            if batch == 0 {
                return Err(CommandError::Usage("--batch must be at least 1".into()));
            }
            let options = seed::SeedOptions { rows, seed, truncate, batch, optimize: !no_optimize };
            system.block_on(seed::seed(&settings, options))
        }
        Command::Enqueue { count, hit_ratio, invalid_ratio, seed, id_prefix } => {
            let settings = load_settings(&cli.config)?;
            for (name, r) in [("--hit-ratio", hit_ratio), ("--invalid-ratio", invalid_ratio)] {
                if !(0.0..=1.0).contains(&r) {
                    return Err(CommandError::Usage(format!("{name} must be between 0 and 1, got {r}")));
                }
            }
            let prefix = id_prefix.unwrap_or_else(|| format!("t{seed}-"));
            system.block_on(enqueue::enqueue(&settings, count, hit_ratio, invalid_ratio, seed, &prefix))
        }
        Command::Healthcheck { url } => {
            let url = match url {
                Some(u) => u,
                None => {
                    let settings = load_settings(&cli.config)?;
                    let mut addr = settings.http.listen;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    format!("http://{addr}/healthz")
                }
            };
            healthcheck::probe(&url)
        }
        Command::Check => {
            let settings = load_settings(&cli.config)?;
            system.block_on(check::check(&settings))
        }
        Command::Status { json, http } => {
            let settings = load_settings(&cli.config)?;
            system.block_on(status::status(&settings, json, &http))
        }
        Command::Dead { action } => {
            let settings = load_settings(&cli.config)?;
            system.block_on(async {
                match action {
                    DeadAction::List { limit, matching, json } => {
                        dead::list(&settings, limit, matching.as_deref(), json).await
                    }
                    DeadAction::Show { index } => dead::show(&settings, index).await,
                    DeadAction::Retry { all, index, matching, yes } => {
                        let selection = match (all, matching) {
                            (true, _) => dead::Selection::All,
                            (_, Some(text)) => dead::Selection::Matching(text),
                            _ => dead::Selection::Indexes(index),
                        };
                        dead::retry(&settings, selection, yes).await
                    }
                    DeadAction::Purge { all, older_than, yes } => {
                        let selection = match older_than {
                            Some(d) if !all => dead::Selection::OlderThan(
                                crate::config::parse_duration(&d)
                                    .map_err(|p| CommandError::Usage(format!("--older-than: {p}")))?,
                            ),
                            _ => dead::Selection::All,
                        };
                        dead::purge(&settings, selection, yes).await
                    }
                }
            })
        }
    }
}

/// A panic in any actor ends the process at once, non-zero: the tasks it held
/// are still in Redis and are taken again after the restart, while a
/// half-dead actor system could hold them forever.
fn install_panic_hook(log: slog::Logger) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        slog::crit!(log, "panic: exiting so that a clean restart takes the tasks again"; "panic" => %info);
        default(info);
        std::process::abort();
    }));
}
