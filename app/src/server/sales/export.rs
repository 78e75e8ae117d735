//! CSV exports of what the dashboards show: the worker's filtered sales list, the
//! management analytics' daily table and a customer's own purchases. Both stream from MySQL as they are read, so an
//! export of a million sales holds one chunk in memory, not the file; amounts are
//! written exactly as stored (decimal text, never floats).

use super::analytics::filters;
use super::list::{EXPORT_PLAN, from_sales, order_by, push_filters};
use crate::model::analytics::{AnalyticsFilter, AnalyticsQuery};
use crate::model::report::{SalesFilter, SalesQuery};
use crate::model::{AppError, Gender, PurchaseMethod};
use crate::server::AppState;
use crate::server::extract::{Admitted, Customers, Management, Refused, Staff, TypedQuery};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use chrono::{NaiveDate, NaiveDateTime};
use futures::TryStreamExt;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder};

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 64 * 1024;
/// An export still running after this long is cut off (the download then fails).
const LONGEST: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Exports this instance runs at once. Each holds a MySQL connection for as long as
/// its download lasts, so without a bound a few slow downloads would take the pool
/// that logins and edits need. A bound on this process's resources, not a guarantee.
#[derive(Clone)]
pub struct Exports(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for Exports {
    fn default() -> Self {
        Exports(std::sync::Arc::new(tokio::sync::Semaphore::new(2)))
    }
}

impl Exports {
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, AppError> {
        self.0
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Busy(5))
    }
}

/// One CSV cell: quoted when it holds a quote, a line break or any separator a
/// spreadsheet may be set to (`,`, `;`, tab), so that `x;=1+2;y` stays one cell and
/// never splits into a formula; and defused when it starts like a formula (`=`, `+`,
/// `-`, `@`, tab, CR), which a spreadsheet would otherwise run (CSV injection).
fn cell(out: &mut String, text: &str) {
    let formula = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || text.contains([',', ';', '\t', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn line(out: &mut String, cells: &[&str]) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        cell(out, c);
    }
    out.push_str("\r\n");
}

/// Runs `query` on its own task and streams its rows as CSV lines under `header`.
/// The task stops when the download is abandoned (the body's receiver is gone). A
/// failure after the first bytes cannot change the status any more: it ends the body
/// early, which the browser reports as a failed download, never a silently short file.
fn csv_body<R>(
    pool: MySqlPool,
    permit: tokio::sync::OwnedSemaphorePermit,
    header: &'static [&'static str],
    query: QueryBuilder<'static, MySql>,
    to_cells: fn(R) -> Vec<String>,
) -> Body
where
    R: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin + 'static,
{
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let failed = sender.clone();
    let export = async move {
        let mut query = query;
        let mut out = String::with_capacity(CHUNK + 1024);
        line(&mut out, header);
        let mut rows = query.build_query_as::<R>().fetch(&pool);
        loop {
            match rows.try_next().await {
                Ok(Some(row)) => {
                    let cells = to_cells(row);
                    let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
                    line(&mut out, &cells);
                    if out.len() >= CHUNK
                        && sender
                            .send(Ok(Bytes::from(std::mem::take(&mut out))))
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(error = %e, "CSV export failed mid-stream");
                    let _ = sender
                        .send(Err(std::io::Error::other("export failed")))
                        .await;
                    return;
                }
            }
        }
        if !out.is_empty() {
            let _ = sender.send(Ok(Bytes::from(out))).await;
        }
    };
    tokio::spawn(async move {
        if tokio::time::timeout(LONGEST, export).await.is_err() {
            tracing::warn!("CSV export cut off after {LONGEST:?}");
            let _ = failed
                .send(Err(std::io::Error::other("export took too long")))
                .await;
        }
        drop(permit);
    });
    // Not `stream::unfold`: the compression layer's reader polls once more after the
    // end, which `unfold` answers with a panic; a closed channel keeps answering `None`.
    let mut receiver = receiver;
    Body::from_stream(futures::stream::poll_fn(move |cx| receiver.poll_recv(cx)))
}

fn attachment(name: String, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = http::HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(http::header::CONTENT_DISPOSITION, value);
    }
    response
}

#[derive(sqlx::FromRow)]
struct ExportedSale {
    id: String,
    sale_date: NaiveDateTime,
    store_location: String,
    purchase_method: PurchaseMethod,
    coupon_used: bool,
    customer_email: String,
    customer_gender: Gender,
    customer_age: u8,
    customer_satisfaction: u8,
    items: u16,
    total: Decimal,
    version: u64,
}

const SALES_HEADER: &[&str] = &[
    "id",
    "sale_date_utc",
    "store_location",
    "purchase_method",
    "coupon_used",
    "customer_email",
    "customer_gender",
    "customer_age",
    "customer_satisfaction",
    "items",
    "total",
    "version",
];

fn sale_cells(s: ExportedSale) -> Vec<String> {
    vec![
        s.id,
        s.sale_date.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        s.store_location,
        s.purchase_method.as_str().into(),
        if s.coupon_used { "yes" } else { "no" }.into(),
        s.customer_email,
        s.customer_gender.as_str().into(),
        s.customer_age.to_string(),
        s.customer_satisfaction.to_string(),
        s.items.to_string(),
        s.total.to_string(),
        s.version.to_string(),
    ]
}

/// Every sale matching the filters, in the list's order (all pages).
fn sales_csv(
    pool: MySqlPool,
    permit: tokio::sync::OwnedSemaphorePermit,
    filter: &SalesFilter,
) -> Body {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT id, sale_date, store_location, purchase_method, coupon_used, customer_email, \
         customer_gender, customer_age, customer_satisfaction, \
         item_count AS items, total, version",
    );
    from_sales(&mut q, filter, EXPORT_PLAN);
    push_filters(&mut q, filter, EXPORT_PLAN);
    q.push(order_by(filter.sort));
    csv_body(pool, permit, SALES_HEADER, q, sale_cells)
}

#[derive(sqlx::FromRow)]
struct PurchasedItem {
    id: String,
    sale_date: NaiveDateTime,
    store_location: String,
    purchase_method: PurchaseMethod,
    coupon_used: bool,
    item: String,
    price: Decimal,
    quantity: u16,
    sale_total: Decimal,
}

const PURCHASES_HEADER: &[&str] = &[
    "sale_id",
    "sale_date_utc",
    "store_location",
    "purchase_method",
    "coupon_used",
    "item",
    "price",
    "quantity",
    "item_total",
    "sale_total",
];

fn purchase_cells(p: PurchasedItem) -> Vec<String> {
    vec![
        p.id,
        p.sale_date.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        p.store_location,
        p.purchase_method.as_str().into(),
        if p.coupon_used { "yes" } else { "no" }.into(),
        p.item,
        p.price.to_string(),
        p.quantity.to_string(),
        (p.price * Decimal::from(p.quantity)).to_string(),
        p.sale_total.to_string(),
    ]
}

/// One line per item bought, newest sale first, as "My purchases" lists them.
fn purchases_csv(
    pool: MySqlPool,
    permit: tokio::sync::OwnedSemaphorePermit,
    email: String,
) -> Body {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT s.id, s.sale_date, s.store_location, s.purchase_method, s.coupon_used, \
         i.name AS item, i.price, i.quantity, s.total AS sale_total \
         FROM sales s JOIN sale_items i ON i.sale_id = s.id WHERE s.customer_email = ",
    );
    q.push_bind(email);
    q.push(" ORDER BY s.sale_date DESC, s.id DESC, i.position");
    csv_body(pool, permit, PURCHASES_HEADER, q, purchase_cells)
}

#[derive(sqlx::FromRow)]
struct DailyRow {
    day: NaiveDate,
    store_location: String,
    purchase_method: PurchaseMethod,
    coupon_used: bool,
    sales: i64,
    revenue: Decimal,
    satisfaction_sum: i64,
}

const DAILY_HEADER: &[&str] = &[
    "day",
    "store_location",
    "purchase_method",
    "coupon_used",
    "sales",
    "revenue",
    "average_satisfaction",
];

fn daily_cells(r: DailyRow) -> Vec<String> {
    let average = if r.sales > 0 {
        (Decimal::from(r.satisfaction_sum) / Decimal::from(r.sales)).round_dp(2)
    } else {
        Decimal::ZERO
    };
    vec![
        r.day.to_string(),
        r.store_location,
        r.purchase_method.as_str().into(),
        if r.coupon_used { "yes" } else { "no" }.into(),
        r.sales.to_string(),
        r.revenue.to_string(),
        average.to_string(),
    ]
}

/// The analytics' table: sales and revenue per day, store, purchase method and coupon,
/// from the rollups the analytics sum; its revenue column adds up to their revenue.
fn analytics_csv(
    pool: MySqlPool,
    permit: tokio::sync::OwnedSemaphorePermit,
    filter: &AnalyticsFilter,
) -> Body {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT day, store_location, purchase_method, coupon_used, sales, revenue, satisfaction_sum \
         FROM sales_daily",
    );
    filters(&mut q, filter);
    q.push(" AND sales > 0 ORDER BY day, store_location, purchase_method, coupon_used");
    csv_body(pool, permit, DAILY_HEADER, q, daily_cells)
}

/// `GET /api/export/sales.csv?store=…`: the worker's list with the filters of its URL.
pub async fn sales_download(
    State(state): State<AppState>,
    _: Admitted<Staff>,
    TypedQuery(query): TypedQuery<SalesQuery>,
) -> Result<Response, Refused> {
    let filter = query.parse().map_err(AppError::Invalid)?;
    let permit = state.exports.admit()?;
    Ok(attachment(
        "sales.csv".into(),
        sales_csv(state.mysql.clone(), permit, &filter),
    ))
}

/// `GET /api/export/purchases.csv`: the signed-in customer's purchases, item by item.
/// Like the page, it needs a confirmed address: sales are matched by it.
pub async fn purchases_download(
    State(state): State<AppState>,
    me: Admitted<Customers>,
) -> Result<Response, Refused> {
    let me = me.caller.user;
    if !me.email_verified {
        return Err(AppError::EmailUnverified.into());
    }
    let permit = state.exports.admit()?;
    Ok(attachment(
        "my-purchases.csv".into(),
        purchases_csv(state.mysql.clone(), permit, me.email),
    ))
}

/// `GET /api/export/analytics.csv?from=…&to=…&store=…&method=…`: the analytics' daily
/// table, with the page's filters.
pub async fn analytics_download(
    State(state): State<AppState>,
    _: Admitted<Management>,
    TypedQuery(query): TypedQuery<AnalyticsQuery>,
) -> Result<Response, Refused> {
    let filter = query.parse().map_err(AppError::Invalid)?;
    let name = format!(
        "analytics-{}-{}.csv",
        filter.from.map_or("start".into(), |d| d.to_string()),
        filter.to.map_or("today".into(), |d| d.to_string())
    );
    let permit = state.exports.admit()?;
    Ok(attachment(
        name,
        analytics_csv(state.mysql.clone(), permit, &filter),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_holding_any_separator_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        line(
            &mut out,
            &[
                "plain",
                "a,b",
                "say \"hi\"",
                "=HYPERLINK(\"x\")",
                "-2",
                "line\nbreak",
                "x;=1+2;y",
                "12.50",
            ],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"'=HYPERLINK(\"\"x\"\")\",\"'-2\",\"line\nbreak\",\"x;=1+2;y\",12.50\r\n"
        );
    }
}
