//! Small building blocks shared by the pages.

use crate::model::AppError;
use leptos::prelude::*;

/// The error of an action's latest result, if it failed.
pub fn action_error<T: Send + Sync + 'static>(
    value: MappedSignal<Option<Result<T, AppError>>>,
) -> Signal<Option<AppError>> {
    Signal::derive(move || value.with(|v| v.as_ref().and_then(|r| r.as_ref().err().cloned())))
}

/// The error of an action created outside the routes (the auth actions live for the
/// whole app): before it has run here, the one its form came back with when it was
/// posted without JavaScript (the server redirects to the form's page with the error in
/// the URL; actions created inside the routes pick that up by themselves).
pub fn app_action_error<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: leptos::server_fn::ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let posted = use_context::<leptos::server::ServerActionError>()
        .filter(|e| e.path() == S::PATH)
        .map(|e| leptos::server_fn::error::ServerFnUrlError::<AppError>::decode_err(e.err()));
    let value = action.value();
    Signal::derive(move || match value.get() {
        Some(result) => result.err(),
        None => posted.clone(),
    })
}

/// The server's message for one field of a submitted form, if any.
pub fn field_error(error: Signal<Option<AppError>>, field: &'static str) -> Signal<Option<String>> {
    Signal::derive(move || error.with(|e| e.as_ref().and_then(|e| e.field_message(field))))
}

/// A form-level error: anything but field messages, which show next to their inputs.
#[component]
pub fn FormError(#[prop(into)] error: Signal<Option<AppError>>) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|e| !matches!(e, AppError::Invalid(_)))
            .map(|e| {
                view! { <p class="error" role="alert">{e.to_string()}</p> }
            })
    }
}

/// The second-factor code that sensitive changes ask for once the login's own proof
/// is more than ten minutes old (`second_factor::require_fresh_proof`).
#[component]
pub fn FreshCode(id: &'static str, error: Signal<Option<AppError>>) -> impl IntoView {
    let hint = format!("{id}-hint");
    view! {
        <div class="field">
            <label for=id>"Code from your authenticator app"</label>
            <input id=id name="code" inputmode="numeric" autocomplete="one-time-code" aria-describedby=hint.clone()/>
            <p id=hint class="muted small">"Needed when you last gave one more than 10 minutes ago. A recovery code works too."</p>
            <FieldMessage error field="code"/>
        </div>
    }
}

/// A field message from the server under an input that manages itself.
#[component]
pub fn FieldMessage(error: Signal<Option<AppError>>, field: &'static str) -> impl IntoView {
    let message = field_error(error, field);
    move || {
        message
            .get()
            .map(|m| view! { <span class="field-error">{m}</span> })
    }
}

/// Marks an input in the server's HTML (see `Field`).
const SERVER_RENDERED: &str = "data-server-rendered";

/// A labelled input with its message below it, wired for screen readers: every text
/// input of the portal. A field of a plain HTML form has a `name` (its id is then
/// `f-{name}`); a field only a component reads (the sale editor's) has an `id`.
#[component]
pub fn Field(
    label: &'static str,
    #[prop(optional)] name: Option<&'static str>,
    #[prop(optional, into)] id: Option<String>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] autocomplete: Option<&'static str>,
    #[prop(optional)] hint: Option<&'static str>,
    #[prop(into)] value: RwSignal<String>,
    /// The message to show, if any (client-side check or server reply).
    #[prop(into)]
    error: Signal<Option<String>>,
    #[prop(optional)] on_blur: Option<Callback<()>>,
) -> impl IntoView {
    let id = id.unwrap_or_else(|| format!("f-{}", name.unwrap_or_default()));
    let err_id = format!("{id}-error");
    let hint_id = format!("{id}-hint");
    let described = {
        let (hint_id, err_id) = (hint_id.clone(), err_id.clone());
        move || {
            let mut ids = Vec::new();
            if hint.is_some() {
                ids.push(hint_id.clone());
            }
            if error.get().is_some() {
                ids.push(err_id.clone());
            }
            ids.join(" ")
        }
    };
    // Text typed before the page hydrated is in the input, not yet in `value`. An input
    // the server rendered carries a marker; the first run after hydration adopts what
    // it holds and drops the marker. Every other run (and an input rendered here, or
    // one a re-render reused, which holds a previous form's text) carries `value` into
    // the input.
    let input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        let wanted = value.get();
        let Some(el) = input.get() else {
            return;
        };
        if el.has_attribute(SERVER_RENDERED) {
            let _ = el.remove_attribute(SERVER_RENDERED);
            let typed = el.value();
            if typed != wanted {
                value.set(typed);
            }
        } else if el.value() != wanted {
            el.set_value(&wanted);
        }
    });
    view! {
        <div class="field">
            <label for=id.clone()>{label}</label>
            <input
                node_ref=input
                id=id.clone()
                name=name
                type=kind
                autocomplete=autocomplete
                value=value.get_untracked()
                data-server-rendered=cfg!(feature = "ssr").then_some("")
                on:input=move |ev| value.set(event_target_value(&ev))
                on:blur=move |_| { if let Some(cb) = on_blur { cb.run(()) } }
                aria-invalid=move || error.get().is_some().to_string()
                aria-describedby=described
            />
            {hint.map(|h| view! { <span class="hint" id=hint_id>{h}</span> })}
            {move || error.get().map(|m| view! { <span class="field-error" id=err_id.clone()>{m}</span> })}
        </div>
    }
}

pub fn format_time(t: &chrono::DateTime<chrono::Utc>) -> String {
    crate::model::time::minute_utc(t)
}

/// "New password" and "Confirm new password", each with the server's message.
#[component]
pub fn NewPasswordFields(
    error: Signal<Option<AppError>>,
    id_prefix: &'static str,
) -> impl IntoView {
    let (new_id, confirm_id) = (format!("{id_prefix}-new"), format!("{id_prefix}-confirm"));
    view! {
        <div class="field">
            <label for=new_id.clone()>"New password"</label>
            <input id=new_id name="new_password" type="password" autocomplete="new-password" required/>
            <FieldMessage error field="new_password"/>
        </div>
        <div class="field">
            <label for=confirm_id.clone()>"Confirm new password"</label>
            <input id=confirm_id name="confirm_password" type="password" autocomplete="new-password" required/>
            <FieldMessage error field="confirm_password"/>
        </div>
    }
}

/// A failed load, said in words: which store is down, or what went wrong. The rest of
/// the page keeps working.
#[component]
pub fn ErrorNote(error: AppError) -> impl IntoView {
    let hint = match &error {
        AppError::Unavailable(_) => {
            Some("The rest of the portal keeps working; this part comes back by itself.")
        }
        AppError::Unauthorized => Some("Your session may have ended."),
        _ => None,
    };
    // A refused request says what to change, not only that something was wrong.
    let details: Vec<String> = match &error {
        AppError::Invalid(fields) => fields.iter().map(|f| f.message.clone()).collect(),
        _ => Vec::new(),
    };
    view! {
        <div class="error" role="alert" data-testid="error-note">
            <p>{error.to_string()}</p>
            {details.into_iter().map(|d| view! { <p>{d}</p> }).collect_view()}
            {hint.map(|h| view! { <p class="small">{h}</p> })}
        </div>
    }
}

/// A table that may scroll sideways on a narrow screen. The wrapper is named and takes
/// keyboard focus, so it can be scrolled without a mouse (WCAG 2.1.1).
#[component]
pub fn ScrollTable(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <div class="table-wrap" role="region" aria-label=label tabindex="0">
            {children()}
        </div>
    }
}

/// Previous / next page links, the first and last pages, and those around this one;
/// `href` builds the link for a page number. Plain links (the router still handles
/// them): its `A` would mark every page of the same path `aria-current`, whatever the
/// query says.
#[component]
pub fn Pager(page: u32, pages: u32, #[prop(into)] href: Callback<u32, String>) -> impl IntoView {
    let numbers = page_numbers(page, pages);
    view! {
        <nav class="pager" aria-label="Pages">
            {(page > 1).then(|| view! { <a href=href.run(page - 1) rel="prev">"← Previous"</a> })}
            {(pages > 1).then(|| view! {
                <ol class="page-numbers">
                    {numbers.into_iter().map(|n| match n {
                        None => view! { <li aria-hidden="true">"…"</li> }.into_any(),
                        Some(n) if n == page => view! {
                            <li><span aria-current="page">{n}</span></li>
                        }.into_any(),
                        Some(n) => view! {
                            <li><a href=href.run(n) aria-label=format!("Page {n}")>{n}</a></li>
                        }.into_any(),
                    }).collect_view()}
                </ol>
            })}
            <span data-testid="page-info">"Page " {page} " of " {pages}</span>
            {(page < pages).then(|| view! { <a href=href.run(page + 1) rel="next">"Next →"</a> })}
        </nav>
    }
}

/// The page numbers a pager offers: the first, the last, and two either side of this
/// one; `None` where it skips some.
fn page_numbers(page: u32, pages: u32) -> Vec<Option<u32>> {
    let mut shown: Vec<u32> = [1, pages]
        .into_iter()
        .chain(page.saturating_sub(2).max(1)..=page.saturating_add(2).min(pages))
        .collect();
    shown.sort_unstable();
    shown.dedup();
    let mut out = Vec::new();
    for (i, n) in shown.iter().enumerate() {
        if i > 0 && n - shown[i - 1] > 1 {
            out.push(None);
        }
        out.push(Some(*n));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::page_numbers;

    #[test]
    fn a_pager_offers_both_ends_and_the_pages_near_this_one() {
        assert_eq!(page_numbers(1, 1), [Some(1)]);
        assert_eq!(
            page_numbers(1, 200),
            [Some(1), Some(2), Some(3), None, Some(200)]
        );
        assert_eq!(
            page_numbers(50, 200),
            [
                Some(1),
                None,
                Some(48),
                Some(49),
                Some(50),
                Some(51),
                Some(52),
                None,
                Some(200)
            ]
        );
        assert_eq!(
            page_numbers(4, 5),
            [Some(1), Some(2), Some(3), Some(4), Some(5)]
        );
    }
}
