//! Small SVG charts: rendered on the server, interactive once hydrated (the focused or
//! hovered bar's figures show under the chart; series can be switched).

use leptos::prelude::*;

/// One bar: its label, its length, the exact figures to show for it, and where it
/// leads (the sales behind it), if anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub detail: String,
    pub href: Option<String>,
}

/// A mark that leads somewhere: wrapped in an SVG link when it has an address. (The
/// `g` around it makes the macro build an SVG `a`: an HTML one inside an `svg`, as a
/// client-side render would make it, draws nothing.)
fn linked(href: Option<String>, mark: AnyView) -> AnyView {
    match href {
        Some(href) => view! { <g><a href=href>{mark}</a></g> }.into_any(),
        None => mark,
    }
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
            let mark = view! {
                <g class="bar" tabindex=b.href.is_none().then_some("0") role="listitem" aria-label=aria
                    on:mouseenter=move |_| current.set(Some(d1.clone()))
                    on:focus=move |_| current.set(Some(d2.clone()))
                    on:mouseleave=move |_| current.set(None)>
                    <title>{detail}</title>
                    <text x="0" y=y + 19.0 class="axis">{b.label.clone()}</text>
                    <rect x="150" y=y + 5.0 width=w height=row - 10.0 rx="3"/>
                </g>
            };
            linked(b.href, mark.into_any())
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

/// Round values from zero to at least `max`, 1, 2 or 5 times a power of ten apart and
/// at most `most` steps, for a value axis and its gridlines.
pub fn ticks(max: f64, most: usize) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let rough = max / most.max(1) as f64;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// A tick's value, short: 1500 → "1.5k", 2000000 → "2M".
pub fn short_number(v: f64) -> String {
    let (scaled, unit) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// One point of a line over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Under the axis (only some are shown when there are many).
    pub label: String,
    pub value: f64,
    pub detail: String,
    pub href: Option<String>,
}

/// A line over time with a value axis, gridlines at round values, and a dot per point
/// that leads to the sales behind it.
#[component]
pub fn LineChart(
    title: &'static str,
    /// Before each tick's value: "$" for money.
    unit: &'static str,
    points: Vec<Point>,
) -> impl IntoView {
    let current = RwSignal::new(None::<String>);
    let (width, height, left, bottom, top) = (600.0, 220.0, 48.0, 22.0, 8.0);
    let max = points.iter().map(|p| p.value).fold(0.0, f64::max);
    let ticks = ticks(max, 5);
    let top_value = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let plot_h = height - bottom - top;
    let slot = (width - left) / points.len().max(1) as f64;
    let x = move |i: usize| left + slot * (i as f64 + 0.5);
    let y = move |v: f64| top + plot_h - v / top_value * plot_h;
    let grid = ticks
        .iter()
        .map(|t| {
            view! {
                <line class="grid" x1=left x2=width y1=y(*t) y2=y(*t)/>
                <text class="axis" x=left - 6.0 y=y(*t) + 4.0 text-anchor="end">{format!("{unit}{}", short_number(*t))}</text>
            }
        })
        .collect_view();
    let path: String = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}{:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                x(i),
                y(p.value)
            )
        })
        .collect();
    // About eight labels under the axis, whatever the number of points.
    let every = points.len().div_ceil(8).max(1);
    let labels = points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, p)| view! { <text class="axis" x=x(i) y=height - 6.0 text-anchor="middle">{p.label.clone()}</text> })
        .collect_view();
    let dots = points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let detail = format!("{}: {}", p.label, p.detail);
            let (d1, d2, aria) = (detail.clone(), detail.clone(), detail.clone());
            let mark = view! {
                <g class="bar" tabindex=p.href.is_none().then_some("0") role="listitem" aria-label=aria
                    on:mouseenter=move |_| current.set(Some(d1.clone()))
                    on:focus=move |_| current.set(Some(d2.clone()))
                    on:mouseleave=move |_| current.set(None)>
                    <title>{detail}</title>
                    <rect class="hit" x=x(i) - slot / 2.0 y=top width=slot height=plot_h/>
                    <circle cx=x(i) cy=y(p.value) r="3"/>
                </g>
            };
            linked(p.href, mark.into_any())
        })
        .collect_view();
    let figure = NodeRef::new();
    view! {
        <figure class="chart wide" node_ref=figure>
            <figcaption>{title} <SvgDownload title figure/></figcaption>
            <svg viewBox=format!("0 0 {width} {height}") role="list" aria-label=title>
                {grid}
                <path class="line" d=path/>
                {dots}
                {labels}
            </svg>
            <Readout current hint="Point at a step for its figures; click it for its sales."/>
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
            let mark = view! {
                <g class=format!("bar c{i}") tabindex=p.href.is_none().then_some("0") role="listitem" aria-label=aria
                    on:mouseenter=move |_| current.set(Some(d1.clone()))
                    on:focus=move |_| current.set(Some(d2.clone()))
                    on:mouseleave=move |_| current.set(None)>
                    <title>{detail}</title>
                    <rect x=start y="0" width=w height="40"/>
                </g>
            };
            linked(p.href.clone(), mark.into_any())
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
.c2 rect{fill:#c27c0e}.axis{font:12px sans-serif;fill:#566176}.hidden{display:none}\
.grid{stroke:#e3e7ee}.line{fill:none;stroke:#1f5fbf;stroke-width:2}.bar circle{fill:#1f5fbf}\
.bar rect.hit{fill:transparent}";

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
    fn value_axes_step_by_round_numbers() {
        assert_eq!(ticks(87.0, 5), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(ticks(1015.0, 5), [0.0, 500.0, 1000.0, 1500.0]);
        assert_eq!(ticks(0.0, 5), [0.0, 1.0]);
        assert_eq!(short_number(1500.0), "1.5k");
        assert_eq!(short_number(2_000_000.0), "2M");
        assert_eq!(short_number(40.0), "40");
    }

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
