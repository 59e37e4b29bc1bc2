//! `commerce webhooks reseal`: seal every stored webhook signing secret with the first
//! configured key (after a key rotation, or when keys are configured for the first time).

use clap::{Args, Subcommand};
use infra::webhook::{admin, SecretKeys};
use infra::StoreConfig;

use crate::cli::{open_store, CliError, DatabaseArgs};

/// Where webhook signing secrets are sealed with; shared by `serve` and `webhooks`.
#[derive(Debug, Args, Clone)]
pub struct SecretKeyArgs {
    /// Keys sealing webhook signing secrets at rest, `id:base64(32 bytes)`, comma-separated,
    /// the first sealing new secrets (docs/webhooks.md, "Secrets at rest"). Prefer the
    /// variable: a value on the command line shows in `ps`.
    #[arg(
        long,
        env = "COMMERCE_WEBHOOK_SECRET_KEYS",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        value_parser = SecretKeys::parse
    )]
    pub webhook_secret_keys: SecretKeys,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Seal every webhook secret that is stored in clear or under a key other than the
    /// first configured one. Run it after putting a new key first; then the old key can go.
    Reseal {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        keys: SecretKeyArgs,
    },
}

pub async fn run(command: WebhooksCommand) -> Result<(), CliError> {
    match command {
        WebhooksCommand::Reseal { db, keys } => {
            let store = open_store(&db, StoreConfig::default()).await?;
            let changed = admin::reseal(&store, &keys.webhook_secret_keys)
                .await
                .map_err(|e| CliError::runtime(format!("cannot reseal webhook secrets: {e}")))?;
            println!("{changed} webhook secrets sealed with the first key");
            Ok(())
        }
    }
}
