use clap::Parser;
use server::cli::{self, Cli};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A missing .env is normal; the environment may carry the settings instead.
    let _ = dotenvy::dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let first = e.to_string();
            eprintln!("{}", first.lines().next().unwrap_or("invalid arguments"));
            return ExitCode::from(2);
        }
    };
    server::telemetry::init(&cli.log_level);
    // Unoptimized (debug) builds need more than the default 2 MiB of stack per worker
    // to render the larger pages on the server.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
