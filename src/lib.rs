//! pocketkv: a small, fast, durable key-value server that speaks RESP2 and human text lines on
//! one port.
//!
//! Bytes become a [`protocol::Request`], the request runs as a [`command`] against the
//! [`store::Store`] and returns a [`protocol::Reply`], and the [`server`] loop encodes the reply
//! in the dialect the request came in.

#![deny(missing_debug_implementations, missing_docs, rust_2018_idioms)]

pub mod acl;
pub mod audit;
pub mod cli;
pub mod command;
pub mod config;
pub mod logging;
pub mod persist;
pub mod protocol;
pub mod pubsub;
pub mod replication;
pub mod server;
pub mod store;
