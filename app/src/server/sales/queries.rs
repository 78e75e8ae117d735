//! Reads for the customer's dashboard, from MySQL: a customer's purchases. The
//! worker's sales table is `list`, the management analytics `analytics`. MongoDB (the primary) is read only to load a sale for editing, where
//! its version is the truth.

use super::{backup, changes};
use crate::model::report::{PURCHASES_PAGE_SIZE, Purchases};
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
