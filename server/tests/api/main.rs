//! Black-box tests: each test spawns the real server on port 0 with fresh MySQL and
//! MongoDB databases of its own, and talks to it over HTTP.
//! One test binary on purpose: every extra binary costs a full link of the server.

mod accounts;
mod authenticator;
mod authorization;
mod cluster;
mod compression;
mod customer_account;
mod dual_write;
mod fuzz;
mod health;
mod helpers;
mod import_collisions;
mod interleavings;
mod live;
mod outage;
mod passkeys;
mod portal_import;
mod ports;
mod probes;
mod sales_api;
mod sales_import;
mod sales_search;
mod security;
mod staff;
mod sync;
