//! Reads for the customer's and the management dashboards, all from MySQL: a customer's
//! purchases, and the analytics summed from the daily rollups. The worker's sales
//! table is `list`. MongoDB (the primary) is read only to load a sale for editing, where
//! its version is the truth.

use super::{backup, changes};
use crate::model::report::{Analytics, ItemSlice, Kpis, PURCHASES_PAGE_SIZE, Purchases, Slice};
use crate::model::{AppError, SaleId};
use crate::server::db::Context;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder};

pub(super) fn pages(matching: u64, size: u32) -> u32 {
    matching
        .div_ceil(u64::from(size))
        .max(1)
        .min(u64::from(u32::MAX)) as u32
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
