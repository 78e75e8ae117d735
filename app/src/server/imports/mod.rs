//! Imports started from the portal (`/imports`): a staff member uploads a file of sales
//! in MongoDB Extended JSON, the format `server import` reads.
//!
//! - `upload` takes the file and `check`s it (a dry run: new, already present, rejected
//!   with line and reason), then stores the job and its file in MySQL. Nothing is
//!   written to the sales.
//! - Once confirmed, the job is queued; `runner`, in every instance, claims queued jobs
//!   (and running ones whose lease ran out) and imports them through the same importer
//!   and dual writer as the CLI, reporting progress in the job's row, which every
//!   instance's page reads.
//! - `jobs` is the job table: states, claims, progress, cancellation.

pub mod check;
pub mod jobs;
pub mod runner;
pub mod upload;
