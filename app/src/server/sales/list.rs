//! The worker's sales table, read from MySQL: the filters, the search box, a sort by
//! every column, and pages, each request within a budget of rows examined whatever the
//! size of the table.
//!
//! - Without a search, counts come exact from the daily rollups, and pages reach the
//!   `DEEPEST_ROW`th sale (an `OFFSET` reads every row it skips, through the sort's index).
//! - A search reads `sale_search_terms`. A selective one (`SearchPlan::Postings`) reads
//!   its matching terms and joins; a broad one (`SearchPlan::Probe`) walks the list in
//!   its order and asks, of each sale, whether one of its terms matches. Either way it
//!   counts to `SEARCH_CAP` and pages that far.
//!
//! `docs/search.md` has the plans each request should get, and the test
//! `server/tests/api/sales_search.rs` checks them with `EXPLAIN` and handler counters.

use super::changes;
use super::queries::pages;
use crate::model::report::{
    DEEPEST_ROW, MatchCount, SEARCH_CAP, SaleRow, SaleSort, SalesFilter, SalesPage, SortColumn,
};
use crate::model::search::Search;
use crate::model::{AppError, FieldError, PurchaseMethod, SaleId};
use crate::server::db::{Context, like_literal};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};

/// A word whose terms the optimizer estimates at most this many is searched through
/// them: each of its sales is read once, then sorted, about four reads a term (and the
/// estimate runs about twice the true count). A broader word matches more than one sale
/// in 70 at a million sales, so walking the list meets a match at least that often.
pub const MATERIALIZE: u64 = 30_000;

/// The most filtered sales a broad search's count walks before it settles for "at
/// least": two reads each (the row, and the walk's own buffer).
pub const PROBE_WALK: u64 = 40_000;

/// How deep a broad search (`SearchPlan::Probe`) pages: at one match in 70, reaching
/// the 1,000th reads some 70,000 rows.
pub const PROBE_DEPTH: u64 = 1_000;

/// How a search meets the sales table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchPlan {
    /// Read the matching term rows (or the id range) and join the sales they name.
    Postings,
    /// Walk the sales in the list's order, probing each one's terms.
    Probe,
}

/// The WHERE clause of a list, count or export.
pub(super) fn push_filters(q: &mut QueryBuilder<'_, MySql>, f: &SalesFilter, plan: SearchPlan) {
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
    match (&f.search, plan) {
        (None, _) => {}
        (Some(Search::Id(id)), _) if id.len() == 24 => {
            q.push(" AND sales.id = ").push_bind(id.clone());
        }
        (Some(Search::Id(prefix)), _) => {
            q.push(" AND sales.id LIKE ")
                .push_bind(format!("{}%", like_literal(prefix)));
        }
        // Joined in `from_sales`: the matching ids first, then their sales.
        (Some(Search::Word(_)), SearchPlan::Postings) => {}
        // Checked on the row the walk reads anyway (`model::search::probe_text`).
        (Some(Search::Word(word)), SearchPlan::Probe) => {
            q.push(" AND LOCATE(")
                .push_bind(format!("\n{word}"))
                .push(", sales.search_text) > 0");
        }
    }
}

/// The FROM clause of a list, count or export. A selective word search starts from
/// its terms' distinct sales and reads each once (`STRAIGHT_JOIN` keeps that order:
/// given the choice, the optimizer would walk the sort's index and look each sale up in
/// the terms, which reads far more at depth).
pub(super) fn from_sales(q: &mut QueryBuilder<'_, MySql>, f: &SalesFilter, plan: SearchPlan) {
    match (&f.search, plan) {
        (Some(Search::Word(word)), SearchPlan::Postings) => {
            q.push(" FROM (SELECT DISTINCT sale_id FROM sale_search_terms WHERE term LIKE ")
                .push_bind(format!("{}%", like_literal(word)))
                .push(") AS found STRAIGHT_JOIN sales ON sales.id = found.sale_id");
        }
        _ => {
            q.push(" FROM sales");
        }
    }
}

/// The ORDER BY for a sort. Each is the order of one index (InnoDB appends the id to
/// every secondary index), so a page is read in order, never sorted whole.
pub(super) fn order_by(sort: SaleSort) -> String {
    let columns: &[&str] = match sort.column {
        SortColumn::Date => &["sale_date", "sales.id"],
        SortColumn::Store => &["store_location", "sale_date", "sales.id"],
        SortColumn::Method => &["purchase_method", "sale_date", "sales.id"],
        SortColumn::Coupon => &["coupon_used", "sale_date", "sales.id"],
        SortColumn::Customer => &["customer_email", "sale_date", "sales.id"],
        SortColumn::Items => &["item_count", "sale_date", "sales.id"],
        SortColumn::Total => &["total", "sales.id"],
    };
    let direction = if sort.descending { " DESC" } else { " ASC" };
    let keys: Vec<String> = columns.iter().map(|c| format!("{c}{direction}")).collect();
    format!(" ORDER BY {}", keys.join(", "))
}

/// A count and the plan it chose, kept together: the plan depends on the same data.
#[derive(Debug, Clone, Copy)]
struct Counted {
    matching: MatchCount,
    plan: SearchPlan,
}

/// Recently computed match counts, by filter. Paging through a list, or many people
/// opening the same one, recounts at most every few seconds; the rows themselves are
/// always read fresh. A figure is also recomputed once the backup tables have changed
/// since it was made, in any process (`changes::generation`, read once per request), so
/// whoever opens a list on any instance sees the count that includes every committed
/// edit. Requests that miss together share one computation: fifty workers opening the
/// same page at once run one count, not fifty.
#[derive(Clone, Default)]
pub struct CountCache {
    counts: Cached<std::collections::HashMap<SalesFilter, Fresh<Counted>>>,
    stores: Cached<Option<Fresh<Vec<String>>>>,
    table_rows: Cached<Option<Fresh<u64>>>,
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
    ) -> Result<Counted, AppError> {
        // Order and page do not change what matches.
        let key = SalesFilter {
            sort: SaleSort::default(),
            size: 0,
            page: 0,
            ..f.clone()
        };
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

    /// The optimizer's estimate of the sales table's rows, on the same terms.
    async fn table_rows(&self, pool: &MySqlPool, generation: u64) -> Result<u64, AppError> {
        let cell = match self.table_rows.lock() {
            Ok(mut slot) => slot
                .get_or_insert_with(|| Fresh::new(generation))
                .live(generation),
            Err(_) => Fresh::new(generation).cell,
        };
        cell.get_or_try_init(|| table_rows(pool)).await.copied()
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

/// How many sales match, and how a search should be run.
/// - No search: exact, from the daily rollups (counting a million sales rows takes a
///   second; the rollups, milliseconds).
/// - A search: counted in the sales table up to one past `SEARCH_CAP`.
async fn count_matching(pool: &MySqlPool, f: &SalesFilter) -> Result<Counted, AppError> {
    let Some(search) = &f.search else {
        return count_from_rollups(pool, f).await;
    };
    let plan = choose_plan(pool, search).await?;
    Ok(Counted {
        matching: count_searched(pool, f, search, plan).await?,
        plan,
    })
}

/// Whether a search reads its terms or probes the sales it walks past, by how many
/// term rows it would read. The optimizer's estimate answers from a few index dives
/// where counting them would read up to `MATERIALIZE` entries itself.
pub async fn choose_plan(pool: &MySqlPool, search: &Search) -> Result<SearchPlan, AppError> {
    let Search::Word(word) = search else {
        // An id prefix is a range of the primary key.
        return Ok(SearchPlan::Postings);
    };
    let plan = sqlx::query("EXPLAIN SELECT 1 FROM sale_search_terms WHERE term LIKE ?")
        .bind(format!("{}%", like_literal(word)))
        .fetch_one(pool)
        .await
        .reporting("estimate a search")?;
    // MariaDB sends EXPLAIN's `rows` as text, MySQL 8 as a number.
    let estimate = plan
        .try_get::<Option<String>, _>("rows")
        .map(|text| text.and_then(|t| t.parse::<u64>().ok()))
        .or_else(|_| plan.try_get::<Option<u64>, _>("rows"))
        .or_else(|_| {
            plan.try_get::<Option<i64>, _>("rows")
                .map(|n| n.map(|n| n.max(0) as u64))
        })
        .reporting("read a search's estimate")?
        .unwrap_or(0);
    Ok(if estimate > MATERIALIZE {
        SearchPlan::Probe
    } else {
        SearchPlan::Postings
    })
}

/// How many sales a search finds, counting no further than one past `SEARCH_CAP`:
/// - alone, its distinct sales in the term index;
/// - with other filters, through the list's own plan. A broad search there walks the
///   filtered sales probing each, and stops after `PROBE_WALK` of them: then at least
///   the matches it met are known.
async fn count_searched(
    pool: &MySqlPool,
    f: &SalesFilter,
    search: &Search,
    plan: SearchPlan,
) -> Result<MatchCount, AppError> {
    let capped = |n: i64| MatchCount {
        n: n as u64,
        exact: n as u64 <= SEARCH_CAP,
    };
    match (search, plan) {
        (Search::Word(word), _) if f.is_search_only() => sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT DISTINCT sale_id FROM sale_search_terms WHERE term LIKE ? LIMIT ?) AS t",
        )
        .bind(format!("{}%", like_literal(word)))
        .bind(SEARCH_CAP + 1)
        .fetch_one(pool)
        .await
        .map(capped),
        (Search::Word(word), SearchPlan::Probe) => {
            let mut q = QueryBuilder::<MySql>::new(
                "SELECT COUNT(*), CAST(COALESCE(SUM(found), 0) AS SIGNED) FROM (SELECT LOCATE(",
            );
            q.push_bind(format!("\n{word}"))
                .push(", search_text) > 0 AS found FROM sales");
            let unsearched = SalesFilter {
                search: None,
                ..f.clone()
            };
            push_filters(&mut q, &unsearched, plan);
            q.push(" LIMIT ").push_bind(PROBE_WALK + 1).push(") AS walked");
            q.build_query_as::<(i64, i64)>()
                .fetch_one(pool)
                .await
                .map(|(walked, found)| MatchCount {
                    n: found as u64,
                    exact: walked as u64 <= PROBE_WALK,
                })
        }
        _ => {
            let mut q = QueryBuilder::<MySql>::new("SELECT COUNT(*) FROM (SELECT 1");
            from_sales(&mut q, f, plan);
            push_filters(&mut q, f, plan);
            q.push(" LIMIT ").push_bind(SEARCH_CAP + 1).push(") AS t");
            q.build_query_scalar().fetch_one(pool).await.map(capped)
        }
    }
    .reporting("count matching sales")
}

async fn count_from_rollups(pool: &MySqlPool, f: &SalesFilter) -> Result<Counted, AppError> {
    let mut q = QueryBuilder::<MySql>::new(
        "SELECT CAST(COALESCE(SUM(sales), 0) AS SIGNED) FROM sales_daily",
    );
    super::queries::range(&mut q, f.from, f.to);
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
    Ok(Counted {
        matching: MatchCount {
            n: n as u64,
            exact: true,
        },
        plan: SearchPlan::Postings,
    })
}

/// How many sales match the filters (the table's count, refreshed live).
pub async fn matching(
    pool: &MySqlPool,
    counts: &CountCache,
    f: &SalesFilter,
) -> Result<MatchCount, AppError> {
    let generation = changes::generation(pool).await?;
    Ok(counts.count(pool, generation, f).await?.matching)
}

/// The plan an export of this filter uses: every match, whatever it costs (an export
/// is a full read by nature), joined through the terms.
pub(super) const EXPORT_PLAN: SearchPlan = SearchPlan::Postings;

#[derive(sqlx::FromRow)]
struct ListedRow {
    id: String,
    sale_date: NaiveDateTime,
    store_location: String,
    purchase_method: PurchaseMethod,
    coupon_used: bool,
    customer_email: String,
    item_count: u16,
    total: Decimal,
    version: u64,
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
    let counted = counts.count(pool, generation, f).await?;
    let matching = counted.matching.n;
    let reachable = match (&f.search, counted.plan) {
        (None, _) if walks_only_matches(f) => DEEPEST_ROW,
        // The walk passes over sales the filters leave out: as many more as they are
        // rare in the table.
        (None, _) => {
            let table = counts
                .table_rows(pool, generation)
                .await?
                .max(matching)
                .max(1);
            (DEEPEST_ROW as u128 * u128::from(matching) / u128::from(table)) as u64
        }
        (Some(_), SearchPlan::Postings) => SEARCH_CAP,
        (Some(_), SearchPlan::Probe) => PROBE_DEPTH,
    }
    .min(matching);
    if f.page > 1 && f.offset() >= reachable && f.offset() < matching {
        let message = if f.search.is_some() {
            format!(
                "A search this broad pages through its first {reachable} matches: add a word, a store or dates to narrow it."
            )
        } else {
            format!(
                "This list pages through its first {reachable} sales: choose a date range, or sort by date, to reach the rest."
            )
        };
        return Err(AppError::Invalid(vec![FieldError::new("page", message)]));
    }

    let rows: Vec<ListedRow> = page_query("SELECT", f, counted.plan)
        .build_query_as()
        .fetch_all(pool)
        .await
        .reporting("list sales")?;
    let rows = rows
        .into_iter()
        .map(|r| {
            Ok(SaleRow {
                id: SaleId::parse(&r.id).map_err(|_| AppError::Internal)?,
                sale_date: r.sale_date.and_utc(),
                store_location: r.store_location,
                purchase_method: r.purchase_method,
                coupon_used: r.coupon_used,
                customer_email: r.customer_email,
                items: u32::from(r.item_count),
                total: r.total,
                version: r.version,
            })
        })
        .collect::<Result<_, AppError>>()?;
    Ok(SalesPage {
        rows,
        matching,
        matching_exact: counted.matching.exact,
        page: f.page,
        pages: pages(reachable, f.size),
        size: f.size,
        stores: counts.stores(pool, generation).await?,
        feed: generation,
    })
}

/// Whether reading a page of this unsearched list walks only matching sales: no filter,
/// or one whose index also gives the order (a date range sorted by date; one store,
/// method or coupon choice, with or without dates, sorted by date or by that column).
fn walks_only_matches(f: &SalesFilter) -> bool {
    let dated = f.from.is_some() || f.to.is_some();
    let chosen = [
        f.store.is_some().then_some(SortColumn::Store),
        f.method.map(|_| SortColumn::Method),
        f.coupon.map(|_| SortColumn::Coupon),
    ];
    let mut chosen = chosen.into_iter().flatten();
    match (chosen.next(), chosen.next()) {
        (None, _) => !dated || f.sort.column == SortColumn::Date,
        (Some(column), None) => {
            f.sort.column == SortColumn::Date || (!dated && f.sort.column == column)
        }
        (Some(_), Some(_)) => false,
    }
}

/// The statement that reads one page; `head` is `SELECT`, or `EXPLAIN SELECT` for the
/// plan test. The page's ids are found first, from the sort's index alone (every
/// secondary index holds the id), and only they are read whole: an `OFFSET` then skips
/// index entries, not rows, and the optimizer has no reason to sort the table instead.
pub fn page_query<'a>(head: &str, f: &'a SalesFilter, plan: SearchPlan) -> QueryBuilder<'a, MySql> {
    let order = order_by(f.sort);
    let mut q = QueryBuilder::<MySql>::new(format!(
        "{head} sales.id, sale_date, store_location, purchase_method, coupon_used, customer_email, \
         item_count, total, version FROM sales JOIN (SELECT sales.id"
    ));
    from_sales(&mut q, f, plan);
    push_filters(&mut q, f, plan);
    q.push(&order);
    q.push(" LIMIT ")
        .push_bind(f.size)
        .push(" OFFSET ")
        .push_bind(f.offset());
    q.push(") AS page ON page.id = sales.id");
    q.push(order);
    q
}

/// InnoDB's estimate of the rows in `sales` (kept by the server, read without a scan).
async fn table_rows(pool: &MySqlPool) -> Result<u64, AppError> {
    let rows: Option<u64> = sqlx::query_scalar(
        "SELECT CAST(TABLE_ROWS AS UNSIGNED) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sales'",
    )
    .fetch_optional(pool)
    .await
    .reporting("estimate the sales table")?
    .flatten();
    Ok(rows.unwrap_or(0))
}

/// Every store with sales, for the filter's choices: one index lookup per store,
/// each for the first name after the last. Neither server skips through an index's
/// distinct prefixes for a GROUP BY or a correlated subquery here; either way reads
/// every sale.
pub async fn stores(pool: &MySqlPool) -> Result<Vec<String>, AppError> {
    /// More than a chain of office-supply stores has; the list stops there.
    const MOST: usize = 1000;
    let mut conn = pool.acquire().await.reporting("list stores")?;
    let mut names: Vec<String> = Vec::new();
    while names.len() < MOST {
        let next: Option<String> = sqlx::query_scalar(
            "SELECT store_location FROM sales WHERE store_location > ? \
             ORDER BY store_location LIMIT 1",
        )
        .bind(names.last().map(String::as_str).unwrap_or(""))
        .fetch_optional(&mut *conn)
        .await
        .reporting("list stores")?;
        match next {
            Some(name) => names.push(name),
            None => break,
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::SalesQuery;

    fn walks_only_matches_for(store: &str, method: &str, from: &str, sort: &str) -> bool {
        let f = SalesQuery {
            store: store.into(),
            method: method.into(),
            from: from.into(),
            sort: sort.into(),
            ..Default::default()
        };
        walks_only_matches(&f.parse().expect("valid filters"))
    }

    #[test]
    fn a_filter_whose_index_gives_the_order_walks_only_its_matches() {
        assert!(walks_only_matches_for("", "", "", "total_desc"));
        assert!(walks_only_matches_for("", "", "2015-01-01", "date_asc"));
        assert!(walks_only_matches_for(
            "Denver",
            "",
            "2015-01-01",
            "date_desc"
        ));
        assert!(walks_only_matches_for("Denver", "", "", "store_asc"));
        assert!(!walks_only_matches_for("Denver", "", "", "total_desc"));
        assert!(!walks_only_matches_for("", "", "2015-01-01", "total_desc"));
        assert!(!walks_only_matches_for("Denver", "Online", "", "date_desc"));
        assert!(!walks_only_matches_for(
            "Denver",
            "",
            "2015-01-01",
            "store_asc"
        ));
    }
}
