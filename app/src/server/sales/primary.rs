//! The `sales` collection in MongoDB: the primary copy of every sale.

use super::codec::{MoneyEncoding, document_to_sale, object_id, sale_to_document};
use crate::model::{AppError, Sale, SaleId};
use crate::server::db::{Context, mongo_error};
use bson::{Document, doc};
use futures::TryStreamExt;
use mongodb::{Collection, Database, IndexModel, options::IndexOptions};
use std::collections::HashSet;

pub const COLLECTION: &str = "sales";
const DUPLICATE_KEY: i32 = 11000;

pub fn collection(db: &Database) -> Collection<Document> {
    db.collection(COLLECTION)
}

/// The indexes the UI's lists and filters need. Idempotent.
///
/// One index per command: FerretDB 1.24 drops the connection when a multi-index
/// `createIndexes` names indexes that already exist.
#[tracing::instrument(skip_all)]
pub async fn ensure_indexes(db: &Database) -> Result<(), AppError> {
    let indexes = [
        (doc! { "saleDate": -1 }, "saleDate"),
        (
            doc! { "storeLocation": 1, "saleDate": -1 },
            "storeLocation_saleDate",
        ),
        (
            doc! { "customer.email": 1, "saleDate": -1 },
            "customerEmail_saleDate",
        ),
    ];
    for (keys, name) in indexes {
        let model = IndexModel::builder()
            .keys(keys)
            .options(IndexOptions::builder().name(name.to_string()).build())
            .build();
        collection(db)
            .create_index(model)
            .await
            .context("create sales index")?;
    }
    Ok(())
}

/// Which product answers, and how it is deployed, from the server's own answers to
/// `buildInfo` and `hello`. Features are decided from these facts, never from a command
/// merely answering ok: a FerretDB fork answers `startSession` with ok and ignores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub product: Product,
    pub topology: Topology,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Product {
    /// Any FerretDB (its `buildInfo` carries `ferretdbVersion`). Version 2 is a
    /// different engine; it is treated like 1.x until verified.
    FerretDb {
        version: String,
    },
    MongoDb {
        version: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    Standalone,
    ReplicaSet {
        name: String,
    },
    /// Reached through `mongos`.
    Sharded,
}

impl Deployment {
    pub fn from_answers(build_info: &Document, hello: &Document) -> Self {
        let text = |d: &Document, key: &str| d.get_str(key).unwrap_or("unknown").to_string();
        let product = if build_info.contains_key("ferretdbVersion") {
            Product::FerretDb {
                version: text(build_info, "ferretdbVersion"),
            }
        } else {
            Product::MongoDb {
                version: text(build_info, "version"),
            }
        };
        let topology = match (&product, hello.get_str("msg"), hello.get_str("setName")) {
            // FerretDB can be told to present a replica-set name so that its OpLog can be
            // tailed; it does not replicate.
            (Product::FerretDb { .. }, _, _) => Topology::Standalone,
            (_, Ok("isdbgrid"), _) => Topology::Sharded,
            (_, _, Ok(name)) => Topology::ReplicaSet { name: name.into() },
            _ => Topology::Standalone,
        };
        Self { product, topology }
    }

    /// A version-conditioned write is atomic, and a filter on `{_id, version}` uses the
    /// `_id` index. FerretDB 1.x evaluates any filter beyond `_id` alone in Go over a
    /// full collection scan (1 s per write at 5,000 sales, 9 s at 44,000, measured),
    /// and its updates are read-modify-write in two SQLite transactions anyway: there
    /// the lease is the only guard, and writes filter by `_id` alone.
    pub fn atomic_conditional_writes(&self) -> bool {
        matches!(self.product, Product::MongoDb { .. })
    }

    /// A replica set or cluster can lose a write acknowledged by its primary alone at a
    /// failover, so sales writes wait for a journaled majority, and the reads that
    /// decide recovery read what a majority holds.
    pub fn majority(&self) -> bool {
        self.atomic_conditional_writes() && self.topology != Topology::Standalone
    }

    pub fn money(&self) -> MoneyEncoding {
        match self.product {
            Product::FerretDb { .. } => MoneyEncoding::Text,
            Product::MongoDb { .. } => MoneyEncoding::Decimal128,
        }
    }

    /// One line for `/healthz` and the logs.
    pub fn describe(&self) -> String {
        let product = match &self.product {
            Product::FerretDb { version } => format!("FerretDB {version}"),
            Product::MongoDb { version } => format!("MongoDB {version}"),
        };
        let topology = match &self.topology {
            Topology::Standalone => "standalone".to_string(),
            Topology::ReplicaSet { name } => format!("replica set {name}"),
            Topology::Sharded => "sharded cluster".to_string(),
        };
        let writes = if self.majority() {
            "majority writes"
        } else if self.atomic_conditional_writes() {
            "single-node writes"
        } else {
            "lease-guarded writes"
        };
        format!("{product}, {topology}, {writes}")
    }
}

/// The deployment, asked once per process: a process talks to one deployment.
pub async fn deployment(db: &Database) -> Result<Deployment, AppError> {
    static DETECTED: tokio::sync::OnceCell<Deployment> = tokio::sync::OnceCell::const_new();
    DETECTED
        .get_or_try_init(|| async {
            let build_info = db
                .run_command(doc! { "buildInfo": 1 })
                .await
                .context("buildInfo")?;
            let hello = db.run_command(doc! { "hello": 1 }).await.context("hello")?;
            let found = Deployment::from_answers(&build_info, &hello);
            tracing::info!(deployment = %found.describe(), "MongoDB deployment detected");
            Ok(found)
        })
        .await
        .cloned()
}

pub async fn money_encoding(db: &Database) -> Result<MoneyEncoding, AppError> {
    Ok(deployment(db).await?.money())
}

/// The `sales` collection for the writer's writes and deciding reads: on a replica set
/// or cluster with majority write and read concerns (journaled).
pub fn for_writes(db: &Database, deployment: &Deployment) -> Collection<Document> {
    use mongodb::options::{CollectionOptions, ReadConcern, WriteConcern};
    if !deployment.majority() {
        return collection(db);
    }
    let mut write = WriteConcern::majority();
    write.journal = Some(true);
    db.collection_with_options(
        COLLECTION,
        CollectionOptions::builder()
            .write_concern(write)
            .read_concern(ReadConcern::majority())
            .build(),
    )
}

/// Inserts new sales; those whose id already exists are left alone and returned as
/// skipped. Unordered, so one duplicate does not stop the rest.
#[tracing::instrument(skip_all, fields(n = sales.len()))]
pub async fn insert_new(db: &Database, sales: &[Sale]) -> Result<HashSet<SaleId>, AppError> {
    if sales.is_empty() {
        return Ok(HashSet::new());
    }
    let deployment = deployment(db).await?;
    let docs: Vec<Document> = sales
        .iter()
        .map(|s| sale_to_document(s, deployment.money()))
        .collect();
    match for_writes(db, &deployment)
        .insert_many(docs)
        .ordered(false)
        .await
    {
        Ok(_) => Ok(HashSet::new()),
        Err(e) => {
            let mongodb::error::ErrorKind::InsertMany(failure) = e.kind.as_ref() else {
                return Err(mongo_error("insert sales", e));
            };
            let errors = failure.write_errors.as_deref().unwrap_or_default();
            if failure.write_concern_error.is_some()
                || errors.iter().any(|w| w.code != DUPLICATE_KEY)
            {
                return Err(mongo_error("insert sales", e));
            }
            Ok(errors
                .iter()
                .filter_map(|w| sales.get(w.index))
                .map(|s| s.id.clone())
                .collect())
        }
    }
}

/// Looks the sales up one `_id` at a time, a few in flight: FerretDB answers `_id`
/// equality from its SQL index but evaluates `$in` by scanning the whole collection.
pub async fn find_by_ids(db: &Database, ids: &[SaleId]) -> Result<Vec<Sale>, AppError> {
    use futures::StreamExt;
    let collection = for_writes(db, &deployment(db).await?);
    let oids: Vec<bson::oid::ObjectId> = ids.iter().map(object_id).collect();
    let found: Vec<Option<Document>> = futures::stream::iter(oids)
        .map(move |oid| {
            let collection = collection.clone();
            async move { collection.find_one(doc! { "_id": oid }).await }
        })
        .buffered(8)
        .try_collect()
        .await
        .context("find sales")?;
    found.iter().flatten().map(decode).collect()
}

pub fn decode(document: &Document) -> Result<Sale, AppError> {
    document_to_sale(document).map_err(|e| {
        tracing::error!(error = %e, "invalid sale document in MongoDB");
        AppError::Internal
    })
}

/// Deletes these sales where they still hold version 1: the importer's compensation,
/// which must not remove a sale someone has edited since.
pub async fn delete_created(db: &Database, ids: &[SaleId]) -> Result<u64, AppError> {
    let oids: Vec<_> = ids.iter().map(object_id).collect();
    let done = for_writes(db, &deployment(db).await?)
        .delete_many(doc! { "_id": { "$in": oids }, "version": 1_i64 })
        .await
        .context("delete sales")?;
    Ok(done.deleted_count)
}

/// How many of these ids MongoDB holds a sale for (an import's check).
pub async fn count_existing(db: &Database, ids: &[SaleId]) -> Result<u64, AppError> {
    let mut found = 0;
    for chunk in ids.chunks(1000) {
        let oids: Vec<_> = chunk.iter().map(object_id).collect();
        found += collection(db)
            .count_documents(doc! { "_id": { "$in": oids } })
            .await
            .context("count existing sales")?;
    }
    Ok(found)
}

pub async fn is_empty(db: &Database) -> Result<bool, AppError> {
    let first = collection(db)
        .find_one(doc! {})
        .projection(doc! { "_id": 1 })
        .await
        .context("probe sales")?;
    Ok(first.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_info(extra: Document) -> Document {
        let mut d = doc! { "version": "7.0.12", "ok": 1.0 };
        d.extend(extra);
        d
    }

    #[test]
    fn each_deployment_is_told_apart_from_its_answers() {
        let ferret = Deployment::from_answers(
            &build_info(doc! { "version": "7.0.77", "ferretdbVersion": "v1.24.2" }),
            // FerretDB can present a replica-set name for OpLog tailing; it still does not replicate.
            &doc! { "isWritablePrimary": true, "setName": "rs0", "ok": 1.0 },
        );
        assert_eq!(ferret.topology, Topology::Standalone);
        assert!(!ferret.atomic_conditional_writes());
        assert!(!ferret.majority());
        assert_eq!(ferret.money(), MoneyEncoding::Text);

        let standalone = Deployment::from_answers(
            &build_info(doc! {}),
            &doc! { "isWritablePrimary": true, "ok": 1.0 },
        );
        assert_eq!(standalone.topology, Topology::Standalone);
        assert!(standalone.atomic_conditional_writes());
        assert!(!standalone.majority());

        let replica_set = Deployment::from_answers(
            &build_info(doc! {}),
            &doc! { "isWritablePrimary": true, "setName": "rs0", "hosts": ["a:27017"], "ok": 1.0 },
        );
        assert_eq!(
            replica_set.topology,
            Topology::ReplicaSet { name: "rs0".into() }
        );
        assert!(replica_set.majority());

        let sharded = Deployment::from_answers(
            &build_info(doc! {}),
            &doc! { "isWritablePrimary": true, "msg": "isdbgrid", "ok": 1.0 },
        );
        assert_eq!(sharded.topology, Topology::Sharded);
        assert!(sharded.majority());
        assert_eq!(
            sharded.describe(),
            "MongoDB 7.0.12, sharded cluster, majority writes"
        );
    }
}
