//! The sales portal: routes, pages, shared types and server functions.
//!
//! Compiled twice: with `ssr` into the axum server, with `hydrate` into the WASM
//! bundle. Server-only modules sit behind `#[cfg(feature = "ssr")]`.

#![recursion_limit = "256"]

pub mod api;
pub mod auth;
pub mod components;
pub mod live;
pub mod locale;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;
pub mod webauthn;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::{
    Lazy, SsrMode,
    components::{A, Route, Router, Routes},
    path,
};

/// The HTML document around the app, rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy(&options);
    #[cfg(feature = "ssr")]
    let stylesheet = stylesheet_href(&options);
    #[cfg(not(feature = "ssr"))]
    let stylesheet = String::new();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
                <link rel="stylesheet" id="leptos" href=stylesheet/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The stylesheet's address: `/pkg/<name>.css`, or under `hash-files` (release builds)
/// the hashed name from the hash file cargo-leptos writes beside the server binary. Read
/// once: the file only changes with a new build (`leptos_meta::HashedStylesheet` reads it
/// with blocking I/O on every page it renders).
#[cfg(feature = "ssr")]
fn stylesheet_href(options: &LeptosOptions) -> String {
    static HREF: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HREF.get_or_init(|| {
        let hash = options
            .hash_files
            .then(|| {
                let dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
                let hashes = std::fs::read_to_string(dir.join(options.hash_file.as_ref())).ok()?;
                hashes.lines().find_map(|line| {
                    let (kind, hash) = line.split_once(':')?;
                    (kind.trim() == "css").then(|| hash.trim().to_string())
                })
            })
            .flatten();
        let name = match hash {
            Some(hash) => format!("{}.{hash}", options.output_name),
            None => options.output_name.to_string(),
        };
        format!("/{}/{name}.css", options.site_pkg_dir)
    })
    .clone()
}

/// The page's Content-Security-Policy: scripts only from the site and the inline
/// hydration scripts carrying this response's nonce (Leptos adds it to them), WebAssembly
/// allowed to compile, styles only from the site, no plugins, no framing, forms posting
/// only here. In development the reload socket (`cargo leptos watch`) may connect too.
#[cfg(feature = "ssr")]
fn content_security_policy(options: &LeptosOptions) {
    let Some(response) = use_context::<leptos_axum::ResponseOptions>() else {
        return;
    };
    let nonce = leptos::nonce::use_nonce()
        .map(|n| format!(" 'nonce-{n}'"))
        .unwrap_or_default();
    // The reload script connects to the host in the address bar (`localhost`,
    // `127.0.0.1` or the machine's name), so only the port is pinned.
    let reload = match options.env {
        leptos::config::Env::DEV => {
            let port = options.reload_external_port.unwrap_or(options.reload_port);
            format!(" ws://*:{port} wss://*:{port}")
        }
        leptos::config::Env::PROD => String::new(),
    };
    let policy = format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; font-src 'self'; connect-src 'self'{reload}; object-src 'none'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    );
    if let Ok(value) = http::HeaderValue::from_str(&policy) {
        response.insert_header(http::header::CONTENT_SECURITY_POLICY, value);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let auth = auth::Auth::provide();
    // The live stream is for accounts that may see sales: active, past their second
    // step, and for customers, with a confirmed address.
    let streaming = Signal::derive(move || {
        auth.signed_in()
            .filter(|u| {
                u.status == model::AccountStatus::Active
                    && (u.role != model::Role::Customer || u.email_verified)
                    && !matches!(
                        u.second_factor,
                        model::SecondFactor::Pending | model::SecondFactor::Missing
                    )
            })
            // Everything the stream's audience depends on.
            .map(|u| format!("{}:{}:{}:{}", u.id, u.role, u.email, u.email_verified))
    });
    // Signed out elsewhere (another tab, "log out everywhere", a timeout): the guards
    // send the page to the login once the server says so.
    live::connect(
        live::Live::provide(),
        streaming,
        Callback::new(move |()| auth.refresh()),
    );
    // Guarded pages render in async mode, so a redirect to /login (or a 403) is decided
    // before the first byte is sent and arrives as a real HTTP redirect or status. The
    // confirmation page too: it names the account before anyone confirms, without
    // JavaScript as well.
    let guarded = SsrMode::Async;
    view! {
        <Title formatter=|title: String| format!("{title} · Supply Co. sales portal")/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <TopBar/>
            <main id="main" class="page">
                <Routes fallback=pages::NotFound>
                    <Route path=path!("") view=pages::HomePage/>
                    <Route path=path!("login") view=pages::LoginPage/>
                    <Route path=path!("login/second-step") view={Lazy::<pages::SecondStepRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("register") view={Lazy::<pages::RegisterRoute>::new()}/>
                    <Route path=path!("reset-password") view={Lazy::<pages::ResetPasswordRoute>::new()}/>
                    <Route path=path!("forgot-password") view={Lazy::<pages::ForgotPasswordRoute>::new()}/>
                    <Route path=path!("verify-email") view={Lazy::<pages::VerifyEmailRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("dashboard") view=pages::DashboardRedirect ssr=guarded.clone()/>
                    <Route path=path!("awaiting-approval") view={Lazy::<pages::AwaitingApprovalRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("profile") view={Lazy::<pages::ProfileRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("profile/two-factor") view={Lazy::<pages::TwoFactorRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("customer") view={Lazy::<pages::CustomerRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("worker") view={Lazy::<pages::WorkerRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("worker/sales/new") view={Lazy::<pages::NewSaleRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("worker/sales/:id") view={Lazy::<pages::EditSaleRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("management") view={Lazy::<pages::ManagementRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("management/users") view={Lazy::<pages::UsersAdminRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("imports") view={Lazy::<pages::ImportsRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("imports/:id") view={Lazy::<pages::ImportJobRoute>::new()} ssr=guarded.clone()/>
                    <Route path=path!("sales/:id/history") view={Lazy::<pages::SaleHistoryRoute>::new()} ssr=guarded/>
                </Routes>
            </main>
        </Router>
    }
}

/// Brand, the navigation the signed-in role may use, and the account menu.
#[component]
fn TopBar() -> impl IntoView {
    let auth = auth::use_auth();
    let user = move || auth.signed_in();
    auth::on_success(auth.logout.version(), auth.logout.value(), |_| {
        (None, "/login".to_string())
    });
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"▤"</span>
                " Supply Co. "
                <span class="brand-sub">"sales portal"</span>
            </A>
            <Transition fallback=|| ()>
                {move || match user() {
                    Some(u) => {
                        let active = u.status == model::AccountStatus::Active;
                        let links: Vec<(&'static str, &'static str)> = match (active, u.role) {
                            (false, _) => vec![("/awaiting-approval", "Approval")],
                            (true, model::Role::Customer) => vec![("/customer", "My purchases")],
                            (true, model::Role::TechnicalWorker) => vec![("/worker", "Sales"), ("/imports", "Import")],
                            (true, model::Role::SeniorManagement) => vec![
                                ("/management", "Management"),
                                ("/worker", "Sales"),
                                ("/imports", "Import"),
                                ("/management/users", "Users"),
                            ],
                        };
                        view! {
                            <nav class="nav" aria-label="Main">
                                {links.into_iter().map(|(href, label)| view! { <A href=href>{label}</A> }).collect_view()}
                            </nav>
                            <div class="account">
                                <live::LiveBadge/>
                                <A href="/profile" attr:class="who">{u.username} " · " {u.role.label()}</A>
                                <ActionForm action=auth.logout>
                                    <button type="submit" class="btn secondary">"Log out"</button>
                                </ActionForm>
                            </div>
                        }.into_any()
                    }
                    None => view! {
                        <nav class="nav" aria-label="Main"></nav>
                        <div class="account">
                            <A href="/login">"Log in"</A>
                            <A href="/register" attr:class="btn">"Register"</A>
                        </div>
                    }.into_any(),
                }}
            </Transition>
        </header>
    }
}

#[cfg(test)]
mod layering {
    use std::path::Path;

    /// Every `.rs` file under `dir`, with its text.
    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir)
            .expect("a source directory")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                out.push((path.display().to_string(), text));
            }
        }
    }

    /// Server code never reaches into the browser's modules: they import the server
    /// functions back, and the server must build and read without them.
    #[test]
    fn server_code_imports_no_ui_module() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&root.join("server"), &mut files);
        sources(&root.join("model"), &mut files);
        assert!(files.len() > 20, "the sources were found");
        for (path, text) in files {
            for ui in [
                "crate::auth::",
                "crate::pages",
                "crate::components",
                "crate::live::",
                "crate::locale",
            ] {
                assert!(!text.contains(ui), "{path} uses {ui}");
            }
        }
    }
}
