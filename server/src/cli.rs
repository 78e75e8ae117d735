//! `server [COMMAND]`: serve (default), migrate, and the maintenance commands.

use crate::config::{DbConfig, ServeConfig};
use crate::startup::{self, Application};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "server", version, about = "Supply Co. sales portal server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub db: DbConfig,

    #[command(flatten)]
    pub serve: ServeConfig,

    /// Log filter when RUST_LOG is unset, e.g. `info` or `server=debug,info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the web app (the default).
    Serve,
    /// Apply the SQL migrations in migrations/ (they also run when serving).
    Migrate,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let databases = cli.db.databases()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let options = crate::leptos_options(cli.serve.site_addr);
            let app = Application::build(&databases, &cli.serve, options).await?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let (mysql, _) = startup::connect(&databases).await?;
            app::server::db::MIGRATOR
                .run(&mysql)
                .await
                .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
            println!("migrations applied");
        }
    }
    Ok(())
}
