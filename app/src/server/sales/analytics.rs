//! The management analytics, summed from the daily rollups (`sales_daily`, `item_daily`)
//! for a date range, a store and a purchase method: the KPIs and the same KPIs for the
//! period before, the trend, and the breakdowns the charts draw.

use super::changes;
use super::queries::range;
use crate::model::AppError;
use crate::model::analytics::{AnalyticsFilter, Step, Trend};
use crate::model::report::{Analytics, ItemSlice, Kpis, Slice};
use crate::server::db::Context;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder};

/// ` WHERE …` for the filter, on either rollup (both have the day, store and method).
pub(super) fn filters(q: &mut QueryBuilder<'_, MySql>, f: &AnalyticsFilter) {
    range(q, f.from, f.to);
    if let Some(store) = &f.store {
        q.push(" AND store_location = ").push_bind(store.clone());
    }
    if let Some(method) = f.method {
        q.push(" AND purchase_method = ").push_bind(method.as_str());
    }
}

#[derive(sqlx::FromRow)]
struct Totals {
    sales: i64,
    revenue: Decimal,
    coupons: i64,
    satisfaction_sum: i64,
    sat_1: i64,
    sat_2: i64,
    sat_3: i64,
    sat_4: i64,
    sat_5: i64,
}

impl Totals {
    fn kpis(&self) -> Kpis {
        let n = Decimal::from(self.sales.max(1));
        let per_sale = |sum: Decimal, dp| {
            if self.sales > 0 {
                (sum / n).round_dp(dp)
            } else {
                Decimal::ZERO
            }
        };
        Kpis {
            revenue: self.revenue,
            sales: self.sales as u64,
            average_basket: per_sale(self.revenue, 2),
            coupon_rate: per_sale(Decimal::from(self.coupons), 4),
            average_satisfaction: per_sale(Decimal::from(self.satisfaction_sum), 2),
        }
    }
}

async fn totals(pool: &MySqlPool, f: &AnalyticsFilter) -> Result<Totals, AppError> {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT CAST(COALESCE(SUM(sales), 0) AS SIGNED) AS sales, COALESCE(SUM(revenue), 0) AS revenue, \
         CAST(COALESCE(SUM(IF(coupon_used, sales, 0)), 0) AS SIGNED) AS coupons, \
         CAST(COALESCE(SUM(satisfaction_sum), 0) AS SIGNED) AS satisfaction_sum, \
         CAST(COALESCE(SUM(sat_1), 0) AS SIGNED) AS sat_1, CAST(COALESCE(SUM(sat_2), 0) AS SIGNED) AS sat_2, \
         CAST(COALESCE(SUM(sat_3), 0) AS SIGNED) AS sat_3, CAST(COALESCE(SUM(sat_4), 0) AS SIGNED) AS sat_4, \
         CAST(COALESCE(SUM(sat_5), 0) AS SIGNED) AS sat_5 FROM sales_daily",
    );
    filters(&mut q, f);
    q.build_query_as()
        .fetch_one(pool)
        .await
        .reporting("analytics totals")
}

#[derive(sqlx::FromRow)]
struct Group {
    label: String,
    revenue: Decimal,
    sales: i64,
}

/// Revenue and sales per value of `group` (a column of `sales_daily`), in `order`.
async fn groups(
    pool: &MySqlPool,
    f: &AnalyticsFilter,
    group: &'static str,
    order: &'static str,
    what: &'static str,
) -> Result<Vec<Slice>, AppError> {
    let mut q = QueryBuilder::<MySql>::new(format!(
        "SELECT {group} AS label, COALESCE(SUM(revenue), 0) AS revenue, \
         CAST(COALESCE(SUM(sales), 0) AS SIGNED) AS sales FROM sales_daily"
    ));
    filters(&mut q, f);
    q.push(format!(
        " GROUP BY 1 HAVING SUM(sales) > 0 ORDER BY {order}"
    ));
    let rows: Vec<Group> = q.build_query_as().fetch_all(pool).await.reporting(what)?;
    Ok(rows
        .into_iter()
        .map(|g| Slice {
            label: g.label,
            revenue: g.revenue,
            sales: g.sales as u64,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct TopItem {
    name: String,
    revenue: Decimal,
    quantity: i64,
}

async fn top_items(pool: &MySqlPool, f: &AnalyticsFilter) -> Result<Vec<ItemSlice>, AppError> {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT name, COALESCE(SUM(revenue), 0) AS revenue, \
         CAST(COALESCE(SUM(quantity), 0) AS SIGNED) AS quantity FROM item_daily",
    );
    filters(&mut q, f);
    q.push(" GROUP BY name HAVING SUM(quantity) > 0 ORDER BY 2 DESC, name LIMIT 10");
    let rows: Vec<TopItem> = q
        .build_query_as()
        .fetch_all(pool)
        .await
        .reporting("top items")?;
    Ok(rows
        .into_iter()
        .map(|i| ItemSlice {
            name: i.name,
            revenue: i.revenue,
            quantity: i.quantity as u64,
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct Bounds {
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
}

#[derive(sqlx::FromRow)]
struct Point {
    start: NaiveDate,
    revenue: Decimal,
    sales: i64,
}

/// Revenue and sales per step over the range shown: the range's own ends where it has
/// them, else the first and last day with sales.
async fn trend(pool: &MySqlPool, f: &AnalyticsFilter) -> Result<Trend, AppError> {
    let (first, last) = match (f.from, f.to) {
        (Some(first), Some(last)) => (first, last),
        (from, to) => {
            let mut q = QueryBuilder::<MySql>::new(
                "SELECT MIN(day) AS first, MAX(day) AS last FROM sales_daily",
            );
            filters(&mut q, f);
            q.push(" AND sales > 0");
            let bounds: Bounds = q
                .build_query_as()
                .fetch_one(pool)
                .await
                .reporting("trend bounds")?;
            match (from.or(bounds.first), to.or(bounds.last)) {
                (Some(first), Some(last)) if first <= last => (first, last),
                _ => {
                    return Ok(Trend {
                        step: Step::Month,
                        points: Vec::new(),
                    });
                }
            }
        }
    };
    let step = Step::for_span(first, last);
    // The first day of each row's step, in SQL that MariaDB and MySQL 8 share.
    let start = match step {
        Step::Day => "day",
        Step::Week => "DATE_SUB(day, INTERVAL WEEKDAY(day) DAY)",
        Step::Month => "DATE_SUB(day, INTERVAL DAYOFMONTH(day) - 1 DAY)",
    };
    let mut q = QueryBuilder::<MySql>::new(format!(
        "SELECT {start} AS start, COALESCE(SUM(revenue), 0) AS revenue, \
         CAST(COALESCE(SUM(sales), 0) AS SIGNED) AS sales FROM sales_daily"
    ));
    filters(&mut q, f);
    q.push(" GROUP BY 1 ORDER BY 1");
    let points: Vec<Point> = q
        .build_query_as()
        .fetch_all(pool)
        .await
        .reporting("trend")?;
    let known: Vec<(NaiveDate, Decimal, u64)> = points
        .into_iter()
        .map(|p| (p.start, p.revenue, p.sales as u64))
        .collect();
    Ok(Trend::fill(step, first, last, &known))
}

#[tracing::instrument(skip(pool))]
pub async fn analytics(pool: &MySqlPool, f: &AnalyticsFilter) -> Result<Analytics, AppError> {
    // Read first: a change committed after it reaches the page over its live stream.
    let feed = changes::generation(pool).await?;
    let previous_filter = f.previous();
    let previous = async {
        match &previous_filter {
            Some(p) => totals(pool, p).await.map(|t| Some(t.kpis())),
            None => Ok(None),
        }
    };
    let (now, previous, by_store, by_method, top, trend, stores) = futures::try_join!(
        totals(pool, f),
        previous,
        groups(pool, f, "store_location", "2 DESC, 1", "revenue by store"),
        groups(
            pool,
            f,
            "CAST(purchase_method AS CHAR)",
            "3 DESC, 1",
            "sales by method"
        ),
        top_items(pool, f),
        trend(pool, f),
        super::list::stores(pool),
    )?;
    Ok(Analytics {
        from: f.from,
        to: f.to,
        store: f.store.clone(),
        method: f.method,
        kpis: now.kpis(),
        previous,
        trend,
        by_store,
        by_method,
        satisfaction: [now.sat_1, now.sat_2, now.sat_3, now.sat_4, now.sat_5].map(|c| c as u64),
        top_items: top,
        stores,
        feed,
    })
}
