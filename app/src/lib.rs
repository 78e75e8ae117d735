//! The sales portal: routes, pages, shared types and server functions.
//!
//! Compiled twice: with `ssr` into the axum server, with `hydrate` into the WASM
//! bundle. Server-only modules sit behind `#[cfg(feature = "ssr")]`.

pub mod api;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    components::{A, Route, Router, Routes},
    path,
};

/// The HTML document around the app, rendered only on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light"/>
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

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/portal.css"/>
        <Title formatter=|title: String| format!("{title} · Supply Co. sales portal")/>
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"▤"</span>
                    " Supply Co. "
                    <span class="brand-sub">"sales portal"</span>
                </A>
            </header>
            <main id="main" class="page">
                <Routes fallback=pages::NotFound>
                    <Route path=path!("") view=pages::HomePage/>
                </Routes>
            </main>
        </Router>
    }
}
