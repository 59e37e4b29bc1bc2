//! `commerce migrate`: apply the embedded migrations, then make sure the log's tail can
//! read every row (see `infra::store` on restored transaction ids).

use clap::Args;
use infra::{Store, StoreConfig, StoreError};

use crate::cli::{open_store, CliError, DatabaseArgs};

#[derive(Debug, Args, Clone)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// After restoring a backup from another PostgreSQL cluster: give the restored
    /// events transaction ids this cluster's tail can read. Run with every engine on the
    /// database stopped, as the role that owns the tables.
    #[arg(long)]
    pub adopt_restored_rows: bool,
}

pub async fn run(args: MigrateArgs) -> Result<(), CliError> {
    let store = open_store(&args.db, StoreConfig::default()).await?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::runtime(format!("migration failed: {e}")))?;
    tracing::info!(backend = store.backend_name(), "migrations applied");
    if args.adopt_restored_rows {
        let adopted = store
            .adopt_restored_rows()
            .await
            .map_err(|e| CliError::runtime(format!("cannot adopt restored rows: {e}")))?;
        tracing::info!(adopted, "restored events adopted");
    }
    check_restored_rows(&store).await
}

/// Refuses a log whose tail would skip rows restored from another cluster.
pub async fn check_restored_rows(store: &Store) -> Result<(), CliError> {
    match store.check_restored_rows().await {
        Ok(()) => Ok(()),
        Err(err @ StoreError::ForeignTxids { .. }) => Err(CliError::config(err.to_string())),
        Err(err) => Err(CliError::runtime(format!("cannot check the log: {err}"))),
    }
}
