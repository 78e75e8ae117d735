//! The normalized copy of the sales in MySQL: `sales`, `sale_items`, `sale_item_tags`.

use super::changes::Changes;
use super::rollups::Delta;
use crate::model::{AppError, Sale, SaleId, search};
use crate::server::db::{Context, finish_in_list};
use sqlx::{MySql, MySqlConnection, QueryBuilder};

/// Rows per multi-row INSERT, kept well under MySQL's 65,535 placeholders.
const CHUNK: usize = 2000;

/// Writes the sales as they are, replacing any existing rows with the same ids.
/// Runs on the caller's connection, so callers decide the transaction.
#[tracing::instrument(skip_all, fields(n = sales.len()))]
pub async fn replace(
    conn: &mut MySqlConnection,
    sales: &[Sale],
    changes: &mut Changes,
) -> Result<(), AppError> {
    if sales.is_empty() {
        return Ok(());
    }
    let ids: Vec<SaleId> = sales.iter().map(|s| s.id.clone()).collect();
    let mut delta = Delta::default();
    let stored = delta.subtract_stored(conn, &ids).await?;
    delta.add(sales);
    changes.stored(sales, &stored);
    // New sales (an import, a create) have no rows to delete.
    if !stored.is_empty() {
        delete_rows(conn, &ids).await?;
    }

    let terms: Vec<Vec<String>> = sales
        .iter()
        .map(|s| {
            let d = &s.draft;
            search::sale_terms(
                d.customer.email.as_str(),
                d.items.iter().map(|i| i.name.as_str()),
            )
        })
        .collect();
    let rows: Vec<(&Sale, String)> = sales
        .iter()
        .zip(&terms)
        .map(|(s, t)| (s, search::probe_text(t)))
        .collect();
    for chunk in rows.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO sales (id, sale_date, store_location, purchase_method, coupon_used, customer_gender, \
             customer_age, customer_email, customer_satisfaction, item_count, search_text, total, version, updated_at, backed_up_at) ",
        );
        q.push_values(chunk, |mut row, (s, search_text)| {
            let d = &s.draft;
            row.push_bind(s.id.as_str())
                .push_bind(d.sale_date.naive_utc())
                .push_bind(d.store_location.as_str())
                .push_bind(d.purchase_method.as_str())
                .push_bind(d.coupon_used)
                .push_bind(d.customer.gender.as_str())
                .push_bind(d.customer.age.get())
                .push_bind(d.customer.email.as_str())
                .push_bind(d.customer.satisfaction.get())
                .push_bind(d.items.len() as u16)
                .push_bind(search_text.as_str())
                .push_bind(d.total())
                .push_bind(s.version)
                .push_bind(s.updated_at.naive_utc())
                .push("UTC_TIMESTAMP(6)");
        });
        q.build()
            .execute(&mut *conn)
            .await
            .reporting("insert sales")?;
    }

    let items: Vec<(&SaleId, u16, &crate::model::Item)> = sales
        .iter()
        .flat_map(|s| {
            s.draft
                .items
                .iter()
                .enumerate()
                .map(move |(i, item)| (&s.id, i as u16, item))
        })
        .collect();
    for chunk in items.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO sale_items (sale_id, position, name, price, quantity) ",
        );
        q.push_values(chunk, |mut row, (id, pos, item)| {
            row.push_bind(id.as_str())
                .push_bind(*pos)
                .push_bind(item.name.as_str())
                .push_bind(item.price.get())
                .push_bind(item.quantity.get());
        });
        q.build()
            .execute(&mut *conn)
            .await
            .reporting("insert sale items")?;
    }

    let tags: Vec<(&SaleId, u16, u8, &str)> = items
        .iter()
        .flat_map(|(id, pos, item)| {
            item.tags
                .iter()
                .enumerate()
                .map(move |(t, tag)| (*id, *pos, t as u8, tag.as_str()))
        })
        .collect();
    for chunk in tags.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new(
            "INSERT INTO sale_item_tags (sale_id, position, tag_position, tag) ",
        );
        q.push_values(chunk, |mut row, (id, pos, t, tag)| {
            row.push_bind(id.as_str())
                .push_bind(*pos)
                .push_bind(*t)
                .push_bind(*tag);
        });
        q.build()
            .execute(&mut *conn)
            .await
            .reporting("insert item tags")?;
    }
    insert_search_terms(conn, sales, &terms).await?;
    delta.apply(conn).await
}

/// The words each sale is found by in the sales table's search (`model::search`).
async fn insert_search_terms(
    conn: &mut MySqlConnection,
    sales: &[Sale],
    terms: &[Vec<String>],
) -> Result<(), AppError> {
    let rows: Vec<(&SaleId, &str)> = sales
        .iter()
        .zip(terms)
        .flat_map(|(s, words)| words.iter().map(move |w| (&s.id, w.as_str())))
        .collect();
    for chunk in rows.chunks(CHUNK) {
        // The collation holds some distinct words equal (`é` and `e`): one row serves both.
        let mut q = QueryBuilder::<MySql>::new("INSERT INTO sale_search_terms (term, sale_id) ");
        q.push_values(chunk, |mut row, (id, term)| {
            row.push_bind(*term).push_bind(id.as_str());
        });
        q.push(" ON DUPLICATE KEY UPDATE term = term");
        q.build()
            .execute(&mut *conn)
            .await
            .reporting("insert search terms")?;
    }
    Ok(())
}

/// Deletes the sales (items and tags go with them by cascade), and their share of the
/// rollups.
pub async fn delete(
    conn: &mut MySqlConnection,
    ids: &[SaleId],
    changes: &mut Changes,
) -> Result<u64, AppError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut delta = Delta::default();
    let stored = delta.subtract_stored(conn, ids).await?;
    changes.deleted(&stored);
    let deleted = delete_rows(conn, ids).await?;
    delta.apply(conn).await?;
    Ok(deleted)
}

async fn delete_rows(conn: &mut MySqlConnection, ids: &[SaleId]) -> Result<u64, AppError> {
    let mut deleted = 0;
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new("DELETE FROM sales WHERE id IN (");
        finish_in_list(&mut q, chunk);
        deleted += q
            .build()
            .execute(&mut *conn)
            .await
            .reporting("delete sales")?
            .rows_affected();
    }
    Ok(deleted)
}

/// Deletes those of these sales whose rows were written before `cutoff` (UTC), and
/// returns them.
pub async fn delete_older_than(
    conn: &mut MySqlConnection,
    ids: &[SaleId],
    cutoff: chrono::NaiveDateTime,
    changes: &mut Changes,
) -> Result<Vec<SaleId>, AppError> {
    let mut old = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new("SELECT id FROM sales WHERE backed_up_at < ");
        q.push_bind(cutoff);
        q.push(" AND id IN (");
        finish_in_list(&mut q, chunk);
        q.push(" FOR UPDATE");
        let rows: Vec<String> = q
            .build_query_scalar()
            .fetch_all(&mut *conn)
            .await
            .reporting("find extra sales")?;
        old.extend(rows.iter().filter_map(|id| SaleId::parse(id).ok()));
    }
    delete(conn, &old, changes).await?;
    Ok(old)
}

/// Which of these ids have a row in the backup.
pub async fn existing(conn: &mut MySqlConnection, ids: &[SaleId]) -> Result<Vec<SaleId>, AppError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<MySql>::new("SELECT id FROM sales WHERE id IN (");
        finish_in_list(&mut q, chunk);
        let rows: Vec<String> = q
            .build_query_scalar()
            .fetch_all(&mut *conn)
            .await
            .reporting("find sales")?;
        found.extend(rows.into_iter().filter_map(|id| SaleId::parse(&id).ok()));
    }
    Ok(found)
}

/// Reads complete sales back from the three tables, with one query per table.
pub async fn load(conn: &mut MySqlConnection, ids: &[SaleId]) -> Result<Vec<Sale>, AppError> {
    load_rows(conn, ids)
        .await?
        .into_iter()
        .map(|row| {
            row.sale.map_err(|what| {
                tracing::error!(sale_id = %row.id, what, "invalid sale row in MySQL");
                AppError::Internal
            })
        })
        .collect()
}

/// A backup row as read, for reconciliation: rows that no longer parse, or whose stored
/// total disagrees with their items, count as differing instead of failing the read.
pub struct StoredSale {
    pub id: String,
    pub sale: Result<Sale, String>,
    pub total: rust_decimal::Decimal,
}

impl StoredSale {
    /// True when this row holds exactly `truth` (version, every field, the total).
    pub fn matches(&self, truth: &Sale) -> bool {
        self.sale.as_ref().is_ok_and(|s| {
            s.version == truth.version
                && s.draft == truth.draft
                && self.total == truth.draft.total()
        })
    }
}

pub async fn load_rows(
    conn: &mut MySqlConnection,
    ids: &[SaleId],
) -> Result<Vec<StoredSale>, AppError> {
    use crate::model::*;
    use std::collections::HashMap;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let in_list = |sql: &str| {
        let mut q = QueryBuilder::<MySql>::new(sql);
        q.push(" WHERE sale_id IN (");
        finish_in_list(&mut q, ids);
        q
    };
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT id, sale_date, store_location, purchase_method, coupon_used, customer_gender, customer_age, \
         customer_email, customer_satisfaction, version, updated_at, total FROM sales WHERE id IN (",
    );
    finish_in_list(&mut q, ids);
    q.push(" ORDER BY id");
    #[derive(sqlx::FromRow)]
    struct Row {
        id: String,
        sale_date: chrono::NaiveDateTime,
        store_location: String,
        purchase_method: String,
        coupon_used: bool,
        customer_gender: String,
        customer_age: u8,
        customer_email: String,
        customer_satisfaction: u8,
        version: u64,
        updated_at: chrono::NaiveDateTime,
        total: rust_decimal::Decimal,
    }
    #[derive(sqlx::FromRow)]
    struct ItemRow {
        sale_id: String,
        position: u16,
        name: String,
        price: rust_decimal::Decimal,
        quantity: u16,
    }
    #[derive(sqlx::FromRow)]
    struct TagRow {
        sale_id: String,
        position: u16,
        tag_position: u8,
        tag: String,
    }
    let rows: Vec<Row> = q
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .reporting("load sales")?;
    let items: Vec<ItemRow> =
        in_list("SELECT sale_id, position, name, price, quantity FROM sale_items")
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .reporting("load sale items")?;
    let tags: Vec<TagRow> =
        in_list("SELECT sale_id, position, tag_position, tag FROM sale_item_tags")
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .reporting("load item tags")?;

    let mut tag_map: HashMap<(String, u16), Vec<(u8, String)>> = HashMap::new();
    for t in tags {
        tag_map
            .entry((t.sale_id, t.position))
            .or_default()
            .push((t.tag_position, t.tag));
    }
    type Items = Vec<(u16, Result<Item, String>)>;
    let mut item_map: HashMap<String, Items> = HashMap::new();
    for ItemRow {
        sale_id: id,
        position: pos,
        name,
        price,
        quantity,
    } in items
    {
        let mut t = tag_map.remove(&(id.clone(), pos)).unwrap_or_default();
        t.sort();
        let item = (|| {
            Ok(Item {
                name: ItemName::parse(&name)?,
                tags: t
                    .into_iter()
                    .map(|(_, tag)| Tag::parse(&tag))
                    .collect::<Result<_, _>>()?,
                price: Price::parse(price)?,
                quantity: Quantity::parse(i64::from(quantity))?,
            })
        })();
        item_map.entry(id).or_default().push((pos, item));
    }
    Ok(rows
        .into_iter()
        .map(
            |Row {
                 id,
                 sale_date: date,
                 store_location: store,
                 purchase_method: method,
                 coupon_used: coupon,
                 customer_gender: gender,
                 customer_age: age,
                 customer_email: email,
                 customer_satisfaction: satisfaction,
                 version,
                 updated_at,
                 total,
             }| {
                let mut items = item_map.remove(&id).unwrap_or_default();
                items.sort_by_key(|(pos, _)| *pos);
                let sale = (|| {
                    Ok(Sale {
                        id: SaleId::parse(&id)?,
                        version,
                        updated_at: updated_at.and_utc(),
                        draft: SaleDraft {
                            sale_date: date.and_utc(),
                            items: items
                                .into_iter()
                                .map(|(_, i)| i)
                                .collect::<Result<_, String>>()?,
                            store_location: StoreLocation::parse(&store)?,
                            customer: Customer {
                                gender: Gender::parse(&gender)?,
                                age: Age::parse(i64::from(age))?,
                                email: Email::parse(&email)?,
                                satisfaction: Satisfaction::parse(i64::from(satisfaction))?,
                            },
                            coupon_used: coupon,
                            purchase_method: PurchaseMethod::parse(&method)?,
                        },
                    })
                })();
                StoredSale { id, sale, total }
            },
        )
        .collect())
}
