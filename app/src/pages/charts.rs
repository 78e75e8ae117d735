//! Small SVG charts, rendered on the server and read at a glance: value axes at round
//! numbers with gridlines, each bar's value written on it, and a legend where colours
//! mean something. Once hydrated, a chart is one tab stop whose marks the arrow keys
//! walk through (each mark's figures show under the chart, as they do for the pointer),
//! and "Show as table" gives the same figures as a table.

use leptos::prelude::*;

/// One mark (a bar, a share, a point in time): its label, its size, the exact figures
/// to show for it, and where it leads (the sales behind it), if anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub detail: String,
    pub href: Option<String>,
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

/// A value, short: 1500 → "1.5k", 2000000 → "2M".
pub fn short_number(v: f64) -> String {
    let (scaled, unit) = match v.abs() {
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// One mark of a chart: reachable by the arrow keys (`data-mark`), named by its figures,
/// and a link to the sales behind it when it has an address. (Inside an `svg` element,
/// so the macro builds an SVG `a`: an HTML one there draws nothing.) A link is named by
/// its `title`, not `aria-label`: a name must hold the text a link shows, and the
/// short value on a bar is not in its exact figures.
fn mark(bar: &Bar, class: String, current: RwSignal<Option<String>>, shape: AnyView) -> AnyView {
    let detail = format!("{}: {}", bar.label, bar.detail);
    let (hover, focus) = (detail.clone(), detail.clone());
    let enter = move |_| current.set(Some(hover.clone()));
    let focused = move |_| current.set(Some(focus.clone()));
    let leave = move |_| current.set(None);
    match &bar.href {
        Some(href) => view! {
            <g class=class role="listitem">
                <a href=href.clone() tabindex="-1" data-mark=""
                    on:mouseenter=enter on:focus=focused on:mouseleave=leave>
                    <title>{detail}</title>
                    {shape}
                </a>
            </g>
        }
        .into_any(),
        None => {
            let name = detail.clone();
            view! {
            <g class=class role="listitem">
                <g tabindex="-1" data-mark="" role="img" aria-label=name
                    on:mouseenter=enter on:focus=focused on:mouseleave=leave>
                    <title>{detail}</title>
                    {shape}
                </g>
            </g>
            }
            .into_any()
        }
    }
}

/// Moves the focus between a chart's marks: arrows to the next or previous, Home and
/// End to the first and last.
#[cfg(feature = "hydrate")]
fn walk_marks(ev: &leptos::ev::KeyboardEvent) {
    use wasm_bindgen::JsCast;
    let key = ev.key();
    let Some(plot) = ev
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    let Ok(marks) = plot.query_selector_all("[data-mark]") else {
        return;
    };
    let n = marks.length();
    if n == 0 {
        return;
    }
    let active = document().active_element();
    let at = (0..n).find(|i| {
        marks
            .item(*i)
            .and_then(|m| m.dyn_into::<web_sys::Element>().ok())
            .is_some_and(|m| Some(&m) == active.as_ref())
    });
    let next = match (key.as_str(), at) {
        ("Home", _) => 0,
        ("End", _) => n - 1,
        ("ArrowRight" | "ArrowDown", Some(i)) => (i + 1).min(n - 1),
        ("ArrowLeft" | "ArrowUp", Some(i)) => i.saturating_sub(1),
        ("ArrowRight" | "ArrowDown" | "ArrowLeft" | "ArrowUp", None) => 0,
        _ => return,
    };
    if let Some(mark) = marks
        .item(next)
        .and_then(|m| m.dyn_into::<web_sys::SvgElement>().ok())
    {
        ev.prevent_default();
        let _ = mark.focus();
    }
}

/// What every chart shares: its caption with the table toggle and the SVG download,
/// the plot (one tab stop; the arrow keys walk its marks), the same figures as a table,
/// and the readout of the mark under the pointer or focus.
#[component]
fn ChartFrame(
    title: &'static str,
    /// The first column of the table view: what each row is ("Store", "Week").
    rows_are: &'static str,
    bars: Vec<Bar>,
    current: RwSignal<Option<String>>,
    hint: &'static str,
    #[prop(optional)] wide: bool,
    /// Under the plot, above the readout (a legend).
    #[prop(optional)]
    legend: Option<AnyView>,
    children: Children,
) -> impl IntoView {
    let as_table = RwSignal::new(false);
    let figure = NodeRef::new();
    let rows = StoredValue::new(bars);
    let keys = move |ev: leptos::ev::KeyboardEvent| {
        #[cfg(feature = "hydrate")]
        walk_marks(&ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    };
    view! {
        <figure class="chart" class:wide=wide node_ref=figure>
            <figcaption>
                <span>{title}</span>
                <span class="chart-tools">
                    <button type="button" class="btn small secondary" aria-pressed=move || as_table.get().to_string()
                        on:click=move |_| as_table.update(|t| *t = !*t)>"Show as table"</button>
                    <SvgDownload title figure/>
                </span>
            </figcaption>
            <div class="plot" class:hidden=move || as_table.get() on:keydown=keys>{children()}</div>
            {legend}
            <Show when=move || as_table.get()>
                <table class="chart-table">
                    <caption class="visually-hidden">{title}</caption>
                    <thead><tr><th scope="col">{rows_are}</th><th scope="col">"Figures"</th></tr></thead>
                    <tbody>
                        {rows.with_value(|rows| rows.iter().map(|b| {
                            let label = match &b.href {
                                Some(href) => view! { <a href=href.clone()>{b.label.clone()}</a> }.into_any(),
                                None => b.label.clone().into_any(),
                            };
                            view! { <tr><th scope="row">{label}</th><td>{b.detail.clone()}</td></tr> }
                        }).collect_view())}
                    </tbody>
                </table>
            </Show>
            <Readout current hint/>
        </figure>
    }
}

/// The figures of the mark under the pointer (or keyboard focus).
#[component]
fn Readout(current: RwSignal<Option<String>>, hint: &'static str) -> impl IntoView {
    view! {
        <p class="readout" aria-live="polite">
            {move || current.get().unwrap_or_else(|| hint.to_string())}
        </p>
    }
}

/// A tick's or a value's text: `unit` before it ("$" for money).
fn amount(unit: &str, v: f64) -> String {
    format!("{unit}{}", short_number(v))
}

/// Horizontal bars, one per label (stores, items), each under its label and with its
/// value at its end, over a value axis. Labels above the bars rather than beside them
/// leave long names and a phone's larger text room.
#[component]
pub fn BarChart(
    title: &'static str,
    rows_are: &'static str,
    /// Before each value: "$" for money.
    unit: &'static str,
    bars: Vec<Bar>,
) -> impl IntoView {
    let current = RwSignal::new(None::<String>);
    let (width, plot_w, row, axis_h) = (560.0, 440.0, 50.0, 28.0);
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let ticks = ticks(max, 4);
    let top = ticks.last().copied().unwrap_or(1.0).max(f64::MIN_POSITIVE);
    let x = move |v: f64| v / top * plot_w;
    let rows_h = (bars.len() as f64 * row).max(row);
    let height = rows_h + axis_h;
    let grid = ticks
        .iter()
        .map(|t| {
            let anchor = if *t == 0.0 { "start" } else { "middle" };
            view! {
                <line class="grid" x1=x(*t) x2=x(*t) y1="0" y2=rows_h/>
                <text class="axis" x=x(*t) y=height - 4.0 text-anchor=anchor>{amount(unit, *t)}</text>
            }
        })
        .collect_view();
    let marks = bars
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let y = i as f64 * row;
            let end = x(b.value).max(1.0);
            let value = amount(unit, b.value);
            // The value after the bar, or inside its end when the bar reaches the edge.
            let (vx, anchor, class) = if end + 100.0 > width {
                (end - 6.0, "end", "value inside")
            } else {
                (end + 6.0, "start", "value")
            };
            let shape = view! {
                <text x="0" y=y + 20.0 class="axis">{b.label.clone()}</text>
                <rect x="0" y=y + 26.0 width=end height="18" rx="3"/>
                <text x=vx y=y + 41.0 class=class text-anchor=anchor>{value}</text>
            };
            mark(b, "bar".into(), current, shape.into_any())
        })
        .collect_view();
    view! {
        <ChartFrame title rows_are bars current hint="Point at a bar, or use the arrow keys, for its figures.">
            <svg viewBox=format!("0 0 {width} {height}") role="list" aria-label=title tabindex="0" preserveAspectRatio="xMinYMin meet">
                {grid}
                {marks}
            </svg>
        </ChartFrame>
    }
}

/// A line over time with a value axis, gridlines at round values, and a dot per step
/// that leads to the sales behind it.
#[component]
pub fn LineChart(
    title: &'static str,
    rows_are: &'static str,
    /// Before each tick's value: "$" for money.
    unit: &'static str,
    points: Vec<Bar>,
) -> impl IntoView {
    let current = RwSignal::new(None::<String>);
    let (width, height, left, bottom, top) = (600.0, 220.0, 64.0, 28.0, 10.0);
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
                <text class="axis" x=left - 6.0 y=y(*t) + 4.0 text-anchor="end">{amount(unit, *t)}</text>
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
    // Every other one is `minor`: a phone's wider text leaves room for four.
    let labels = points
        .iter()
        .enumerate()
        .filter(|(i, _)| i % every == 0)
        .map(|(i, p)| {
            let class = if (i / every) % 2 == 1 { "axis minor" } else { "axis" };
            view! { <text class=class x=x(i) y=height - 6.0 text-anchor="middle">{p.label.clone()}</text> }
        })
        .collect_view();
    let dots = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shape = view! {
                <rect class="hit" x=x(i) - slot / 2.0 y=top width=slot height=plot_h/>
                <circle cx=x(i) cy=y(p.value) r="3"/>
            };
            mark(p, "bar".into(), current, shape.into_any())
        })
        .collect_view();
    view! {
        <ChartFrame title rows_are bars=points current wide=true
            hint="Point at a step, or use the arrow keys, for its figures; open it for its sales.">
            <svg viewBox=format!("0 0 {width} {height}") role="list" aria-label=title tabindex="0">
                {grid}
                <path class="line" d=path/>
                {dots}
                {labels}
            </svg>
        </ChartFrame>
    }
}

/// Shares of a whole as one stacked bar, each share written on it where it fits, with a
/// legend (purchase methods).
#[component]
pub fn ShareChart(title: &'static str, rows_are: &'static str, parts: Vec<Bar>) -> impl IntoView {
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
            let start = x;
            x += w;
            let shown = Bar {
                detail: format!("{share:.1}% · {}", p.detail),
                ..p.clone()
            };
            let shape = view! {
                <rect x=start y="0" width=w height="40"/>
                {(w > 56.0).then(|| view! {
                    <text class="value inside" x=start + w / 2.0 y="26" text-anchor="middle">{format!("{share:.0}%")}</text>
                })}
            };
            mark(&shown, format!("bar c{i}"), current, shape.into_any())
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
    let legend = view! { <ul class="legend">{legend}</ul> }.into_any();
    let rows: Vec<Bar> = parts
        .iter()
        .map(|p| Bar {
            detail: format!("{:.1}% · {}", p.value / total * 100.0, p.detail),
            ..p.clone()
        })
        .collect();
    view! {
        <ChartFrame title rows_are bars=rows current legend
            hint="Point at a share, or use the arrow keys, for its figures.">
            <svg viewBox="0 0 600 40" role="list" aria-label=title tabindex="0">{segments}</svg>
        </ChartFrame>
    }
}

#[cfg(any(feature = "hydrate", test))]
/// The chart's styles, inlined into a downloaded SVG so it looks the same outside the
/// page (the site's colours; the series not shown stays hidden).
const SVG_STYLE: &str = ".bar rect{fill:#1f5fbf}.alt .bar rect,.c1 rect{fill:#2f8f5b}\
.c2 rect{fill:#c27c0e}.axis{font:12px sans-serif;fill:#566176}.hidden{display:none}\
.grid{stroke:#e3e7ee}.line{fill:none;stroke:#1f5fbf;stroke-width:2}.bar circle{fill:#1f5fbf}\
.bar rect.hit{fill:transparent}.value{font:12px sans-serif;fill:#1c2330}.value.inside{fill:#fff}";

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
