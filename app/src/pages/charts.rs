//! Small SVG charts: rendered on the server, interactive once hydrated (the focused or
//! hovered bar's figures show under the chart; series can be switched).

use leptos::prelude::*;

/// One bar: its label, its length, and the exact figures to show for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub detail: String,
}

fn scale(bars: &[Bar]) -> f64 {
    bars.iter()
        .map(|b| b.value)
        .fold(0.0, f64::max)
        .max(f64::MIN_POSITIVE)
}

/// The figures of the bar under the pointer (or keyboard focus).
#[component]
fn Readout(current: RwSignal<Option<String>>, hint: &'static str) -> impl IntoView {
    view! {
        <p class="readout" aria-live="polite">
            {move || current.get().unwrap_or_else(|| hint.to_string())}
        </p>
    }
}

/// Horizontal bars, one per label (stores, items).
#[component]
pub fn BarChart(title: &'static str, bars: Vec<Bar>) -> impl IntoView {
    let current = RwSignal::new(None::<String>);
    let max = scale(&bars);
    let row = 30.0;
    let height = (bars.len() as f64 * row).max(row);
    let rows = bars
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let y = i as f64 * row;
            let w = (b.value / max * 400.0).max(1.0);
            let detail = format!("{}: {}", b.label, b.detail);
            let (d1, d2, aria) = (detail.clone(), detail.clone(), detail.clone());
            view! {
                <g class="bar" tabindex="0" role="listitem" aria-label=aria
                    on:mouseenter=move |_| current.set(Some(d1.clone()))
                    on:focus=move |_| current.set(Some(d2.clone()))
                    on:mouseleave=move |_| current.set(None)>
                    <title>{detail}</title>
                    <text x="0" y=y + 19.0 class="axis">{b.label.clone()}</text>
                    <rect x="150" y=y + 5.0 width=w height=row - 10.0 rx="3"/>
                </g>
            }
        })
        .collect_view();
    let figure = NodeRef::new();
    view! {
        <figure class="chart" node_ref=figure>
            <figcaption>{title} <SvgDownload title figure/></figcaption>
            <svg viewBox=format!("0 0 560 {height}") role="list" aria-label=title preserveAspectRatio="xMinYMin meet">
                {rows}
            </svg>
            <Readout current hint="Point at a bar for its figures."/>
        </figure>
    }
}

/// Vertical columns over time, with two series to switch between.
#[component]
pub fn ColumnChart(
    title: &'static str,
    labels: Vec<String>,
    first: (&'static str, Vec<(f64, String)>),
    second: (&'static str, Vec<(f64, String)>),
) -> impl IntoView {
    let current = RwSignal::new(None::<String>);
    let show_second = RwSignal::new(false);
    let n = labels.len().max(1) as f64;
    let width = 600.0;
    let height = 220.0;
    let slot = width / n;
    let series = move |values: Vec<(f64, String)>, labels: Vec<String>| {
        let max = values
            .iter()
            .map(|v| v.0)
            .fold(0.0, f64::max)
            .max(f64::MIN_POSITIVE);
        values
            .into_iter()
            .zip(labels)
            .enumerate()
            .map(|(i, ((v, detail), label))| {
                let h = (v / max * (height - 30.0)).max(1.0);
                let x = i as f64 * slot;
                let detail = format!("{label}: {detail}");
                let (d1, d2, aria) = (detail.clone(), detail.clone(), detail.clone());
                view! {
                    <g class="bar" tabindex="0" role="listitem" aria-label=aria
                        on:mouseenter=move |_| current.set(Some(d1.clone()))
                        on:focus=move |_| current.set(Some(d2.clone()))
                        on:mouseleave=move |_| current.set(None)>
                        <title>{detail}</title>
                        <rect x=x + slot * 0.1 y=height - 20.0 - h width=slot * 0.8 height=h rx="2"/>
                    </g>
                }
            })
            .collect_view()
    };
    let first_view = series(first.1, labels.clone());
    let second_view = series(second.1, labels.clone());
    let (first_label, second_label) = (first.0, second.0);
    // "YYYY-MM" labels: month names for one year or less, else one label per year.
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let short = labels.len() <= 12;
    let ticks = labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let (year, month) = l.split_once('-')?;
            let text = if short {
                MONTHS.get(month.parse::<usize>().ok()?.checked_sub(1)?)?.to_string()
            } else if month == "01" || i == 0 {
                year.to_string()
            } else {
                return None;
            };
            Some(view! { <text x=i as f64 * slot + slot / 2.0 y=height - 4.0 class="axis" text-anchor="middle">{text}</text> })
        })
        .collect_view();
    let figure = NodeRef::new();
    view! {
        <figure class="chart wide" node_ref=figure>
            <figcaption>
                {title}
                <SvgDownload title figure/>
                <span class="toggle" role="group" aria-label="Series">
                    <button type="button" class="btn small" class:secondary=move || show_second.get()
                        aria-pressed=move || (!show_second.get()).to_string()
                        on:click=move |_| show_second.set(false)>{first_label}</button>
                    <button type="button" class="btn small" class:secondary=move || !show_second.get()
                        aria-pressed=move || show_second.get().to_string()
                        on:click=move |_| show_second.set(true)>{second_label}</button>
                </span>
            </figcaption>
            <svg viewBox=format!("0 0 {width} {height}") role="list" aria-label=title>
                <g class:hidden=move || show_second.get()>{first_view}</g>
                <g class="alt" class:hidden=move || !show_second.get()>{second_view}</g>
                {ticks}
            </svg>
            <Readout current hint="Point at a month for its figures."/>
        </figure>
    }
}

/// Shares of a whole as one stacked bar with a legend (purchase methods).
#[component]
pub fn ShareChart(title: &'static str, parts: Vec<Bar>) -> impl IntoView {
    let current = RwSignal::new(None::<String>);
    let total: f64 = parts
        .iter()
        .map(|p| p.value)
        .sum::<f64>()
        .max(f64::MIN_POSITIVE);
    let mut x = 0.0;
    let segments = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let w = p.value / total * 600.0;
            let share = p.value / total * 100.0;
            let detail = format!("{}: {share:.1}% · {}", p.label, p.detail);
            let (d1, d2, aria) = (detail.clone(), detail.clone(), detail.clone());
            let start = x;
            x += w;
            view! {
                <g class=format!("bar c{i}") tabindex="0" role="listitem" aria-label=aria
                    on:mouseenter=move |_| current.set(Some(d1.clone()))
                    on:focus=move |_| current.set(Some(d2.clone()))
                    on:mouseleave=move |_| current.set(None)>
                    <title>{detail}</title>
                    <rect x=start y="0" width=w height="40"/>
                </g>
            }
        })
        .collect_view();
    let legend = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let share = p.value / total * 100.0;
            view! { <li><span class=format!("swatch c{i}")></span>{p.label.clone()} " " {format!("{share:.1}%")}</li> }
        })
        .collect_view();
    let figure = NodeRef::new();
    view! {
        <figure class="chart" node_ref=figure>
            <figcaption>{title} <SvgDownload title figure/></figcaption>
            <svg viewBox="0 0 600 40" role="list" aria-label=title preserveAspectRatio="none">{segments}</svg>
            <ul class="legend">{legend}</ul>
            <Readout current hint="Point at a share for its figures."/>
        </figure>
    }
}

#[cfg(any(feature = "hydrate", test))]
/// The chart's styles, inlined into a downloaded SVG so it looks the same outside the
/// page (the site's colours; the series not shown stays hidden).
const SVG_STYLE: &str = ".bar rect{fill:#1f5fbf}.alt .bar rect,.c1 rect{fill:#2f8f5b}\
.c2 rect{fill:#c27c0e}.axis{font:12px sans-serif;fill:#566176}.hidden{display:none}";

#[cfg(any(feature = "hydrate", test))]
/// A chart's markup as a file of its own: the SVG namespace, the chart's title and
/// its styles.
pub fn standalone_svg(markup: &str, title: &str) -> String {
    let markup = if markup.contains("xmlns=") {
        markup.to_string()
    } else {
        markup.replacen("<svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"", 1)
    };
    let title = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    match markup.find('>') {
        Some(end) => format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}<title>{title}</title><style>{SVG_STYLE}</style>{}",
            &markup[..=end],
            &markup[end + 1..]
        ),
        None => markup,
    }
}

#[cfg(any(feature = "hydrate", test))]
/// `Revenue by store` → `revenue-by-store.svg`.
fn file_name(title: &str) -> String {
    let slug: Vec<String> = title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    format!("{}.svg", slug.join("-"))
}

/// Saves the chart as it is shown as an SVG file (made in the page: nothing is asked
/// of the server).
#[component]
fn SvgDownload(title: &'static str, figure: NodeRef<leptos::html::Figure>) -> impl IntoView {
    let download = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(figure) = figure.get() {
            save_svg(&figure, title);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = figure;
    };
    view! {
        <button type="button" class="btn small secondary" on:click=download
            aria-label=format!("Download the chart {title} as SVG") data-testid="download-svg">"SVG"</button>
    }
}

#[cfg(feature = "hydrate")]
fn save_svg(figure: &web_sys::HtmlElement, title: &str) {
    use wasm_bindgen::{JsCast, JsValue};
    let Ok(Some(svg)) = figure.query_selector("svg") else {
        return;
    };
    // XML, not `outer_html`: HTML serialization writes entities such as `&nbsp;`
    // that an SVG file may not contain.
    let Ok(markup) = web_sys::XmlSerializer::new().and_then(|x| x.serialize_to_string(&svg)) else {
        return;
    };
    let file = standalone_svg(&markup, title);
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/svg+xml");
    let parts = js_sys::Array::of1(&JsValue::from_str(&file));
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    let link = document()
        .create_element("a")
        .ok()
        .and_then(|a| a.dyn_into::<web_sys::HtmlAnchorElement>().ok());
    if let Some(link) = link {
        link.set_href(&url);
        link.set_download(&file_name(title));
        link.click();
    }
    set_timeout(
        move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        },
        std::time::Duration::from_secs(10),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downloaded_chart_stands_alone() {
        let file = standalone_svg(
            "<svg viewBox=\"0 0 10 10\" role=\"list\"><g class=\"bar\"><rect></rect></g></svg>",
            "Revenue <by> store",
        );
        assert!(file.starts_with("<?xml"));
        assert!(file.contains("<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\" role=\"list\"><title>Revenue &lt;by&gt; store</title><style>"));
        assert!(file.ends_with("<g class=\"bar\"><rect></rect></g></svg>"));
        assert_eq!(file_name("Revenue by store"), "revenue-by-store.svg");
        assert_eq!(
            file_name("Top items (by revenue)"),
            "top-items-by-revenue.svg"
        );
    }
}
