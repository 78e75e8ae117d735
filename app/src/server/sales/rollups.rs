//! The daily rollups behind the management analytics (`sales_daily`, `item_daily`).
//!
//! Every backup write changes them in its own transaction by one net delta: the old
//! rows' contribution subtracted, the new rows' added. The delta is applied as one
//! upsert per table with its keys in sorted order, so concurrent writers lock rollup
//! rows in the same order and cannot deadlock on them. `rebuild` recomputes them from
//! the sales tables (after a sync, or when in doubt).

use super::changes::Previous;
use crate::model::{AppError, Sale, SaleId};
use crate::server::db::Context;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlConnection, QueryBuilder};
use std::collections::BTreeMap;

/// Day, store, purchase method and coupon: `sales_daily`'s key.
type DayKey = (NaiveDate, String, String, bool);
/// Day, store, purchase method and item name: `item_daily`'s key.
type ItemKey = (NaiveDate, String, String, String);

#[derive(Debug, Default, Clone, Copy)]
struct DayDelta {
    sales: i64,
    revenue: Decimal,
    satisfaction_sum: i64,
    sat: [i64; 5],
}

#[derive(Debug, Default)]
pub struct Delta {
    days: BTreeMap<DayKey, DayDelta>,
    items: BTreeMap<ItemKey, (Decimal, i64)>,
}

impl Delta {
    fn add_sale(&mut self, sign: i64, key: DayKey, total: Decimal, satisfaction: u8) {
        let d = self.days.entry(key).or_default();
        d.sales += sign;
        d.revenue += Decimal::from(sign) * total;
        d.satisfaction_sum += sign * i64::from(satisfaction);
        if let Some(slot) = d.sat.get_mut(usize::from(satisfaction).wrapping_sub(1)) {
            *slot += sign;
        }
    }

    fn add_item(&mut self, sign: i64, key: ItemKey, revenue: Decimal, qty: i64) {
        let e = self.items.entry(key).or_default();
        e.0 += Decimal::from(sign) * revenue;
        e.1 += sign * qty;
    }

    /// Adds these sales (as they will be stored).
    pub fn add(&mut self, sales: &[Sale]) {
        for s in sales {
            let d = &s.draft;
            let day = d.sale_date.date_naive();
            self.add_sale(
                1,
                (
                    day,
                    d.store_location.to_string(),
                    d.purchase_method.as_str().to_string(),
                    d.coupon_used,
                ),
                d.total(),
                d.customer.satisfaction.get(),
            );
            for item in &d.items {
                self.add_item(
                    1,
                    (
                        day,
                        d.store_location.to_string(),
                        d.purchase_method.as_str().to_string(),
                        item.name.to_string(),
                    ),
                    item.line_total(),
                    i64::from(item.quantity.get()),
                );
            }
        }
    }

    /// Subtracts the rows these sales have in MySQL now (before they are replaced or
    /// deleted), locking them: a second transaction replacing one of them waits, and
    /// then subtracts what this one wrote, never the same rows twice. Returns what
    /// MySQL held of them.
    pub async fn subtract_stored(
        &mut self,
        conn: &mut MySqlConnection,
        ids: &[SaleId],
    ) -> Result<Vec<Previous>, AppError> {
        let mut stored = Vec::new();
        for chunk in ids.chunks(2000) {
            let mut q = QueryBuilder::<MySql>::new(
                "SELECT id, DATE(sale_date) AS day, store_location, CAST(purchase_method AS CHAR) AS purchase_method, \
                 coupon_used, total, customer_satisfaction, customer_email FROM sales WHERE id IN (",
            );
            crate::server::db::finish_in_list(&mut q, chunk);
            q.push(" FOR UPDATE");
            let rows: Vec<SaleContribution> = q
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .reporting("read rollup contribution")?;
            for r in rows {
                stored.push(Previous {
                    id: r.id,
                    day: r.day,
                    customer_email: r.customer_email,
                });
                let key = (r.day, r.store_location, r.purchase_method, r.coupon_used);
                self.add_sale(-1, key, r.total, r.customer_satisfaction);
            }
            let mut q = QueryBuilder::<MySql>::new(
                "SELECT DATE(s.sale_date) AS day, s.store_location, CAST(s.purchase_method AS CHAR) AS purchase_method, \
                 i.name, i.price * i.quantity AS revenue, i.quantity \
                 FROM sale_items i JOIN sales s ON s.id = i.sale_id WHERE i.sale_id IN (",
            );
            crate::server::db::finish_in_list(&mut q, chunk);
            q.push(" FOR UPDATE");
            let rows: Vec<ItemContribution> = q
                .build_query_as()
                .fetch_all(&mut *conn)
                .await
                .reporting("read rollup contribution")?;
            for r in rows {
                let key = (r.day, r.store_location, r.purchase_method, r.name);
                self.add_item(-1, key, r.revenue, i64::from(r.quantity));
            }
        }
        Ok(stored)
    }

    /// Applies the net delta: one upsert per table, keys in sorted order.
    pub async fn apply(self, conn: &mut MySqlConnection) -> Result<(), AppError> {
        let days: Vec<_> = self
            .days
            .into_iter()
            .filter(|(_, d)| d.sales != 0 || !d.revenue.is_zero())
            .collect();
        for chunk in days.chunks(1000) {
            let mut q = QueryBuilder::<MySql>::new(
                "INSERT INTO sales_daily (day, store_location, purchase_method, coupon_used, sales, revenue, \
                 satisfaction_sum, sat_1, sat_2, sat_3, sat_4, sat_5) ",
            );
            q.push_values(chunk, |mut row, ((day, store, method, coupon), d)| {
                row.push_bind(*day)
                    .push_bind(store.as_str())
                    .push_bind(method.as_str())
                    .push_bind(*coupon)
                    .push_bind(d.sales)
                    .push_bind(d.revenue)
                    .push_bind(d.satisfaction_sum);
                for n in d.sat {
                    row.push_bind(n);
                }
            });
            q.push(
                " ON DUPLICATE KEY UPDATE sales = sales + VALUES(sales), revenue = revenue + VALUES(revenue), \
                 satisfaction_sum = satisfaction_sum + VALUES(satisfaction_sum), sat_1 = sat_1 + VALUES(sat_1), \
                 sat_2 = sat_2 + VALUES(sat_2), sat_3 = sat_3 + VALUES(sat_3), sat_4 = sat_4 + VALUES(sat_4), \
                 sat_5 = sat_5 + VALUES(sat_5)",
            );
            q.build()
                .execute(&mut *conn)
                .await
                .reporting("update sales rollup")?;
        }
        let items: Vec<_> = self
            .items
            .into_iter()
            .filter(|(_, (revenue, qty))| *qty != 0 || !revenue.is_zero())
            .collect();
        for chunk in items.chunks(1000) {
            let mut q = QueryBuilder::<MySql>::new(
                "INSERT INTO item_daily (day, store_location, purchase_method, name, revenue, quantity) ",
            );
            q.push_values(
                chunk,
                |mut row, ((day, store, method, name), (revenue, qty))| {
                    row.push_bind(*day)
                        .push_bind(store.as_str())
                        .push_bind(method.as_str())
                        .push_bind(name.as_str())
                        .push_bind(*revenue)
                        .push_bind(*qty);
                },
            );
            q.push(
                " ON DUPLICATE KEY UPDATE revenue = revenue + VALUES(revenue), quantity = quantity + VALUES(quantity)",
            );
            q.build()
                .execute(&mut *conn)
                .await
                .reporting("update item rollup")?;
        }
        Ok(())
    }
}

/// Recomputes both rollups from the sales tables, in one transaction (run again whole
/// if MySQL picks it as a deadlock victim).
#[tracing::instrument(skip_all)]
pub async fn rebuild(pool: &sqlx::MySqlPool) -> Result<(), AppError> {
    crate::server::db::retry_contended(|| rebuild_once(pool)).await
}

async fn rebuild_once(pool: &sqlx::MySqlPool) -> Result<(), AppError> {
    let mut tx = pool.begin().await.reporting("rebuild rollups")?;
    for sql in [
        "DELETE FROM sales_daily",
        "DELETE FROM item_daily",
        "INSERT INTO sales_daily \
         SELECT DATE(sale_date), store_location, purchase_method, coupon_used, COUNT(*), SUM(total), \
         SUM(customer_satisfaction), SUM(customer_satisfaction = 1), SUM(customer_satisfaction = 2), \
         SUM(customer_satisfaction = 3), SUM(customer_satisfaction = 4), SUM(customer_satisfaction = 5) \
         FROM sales GROUP BY DATE(sale_date), store_location, purchase_method, coupon_used",
        "INSERT INTO item_daily \
         SELECT DATE(s.sale_date), s.store_location, s.purchase_method, i.name, SUM(i.price * i.quantity), SUM(i.quantity) \
         FROM sale_items i JOIN sales s ON s.id = i.sale_id \
         GROUP BY DATE(s.sale_date), s.store_location, s.purchase_method, i.name",
    ] {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .reporting("rebuild rollups")?;
    }
    tx.commit().await.reporting("rebuild rollups")
}

/// What one stored sale adds to `sales_daily`.
#[derive(sqlx::FromRow)]
struct SaleContribution {
    id: String,
    day: NaiveDate,
    store_location: String,
    purchase_method: String,
    coupon_used: bool,
    total: Decimal,
    customer_satisfaction: u8,
    customer_email: String,
}

/// What one stored item line adds to `item_daily`.
#[derive(sqlx::FromRow)]
struct ItemContribution {
    day: NaiveDate,
    store_location: String,
    purchase_method: String,
    name: String,
    revenue: Decimal,
    quantity: u16,
}
