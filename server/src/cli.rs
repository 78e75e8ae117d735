//! `server [COMMAND]`: serve (default), migrate, and the maintenance commands.

use crate::config::{DbConfig, ServeConfig};
use crate::startup::{self, Application};
use app::model::{AppError, RegistrationInput, Role};
use app::server::auth::accounts;
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
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an active user of any role. The password is read from standard input
    /// (or prompted for twice on a terminal), never from the command line.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// customer, technical_worker or senior_management
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s)
}

/// Reads the new password without echo on a terminal, or as one line from a pipe.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        anyhow::ensure!(first == second, "the passwords do not match");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

async fn create_user(
    mysql: &sqlx::MySqlPool,
    username: String,
    email: String,
    role: Role,
) -> anyhow::Result<()> {
    let password = tokio::task::spawn_blocking(read_password).await??;
    let input = RegistrationInput {
        username,
        email,
        confirm_password: password.clone(),
        password,
        role: role.as_str().into(),
    };
    let account = input.parse().map_err(|errors| {
        anyhow::anyhow!(
            errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    match accounts::create_active_user(mysql, &account).await {
        Ok(id) => {
            println!(
                "created {} user {} (id {id})",
                role.label().to_lowercase(),
                account.username.as_str()
            );
            Ok(())
        }
        Err(AppError::Invalid(errors)) => anyhow::bail!(
            errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// Seeds the demo data in the background, waiting for MySQL if it is not up yet.
fn spawn_demo_seed(mysql: sqlx::MySqlPool) {
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            match accounts::seed_demo_accounts(&mysql).await {
                Ok(n) => {
                    tracing::info!(created = n, "demo accounts ready");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "demo accounts not seeded yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    });
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let databases = cli.db.databases()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let options = crate::leptos_options(cli.serve.site_addr);
            let app = Application::build(&databases, &cli.serve, options).await?;
            if cli.serve.seed_demo {
                spawn_demo_seed(app.state().mysql.clone());
            }
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
        Command::User {
            action:
                UserCommand::Create {
                    username,
                    email,
                    role,
                },
        } => {
            let (mysql, _) = startup::connect(&databases).await?;
            app::server::db::MIGRATOR
                .run(&mysql)
                .await
                .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
            create_user(&mysql, username, email, role).await?;
        }
    }
    Ok(())
}
