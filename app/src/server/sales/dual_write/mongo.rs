//! MongoDB as the primary store, for the writer.
//!
//! Single-document writes by `_id`, each carrying a server-side time limit where the
//! server honours one (`maxTimeMS` on `findAndModify`; FerretDB ignores it on inserts),
//! and, on a replica set or cluster, a journaled majority write concern. The writer
//! bounds each call on the client side too.

use super::ports::Primary;
use crate::model::{AppError, Sale, SaleId};
use crate::server::db::Context;
use crate::server::sales::codec::{object_id, sale_to_document};
use crate::server::sales::primary::{self, Deployment};
use bson::doc;
use std::collections::HashSet;
use std::time::Duration;

#[derive(Clone)]
pub struct MongoPrimary {
    pub db: mongodb::Database,
    /// The server-side limit of one write: half the writer's budget, so the server
    /// gives up well before the client does.
    pub max_time: Duration,
}

impl MongoPrimary {
    pub fn new(db: mongodb::Database, write_budget: Duration) -> Self {
        Self {
            db,
            max_time: (write_budget / 2).max(Duration::from_millis(100)),
        }
    }

    async fn deployment(&self) -> Result<Deployment, AppError> {
        primary::deployment(&self.db).await
    }

    /// The document at `expected`: where conditional writes are not atomic, `_id`
    /// alone (see `Deployment::atomic_conditional_writes`); the writer then checks the
    /// version of what it replaced, under its lease.
    fn filter(deployment: &Deployment, id: &SaleId, expected: u64) -> bson::Document {
        if deployment.atomic_conditional_writes() {
            doc! { "_id": object_id(id), "version": expected as i64 }
        } else {
            doc! { "_id": object_id(id) }
        }
    }
}

impl Primary for MongoPrimary {
    async fn get(&self, id: &SaleId) -> Result<Option<Sale>, AppError> {
        Ok(primary::find_by_ids(&self.db, std::slice::from_ref(id))
            .await?
            .pop())
    }

    async fn insert(&self, sale: &Sale) -> Result<(), AppError> {
        // An upsert through findAndModify, not an insert: FerretDB honours `maxTimeMS`
        // on findAndModify only. An insert queued behind its SQLite writer ran after
        // the writer had given up on it and closed the intent as not saved, leaving a
        // sale in MongoDB that the backup lacked and the user had been told was not
        // created (the 80 s soak found three).
        let deployment = self.deployment().await?;
        let mut fields = sale_to_document(sale, deployment.money());
        fields.remove("_id");
        let existing = primary::for_writes(&self.db, &deployment)
            .find_one_and_update(
                doc! { "_id": object_id(&sale.id) },
                doc! { "$setOnInsert": fields },
            )
            .upsert(true)
            .return_document(mongodb::options::ReturnDocument::Before)
            .max_time(self.max_time)
            .await
            .context("insert sale")?;
        match existing.as_ref().map(primary::decode).transpose()? {
            None => Ok(()),
            Some(existing) if super::holds(Some(&existing), Some(sale)) => Ok(()),
            Some(_) => Err(AppError::Conflict(
                "A sale with this id already exists.".into(),
            )),
        }
    }

    async fn swap(&self, sale: &Sale, expected: u64) -> Result<Option<Sale>, AppError> {
        let deployment = self.deployment().await?;
        let replaced = primary::for_writes(&self.db, &deployment)
            .find_one_and_replace(
                Self::filter(&deployment, &sale.id, expected),
                sale_to_document(sale, deployment.money()),
            )
            .return_document(mongodb::options::ReturnDocument::Before)
            .max_time(self.max_time)
            .await
            .context("replace sale")?;
        replaced.as_ref().map(primary::decode).transpose()
    }

    async fn take(&self, id: &SaleId, expected: u64) -> Result<Option<Sale>, AppError> {
        let deployment = self.deployment().await?;
        let deleted = primary::for_writes(&self.db, &deployment)
            .find_one_and_delete(Self::filter(&deployment, id, expected))
            .max_time(self.max_time)
            .await
            .context("delete sale")?;
        deleted.as_ref().map(primary::decode).transpose()
    }

    async fn fences(&self) -> Result<bool, AppError> {
        Ok(self.deployment().await?.atomic_conditional_writes())
    }

    async fn fence(&self, id: &SaleId, expected: u64, to: u64) -> Result<Option<Sale>, AppError> {
        let deployment = self.deployment().await?;
        if !deployment.atomic_conditional_writes() {
            return Err(AppError::Internal);
        }
        let moved = primary::for_writes(&self.db, &deployment)
            .find_one_and_update(
                doc! { "_id": object_id(id), "version": expected as i64 },
                doc! { "$set": { "version": to as i64 } },
            )
            .return_document(mongodb::options::ReturnDocument::After)
            .max_time(self.max_time)
            .await
            .context("fence sale")?;
        moved.as_ref().map(primary::decode).transpose()
    }

    async fn insert_new(&self, sales: &[Sale]) -> Result<HashSet<SaleId>, AppError> {
        primary::insert_new(&self.db, sales).await
    }

    async fn find(&self, ids: &[SaleId]) -> Result<Vec<Sale>, AppError> {
        primary::find_by_ids(&self.db, ids).await
    }

    async fn remove_created(&self, ids: &[SaleId]) -> Result<u64, AppError> {
        primary::delete_created(&self.db, ids).await
    }
}
