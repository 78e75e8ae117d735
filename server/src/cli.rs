//! `server [COMMAND]`: serve (default), migrate, and the maintenance commands.

use crate::config::{DbConfig, ServeConfig};
use crate::startup::{self, Application};
use app::model::{AppError, RegistrationInput, Role};
use app::server::auth::accounts;
use app::server::sales::import;
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
    /// Import sales from MongoDB Extended JSON (one document per line, or an array)
    /// into both stores. Documents already present are skipped.
    Import {
        /// The file to read.
        file: std::path::PathBuf,
        /// Validate only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write deterministic synthetic sales (the real dataset's distributions) as
    /// relaxed Extended JSON, one per line.
    Generate {
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file, or - for standard output.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Reconcile the MySQL backup with MongoDB (the truth): copy what is missing,
    /// update what differs, delete extras. Safe to rerun; an interrupted run is simply
    /// run again.
    Sync {
        /// Report the drift without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Sales read and compared per batch.
        #[arg(long, default_value_t = app::server::sales::sync::DEFAULT_BATCH)]
        batch_size: usize,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Seal every second-factor secret under the newest key of TOTP_KEYS (after adding
    /// a key in front, before dropping the old one). Prints how many changed.
    ResealTotpSecrets,
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
    match accounts::create_active_user(mysql, &account, "command line").await {
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
fn spawn_demo_seed(
    writer: app::server::sales::dual_write::Writer,
    keys: std::sync::Arc<app::server::auth::secret_keys::SecretKeys>,
) {
    tokio::spawn(async move {
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            match app::server::demo::seed(&writer, &keys).await {
                Ok((accounts, sales)) => {
                    tracing::info!(accounts, sales, "demo data ready");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "demo data not seeded yet; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    });
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        // The only command that needs no database.
        Command::Generate { count, seed, out } => generate(count, seed, &out).await,
        Command::Serve => {
            let databases = cli.db.databases()?;
            let options = crate::leptos_options(cli.serve.site_addr);
            let app = Application::build(&databases, &cli.serve, options).await?;
            if cli.serve.seed_demo {
                spawn_demo_seed(app.state().writer.clone(), app.state().secret_keys.clone());
            }
            Ok(app.run_until_stopped().await?)
        }
        Command::ResealTotpSecrets => {
            // Never the loopback development key: resealing a real database with it
            // would undo the protection.
            let spec = cli.serve.totp_keys.as_deref().ok_or_else(|| {
                anyhow::anyhow!("set TOTP_KEYS to the keys, newest first, to reseal with")
            })?;
            let keys = app::server::auth::secret_keys::SecretKeys::parse(spec)
                .map_err(|e| anyhow::anyhow!(e))?;
            let (mysql, _) = connect(&cli.db).await?;
            migrate(&mysql).await?;
            let sealed = app::server::auth::secret_keys::reseal_all(&mysql, &keys).await?;
            println!("{sealed} second-factor secrets sealed under the newest key");
            Ok(())
        }
        Command::Migrate => {
            let (mysql, _) = connect(&cli.db).await?;
            migrate(&mysql).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Import { file, dry_run } => {
            let writer = connect_writer(&cli.db).await?;
            if !dry_run {
                migrate(&writer.backup().pool).await?;
            }
            import(&writer, &file, dry_run, cli.db.databases()?.lease).await
        }
        Command::Sync {
            dry_run,
            batch_size,
        } => {
            let writer = connect_writer(&cli.db).await?;
            migrate(&writer.backup().pool).await?;
            sync(&writer, dry_run, batch_size).await
        }
        Command::User {
            action:
                UserCommand::Create {
                    username,
                    email,
                    role,
                },
        } => {
            let (mysql, _) = connect(&cli.db).await?;
            migrate(&mysql).await?;
            create_user(&mysql, username, email, role).await
        }
    }
}

async fn connect(db: &DbConfig) -> anyhow::Result<(sqlx::MySqlPool, mongodb::Database)> {
    startup::connect(&db.databases()?).await
}

/// A dual writer with the configured leases, for the commands that write sales.
async fn connect_writer(db: &DbConfig) -> anyhow::Result<app::server::sales::dual_write::Writer> {
    let databases = db.databases()?;
    let (mysql, mongo) = startup::connect(&databases).await?;
    Ok(app::server::sales::dual_write::writer_with(
        mysql,
        mongo,
        databases.lease,
    ))
}

async fn migrate(mysql: &sqlx::MySqlPool) -> anyhow::Result<()> {
    app::server::db::migrate(mysql)
        .await
        .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))
}

/// After an import stopped, rolls back the batch it interrupted (if its compensation
/// failed, its intents are left to recovery): a CLI import may run where no server
/// does. Waits at most one lease and a write budget, after which any serving instance's
/// recovery, or the next import, finishes the work.
async fn settle_interrupted(
    writer: &app::server::sales::dual_write::Writer,
    lease: app::server::sales::dual_write::LeasePolicy,
) {
    let until = std::time::Instant::now() + lease.ttl + lease.write_budget;
    let mut told = false;
    loop {
        if let Err(e) = writer.recover().await {
            eprintln!("recovery could not run: {e}");
            return;
        }
        match app::server::sales::dual_write::intent_counts(&writer.backup().pool).await {
            Ok(open) if open.pending + open.needs_repair == 0 => return,
            Ok(_) if std::time::Instant::now() < until => {
                if !std::mem::replace(&mut told, true) {
                    eprintln!(
                        "waiting for the interrupted batch's leases to run out, to roll it back…"
                    );
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            Ok(open) => {
                eprintln!(
                    "{} edits are still open; a running server's recovery (or the next import) rolls them back",
                    open.pending + open.needs_repair
                );
                return;
            }
            Err(e) => {
                eprintln!("could not count open edits: {e}");
                return;
            }
        }
    }
}

fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

async fn import(
    writer: &app::server::sales::dual_write::Writer,
    file: &std::path::Path,
    dry_run: bool,
    lease: app::server::sales::dual_write::LeasePolicy,
) -> anyhow::Result<()> {
    let input = std::fs::File::open(file)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    // indicatif draws nothing when stderr is not a terminal.
    let bar = progress_bar(size, "{bar:40} {bytes}/{total_bytes} · {msg} · ETA {eta}");
    let started = std::time::Instant::now();
    let counter = bytes.clone();
    let report = import::import_reader(writer, input, dry_run, bytes, |r| {
        bar.set_position(counter.load(std::sync::atomic::Ordering::Relaxed));
        bar.set_message(format!(
            "{} sales, {:.0}/s",
            r.read,
            r.read as f64 / started.elapsed().as_secs_f64().max(1e-3)
        ));
    })
    .await;
    let report = match report {
        Ok(report) => report,
        Err(stopped) => {
            bar.finish_and_clear();
            settle_interrupted(writer, lease).await;
            return Err(anyhow::anyhow!("{stopped}"));
        }
    };
    bar.finish_and_clear();
    let verb = if dry_run { "valid" } else { "inserted" };
    println!(
        "read {}, {verb} {}, skipped as already present {}, rejected {} ({:.1} s)",
        report.read,
        report.inserted,
        report.skipped,
        report.rejected.len(),
        started.elapsed().as_secs_f64()
    );
    for r in &report.rejected {
        println!("  rejected {}: {}", r.at, r.reason);
    }
    anyhow::ensure!(
        report.rejected.is_empty(),
        "{} record(s) rejected; they were written to neither store",
        report.rejected.len()
    );
    Ok(())
}

async fn sync(
    writer: &app::server::sales::dual_write::Writer,
    dry_run: bool,
    batch_size: usize,
) -> anyhow::Result<()> {
    use app::server::sales::sync::{self, SyncOptions};
    anyhow::ensure!(batch_size > 0, "--batch-size must be at least 1");
    let mut options = SyncOptions::new(app::model::SyncTrigger::Cli);
    options.dry_run = dry_run;
    options.batch = batch_size;
    // A run killed a moment ago holds its lease until the lease runs out.
    options.wait_secs = (2 * writer.policy().ttl.as_secs() + 5) as u32;
    let r = sync::run(writer, options)
        .await
        .map_err(|e| anyhow::anyhow!("sync stopped: {e}"))?;
    let (verb_c, verb_u, verb_d) = if dry_run {
        ("missing", "differing", "extra")
    } else {
        ("created", "updated", "deleted")
    };
    println!(
        "sync run {}{}: scanned {}, {verb_c} {}, {verb_u} {}, {verb_d} {}, \
         left for the next run (edited meanwhile) {}, invalid in MongoDB {} ({:.2} s)",
        r.id,
        if dry_run { " (dry run)" } else { "" },
        r.scanned,
        r.created,
        r.updated,
        r.deleted,
        r.skipped,
        r.invalid,
        r.duration_ms().unwrap_or(0) as f64 / 1000.0
    );
    Ok(())
}

async fn generate(count: u64, seed: u64, out: &std::path::Path) -> anyhow::Result<()> {
    let out = out.to_path_buf();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        use std::io::Write;
        let sink: Box<dyn Write> = if out.as_os_str() == "-" {
            Box::new(std::io::stdout().lock())
        } else {
            Box::new(
                std::fs::File::create(&out)
                    .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?,
            )
        };
        let mut sink = std::io::BufWriter::with_capacity(1 << 20, sink);
        let bar = progress_bar(count, "{bar:40} {pos}/{len} sales · {per_sec} · ETA {eta}");
        for (i, draft) in app::server::sales::generate::sales(seed)
            .take(count as usize)
            .enumerate()
        {
            writeln!(
                sink,
                "{}",
                app::server::sales::generate::to_extended_json(&draft)
            )?;
            if i % 10_000 == 0 {
                bar.set_position(i as u64);
            }
        }
        sink.flush()?;
        bar.finish_and_clear();
        Ok(())
    })
    .await?
}
