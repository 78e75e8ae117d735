//! Reads for the dashboards, all from MySQL: filtered, sorted and paginated lists use
//! its indexes, and the analytics sum the daily rollups. MongoDB (the primary) is read
//! only to load a sale for editing, where its version is the truth.

use super::{backup, changes};
use crate::model::report::{
    Analytics, ItemSlice, Kpis, PAGE_SIZE, PURCHASES_PAGE_SIZE, Purchases, SaleRow, SaleSort,
    SalesFilter, SalesPage, Slice,
};
use crate::model::{AppError, PurchaseMethod, SaleId};
use crate::server::db::Context;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder};

pub(super) fn push_filters(q: &mut QueryBuilder<'_, MySql>, f: &SalesFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(store) = &f.store {
        q.push(" AND store_location = ").push_bind(store.clone());
    }
    if let Some(method) = f.method {
        q.push(" AND purchase_method = ").push_bind(method.as_str());
    }
    if let Some(from) = f.from {
        q.push(" AND sale_date >= ")
            .push_bind(from.and_hms_opt(0, 0, 0));
    }
    if let Some(to) = f.to.and_then(|d| d.succ_opt()) {
        q.push(" AND sale_date < ")
            .push_bind(to.and_hms_opt(0, 0, 0));
    }
    if let Some(coupon) = f.coupon {
        q.push(" AND coupon_used = ").push_bind(coupon);
    }
    if let Some(email) = &f.email {
        q.push(" AND customer_email LIKE ")
            .push_bind(format!("{}%", crate::server::db::like_literal(email)));
    }
}

pub(super) fn order_by(sort: SaleSort) -> &'static str {
    match sort {
        SaleSort::DateDesc => " ORDER BY sale_date DESC, id DESC",
        SaleSort::DateAsc => " ORDER BY sale_date ASC, id ASC",
        SaleSort::TotalDesc => " ORDER BY total DESC, id DESC",
        SaleSort::TotalAsc => " ORDER BY total ASC, id ASC",
    }
}

fn pages(matching: u64, size: u32) -> u32 {
    matching
        .div_ceil(u64::from(size))
        .max(1)
        .min(u64::from(u32::MAX)) as u32
}

type CountKey = (
    Option<String>,
    Option<PurchaseMethod>,
    Option<NaiveDate>,
    Option<NaiveDate>,
    Option<bool>,
    Option<String>,
);

/// Recently computed match counts, by filter. Paging through a list, or many people
/// opening the same one, recounts at most every few seconds; the rows themselves are
/// always read fresh. A figure is also recomputed once the backup tables have changed
/// since it was made, in any process (`changes::generation`, read once per request), so
/// whoever opens a list on any instance sees the count that includes every committed
/// edit. Requests that miss together share one computation: fifty workers opening the
/// same page at once run one count, not fifty.
#[derive(Clone, Default)]
pub struct CountCache {
    counts: Cached<std::collections::HashMap<CountKey, Fresh<u64>>>,
    /// The store names for the filter, on the same terms: reading them takes a second
    /// under load at a million sales (MariaDB does not use a loose index scan for it).
    stores: Cached<Option<Fresh<Vec<String>>>>,
}

type Cached<T> = std::sync::Arc<std::sync::Mutex<T>>;

/// A cell computed at most once, with when it was made and the backup's change count
/// read before it. Concurrent readers share the one computation; a failed one leaves
/// the cell empty for the next reader to retry.
struct Fresh<T> {
    cell: std::sync::Arc<tokio::sync::OnceCell<T>>,
    made: std::time::Instant,
    generation: u64,
}

/// A backstop: figures are recomputed at least this often even without a change.
const COUNT_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl<T> Fresh<T> {
    fn new(generation: u64) -> Self {
        Self {
            cell: Default::default(),
            made: std::time::Instant::now(),
            generation,
        }
    }

    fn is_current(&self, generation: u64) -> bool {
        self.made.elapsed() < COUNT_TTL && self.generation == generation
    }

    /// The cell to read, after replacing it if it has gone stale.
    fn live(&mut self, generation: u64) -> std::sync::Arc<tokio::sync::OnceCell<T>> {
        if !self.is_current(generation) {
            *self = Fresh::new(generation);
        }
        self.cell.clone()
    }
}

impl CountCache {
    async fn count(
        &self,
        pool: &MySqlPool,
        generation: u64,
        f: &SalesFilter,
    ) -> Result<u64, AppError> {
        let key = (
            f.store.clone(),
            f.method,
            f.from,
            f.to,
            f.coupon,
            f.email.clone(),
        );
        let cell = match self.counts.lock() {
            Ok(mut map) => {
                if map.len() >= 1000 {
                    map.retain(|_, entry| entry.is_current(generation));
                }
                map.entry(key)
                    .or_insert_with(|| Fresh::new(generation))
                    .live(generation)
            }
            Err(_) => Fresh::new(generation).cell,
        };
        cell.get_or_try_init(|| count_matching(pool, f))
            .await
            .copied()
    }

    async fn stores(&self, pool: &MySqlPool, generation: u64) -> Result<Vec<String>, AppError> {
        let cell = match self.stores.lock() {
            Ok(mut slot) => slot
                .get_or_insert_with(|| Fresh::new(generation))
                .live(generation),
            Err(_) => Fresh::new(generation).cell,
        };
        cell.get_or_try_init(|| stores(pool)).await.cloned()
    }
}

/// How many sales match: from the daily rollups when every filter is one of their
/// dimensions (counting a million sales rows takes a second; the rollups, milliseconds),
/// from the sales table when filtering by email.
async fn count_matching(pool: &MySqlPool, f: &SalesFilter) -> Result<u64, AppError> {
    if f.email.is_some() {
        let mut q = QueryBuilder::<MySql>::new("SELECT COUNT(*) FROM sales");
        push_filters(&mut q, f);
        let n: i64 = q
            .build_query_scalar()
            .fetch_one(pool)
            .await
            .reporting("count sales")?;
        return Ok(n as u64);
    }
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT CAST(COALESCE(SUM(sales), 0) AS SIGNED) FROM sales_daily",
    );
    range(&mut q, f.from, f.to);
    if let Some(store) = &f.store {
        q.push(" AND store_location = ").push_bind(store.clone());
    }
    if let Some(method) = f.method {
        q.push(" AND purchase_method = ").push_bind(method.as_str());
    }
    if let Some(coupon) = f.coupon {
        q.push(" AND coupon_used = ").push_bind(coupon);
    }
    let n: i64 = q
        .build_query_scalar()
        .fetch_one(pool)
        .await
        .reporting("count sales")?;
    Ok(n as u64)
}

/// How many sales match the filters (the table's count, refreshed live).
pub async fn matching(
    pool: &MySqlPool,
    counts: &CountCache,
    f: &SalesFilter,
) -> Result<u64, AppError> {
    let generation = changes::generation(pool).await?;
    counts.count(pool, generation, f).await
}

/// The worker's sales table: one page of rows matching the filters.
#[tracing::instrument(skip(pool, counts))]
pub async fn list(
    pool: &MySqlPool,
    counts: &CountCache,
    f: &SalesFilter,
) -> Result<SalesPage, AppError> {
    // Read before the counts are computed or looked up: a commit after this read
    // changes the generation, so a count made now is never kept past it.
    let generation = changes::generation(pool).await?;
    let matching = counts.count(pool, generation, f).await? as i64;

    let mut q = QueryBuilder::<MySql>::new(
        "SELECT id, sale_date, store_location, CAST(purchase_method AS CHAR), coupon_used, customer_email, \
         (SELECT COUNT(*) FROM sale_items i WHERE i.sale_id = sales.id), total, version FROM sales",
    );
    push_filters(&mut q, f);
    q.push(order_by(f.sort));
    q.push(" LIMIT ")
        .push_bind(PAGE_SIZE)
        .push(" OFFSET ")
        .push_bind(u64::from(f.page - 1) * u64::from(PAGE_SIZE));
    type Row = (
        String,
        chrono::NaiveDateTime,
        String,
        String,
        bool,
        String,
        i64,
        Decimal,
        u64,
    );
    let rows: Vec<Row> = q
        .build_query_as()
        .fetch_all(pool)
        .await
        .reporting("list sales")?;
    let rows = rows
        .into_iter()
        .map(
            |(id, date, store, method, coupon, email, items, total, version)| {
                Ok(SaleRow {
                    id: SaleId::parse(&id).map_err(|_| AppError::Internal)?,
                    sale_date: date.and_utc(),
                    store_location: store,
                    purchase_method: PurchaseMethod::parse(&method)
                        .map_err(|_| AppError::Internal)?,
                    coupon_used: coupon,
                    customer_email: email,
                    items: items as u32,
                    total,
                    version,
                })
            },
        )
        .collect::<Result<_, AppError>>()?;
    Ok(SalesPage {
        rows,
        matching: matching as u64,
        page: f.page,
        pages: pages(matching as u64, PAGE_SIZE),
        stores: counts.stores(pool, generation).await?,
        feed: generation,
    })
}

/// Every store with sales, for the filter's choices: a walk over the (store, date)
/// index's distinct prefixes.
pub async fn stores(pool: &MySqlPool) -> Result<Vec<String>, AppError> {
    sqlx::query_scalar(
        "SELECT store_location FROM sales GROUP BY store_location ORDER BY store_location",
    )
    .fetch_all(pool)
    .await
    .reporting("list stores")
}

/// A customer's purchases: only sales whose email is the account's (the caller passes
/// the session's email, never one from the request).
#[tracing::instrument(skip(pool, email))]
pub async fn purchases(pool: &MySqlPool, email: &str, page: u32) -> Result<Purchases, AppError> {
    // Read first: a change committed after it reaches the page over its live stream.
    let feed = changes::generation(pool).await?;
    let (count, spent): (i64, Option<Decimal>) =
        sqlx::query_as("SELECT COUNT(*), SUM(total) FROM sales WHERE customer_email = ?")
            .bind(email)
            .fetch_one(pool)
            .await
            .reporting("count purchases")?;
    let favourite: Option<String> = sqlx::query_scalar(
        "SELECT store_location FROM sales WHERE customer_email = ? \
         GROUP BY store_location ORDER BY COUNT(*) DESC, SUM(total) DESC, store_location LIMIT 1",
    )
    .bind(email)
    .fetch_optional(pool)
    .await
    .reporting("favourite store")?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM sales WHERE customer_email = ? ORDER BY sale_date DESC, id DESC LIMIT ? OFFSET ?",
    )
    .bind(email)
    .bind(PURCHASES_PAGE_SIZE)
    .bind(u64::from(page - 1) * u64::from(PURCHASES_PAGE_SIZE))
    .fetch_all(pool)
    .await
    .reporting("list purchases")?;
    let ids: Vec<SaleId> = ids.iter().filter_map(|i| SaleId::parse(i).ok()).collect();
    let mut conn = pool.acquire().await.reporting("load purchases")?;
    let mut sales = backup::load(&mut conn, &ids).await?;
    sales.sort_by(|a, b| (b.draft.sale_date, &b.id).cmp(&(a.draft.sale_date, &a.id)));
    Ok(Purchases {
        count: count as u64,
        spent: spent.unwrap_or_default(),
        favourite_store: favourite,
        sales,
        page,
        pages: pages(count as u64, PURCHASES_PAGE_SIZE),
        feed,
    })
}

pub(super) fn range(
    q: &mut QueryBuilder<'_, MySql>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) {
    q.push(" WHERE 1 = 1");
    if let Some(from) = from {
        q.push(" AND day >= ").push_bind(from);
    }
    if let Some(to) = to {
        q.push(" AND day <= ").push_bind(to);
    }
}

/// The management analytics over a date range (inclusive), from the daily rollups.
#[tracing::instrument(skip(pool))]
pub async fn analytics(
    pool: &MySqlPool,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Analytics, AppError> {
    // Read first: a change committed after it reaches the page over its live stream.
    let feed = changes::generation(pool).await?;
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT CAST(COALESCE(SUM(sales), 0) AS SIGNED), COALESCE(SUM(revenue), 0), \
         CAST(COALESCE(SUM(IF(coupon_used, sales, 0)), 0) AS SIGNED), CAST(COALESCE(SUM(satisfaction_sum), 0) AS SIGNED), \
         CAST(COALESCE(SUM(sat_1), 0) AS SIGNED), CAST(COALESCE(SUM(sat_2), 0) AS SIGNED), CAST(COALESCE(SUM(sat_3), 0) AS SIGNED), \
         CAST(COALESCE(SUM(sat_4), 0) AS SIGNED), CAST(COALESCE(SUM(sat_5), 0) AS SIGNED) FROM sales_daily",
    );
    range(&mut q, from, to);
    type Totals = (i64, Decimal, i64, i64, i64, i64, i64, i64, i64);
    let (sales, revenue, coupons, sat_sum, s1, s2, s3, s4, s5): Totals = q
        .build_query_as()
        .fetch_one(pool)
        .await
        .reporting("analytics totals")?;

    let slices = |group: &'static str, order: &'static str| {
        let mut q = QueryBuilder::<MySql>::new(format!(
            "SELECT {group}, COALESCE(SUM(revenue), 0), CAST(COALESCE(SUM(sales), 0) AS SIGNED) FROM sales_daily"
        ));
        range(&mut q, from, to);
        q.push(format!(
            " GROUP BY 1 HAVING SUM(sales) > 0 ORDER BY {order}"
        ));
        q
    };
    let fetch = |mut q: QueryBuilder<'static, MySql>, what: &'static str| async move {
        let rows: Vec<(String, Decimal, i64)> =
            q.build_query_as().fetch_all(pool).await.reporting(what)?;
        Ok::<_, AppError>(
            rows.into_iter()
                .map(|(label, revenue, sales)| Slice {
                    label,
                    revenue,
                    sales: sales as u64,
                })
                .collect::<Vec<_>>(),
        )
    };
    let mut items = QueryBuilder::<MySql>::new(
        "SELECT name, COALESCE(SUM(revenue), 0), CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM item_daily",
    );
    range(&mut items, from, to);
    items.push(" GROUP BY name HAVING SUM(quantity) > 0 ORDER BY 2 DESC, name LIMIT 10");
    let (by_store, by_month, by_method, top): (_, _, _, Vec<(String, Decimal, i64)>) = futures::try_join!(
        fetch(slices("store_location", "2 DESC, 1"), "revenue by store"),
        fetch(slices("DATE_FORMAT(day, '%Y-%m')", "1"), "revenue by month"),
        fetch(
            slices("CAST(purchase_method AS CHAR)", "3 DESC, 1"),
            "sales by method"
        ),
        async {
            items
                .build_query_as()
                .fetch_all(pool)
                .await
                .reporting("top items")
        },
    )?;

    let n = Decimal::from(sales.max(1));
    Ok(Analytics {
        from,
        to,
        kpis: Kpis {
            revenue,
            sales: sales as u64,
            average_basket: if sales > 0 {
                (revenue / n).round_dp(2)
            } else {
                Decimal::ZERO
            },
            coupon_rate: if sales > 0 {
                (Decimal::from(coupons) / n).round_dp(4)
            } else {
                Decimal::ZERO
            },
            average_satisfaction: if sales > 0 {
                (Decimal::from(sat_sum) / n).round_dp(2)
            } else {
                Decimal::ZERO
            },
        },
        by_store,
        by_month,
        by_method,
        satisfaction: [s1, s2, s3, s4, s5].map(|c| c as u64),
        top_items: top
            .into_iter()
            .map(|(name, revenue, quantity)| ItemSlice {
                name,
                revenue,
                quantity: quantity as u64,
            })
            .collect(),
        feed,
    })
}
