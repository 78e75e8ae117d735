//! The axum server: configuration, startup and the command-line interface.

pub mod assets;
pub mod cli;
pub mod compression;
pub mod config;
pub mod layers;
pub mod startup;
pub mod telemetry;

/// Leptos options from cargo-leptos's environment, with the project's defaults when
/// the binary runs on its own (tests, `cargo run`).
pub fn leptos_options(site_addr: std::net::SocketAddr) -> leptos::config::LeptosOptions {
    let mut options = leptos::config::get_configuration(None)
        .map(|c| c.leptos_options)
        .unwrap_or_else(|_| {
            leptos::config::LeptosOptions::builder()
                .output_name("portal")
                .build()
        });
    if options.output_name.is_empty() {
        options.output_name = "portal".into();
    }
    options.site_addr = site_addr;
    options
}
