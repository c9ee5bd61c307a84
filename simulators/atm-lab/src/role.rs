//! The child roles: `atm-lab --role switch|agent --config FILE` runs the host switch or the
//! agent in this process until SIGTERM / ctrl-c (or SIGKILL from a crash drill).

use std::path::Path;

use anyhow::Context;

use crate::children::Role;

pub fn parse_role(name: &str) -> anyhow::Result<Role> {
    match name {
        "switch" => Ok(Role::Switch),
        "agent" => Ok(Role::Agent),
        other => anyhow::bail!("unknown role {other:?} (switch or agent)"),
    }
}

/// Runs one role until terminated.
pub async fn run_role(role: Role, config: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("cannot read {}", config.display()))?;
    let origin = config.display().to_string();
    let stop = daemon::stop::install().context("cannot install the SIGTERM/SIGINT handlers")?;
    match role {
        Role::Switch => {
            let cfg = host_switch::config::Config::parse(&text, &origin)?;
            let running = host_switch::runtime::start(&cfg)
                .await
                .context("cannot start the switch")?;
            stop.await;
            running.shutdown().await;
        }
        Role::Agent => {
            let cfg = atm_agent::config::Config::parse(&text, &origin)?;
            let running = atm_agent::runtime::start(&cfg)
                .await
                .context("cannot start the agent")?;
            stop.await;
            running.shutdown().await;
        }
    }
    Ok(())
}
