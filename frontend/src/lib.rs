//! WASM entry point: hydrates the server-rendered HTML produced by `app::App`.

use std::cell::RefCell;
use wasm_bindgen::{JsCast, closure::Closure, prelude::wasm_bindgen};

thread_local! {
    /// Where the last link clicked leads: a failed chunk download happens while the
    /// router fetches that page's code, before the address bar shows it.
    static HEADING_TO: RefCell<Option<String>> = const { RefCell::new(None) };
}

#[wasm_bindgen]
pub fn hydrate() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        offer_reload();
    }));
    remember_link_targets();
    // Asynchronous, because the page's own code may be a chunk that loads first
    // (`cargo leptos --split`); the marker waits for the whole hydration.
    wasm_bindgen_futures::spawn_local(async {
        let Some(body) = leptos::prelude::document().body() else {
            return;
        };
        leptos::mount::hydrate_from_async(body.clone(), app::App)
            .await
            .forget();
        app::live::page_hydrated();
        // A marker for the end-to-end journeys: clicks after this run client-side.
        let _ = body.set_attribute("data-hydrated", "true");
    });
}

fn remember_link_targets() {
    let on_click =
        Closure::<dyn Fn(leptos::web_sys::Event)>::new(|event: leptos::web_sys::Event| {
            let link = event
                .target()
                .and_then(|t| t.dyn_into::<leptos::web_sys::Element>().ok())
                .and_then(|el| el.closest("a[href]").ok().flatten())
                .and_then(|a| a.get_attribute("href"));
            HEADING_TO.with(|to| *to.borrow_mut() = link);
        });
    // Capture phase: seen before the router handles the click.
    let _ = leptos::prelude::document().add_event_listener_with_callback_and_bool(
        "click",
        on_click.as_ref().unchecked_ref(),
        true,
    );
    on_click.forget();
}

/// After a panic the WASM module is dead: today the only panic users meet is a page's
/// code chunk that failed to download (the split loader of Leptos 0.8 panics then). The
/// page is left as it was, with a notice and a plain link that loads the page the user
/// was going to afresh from the server (`rel="external"` keeps the dead router out of it).
fn offer_reload() {
    let document = leptos::prelude::document();
    let (Some(body), Ok(notice), Ok(link)) = (
        document.body(),
        document.create_element("div"),
        document.create_element("a"),
    ) else {
        return;
    };
    let href = HEADING_TO
        .with(|to| to.borrow().clone())
        .or_else(|| document.location().and_then(|l| l.href().ok()))
        .unwrap_or_else(|| "/".into());
    let _ = notice.set_attribute("role", "alert");
    let _ = notice.set_attribute("class", "load-failed");
    notice.set_text_content(Some(
        "Part of this page could not be loaded, perhaps because the connection dropped. ",
    ));
    let _ = link.set_attribute("href", &href);
    let _ = link.set_attribute("rel", "external");
    let _ = link.set_attribute("class", "btn");
    link.set_text_content(Some("Retry"));
    let _ = notice.append_child(&link);
    let _ = body.prepend_with_node_1(&notice);
}
