//! `commerce anchor write | check`: stream heads kept outside the database
//! (docs/operations.md, "Anchoring the log").

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use base64::Engine;
use clap::{Args, Subcommand};
use infra::store::anchor::{check_anchors, write_anchors};
use infra::StoreConfig;

use crate::cli::{open_store, CliError, DatabaseArgs};

/// The key signing anchor files: one the database never holds.
#[derive(Debug, Args, Clone)]
pub struct AnchorKeyArgs {
    /// Base64 of at least 32 bytes. Without it files are written unsigned (then keep them
    /// where no one who can write the database can write either).
    #[arg(long, env = "COMMERCE_ANCHOR_KEY", hide_env_values = true)]
    pub anchor_key: Option<String>,
}

impl AnchorKeyArgs {
    fn key(&self) -> Result<Option<Vec<u8>>, CliError> {
        let Some(text) = &self.anchor_key else {
            return Ok(None);
        };
        let key = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| CliError::config("--anchor-key must be base64"))?;
        if key.len() < 32 {
            return Err(CliError::config("--anchor-key must hold at least 32 bytes"));
        }
        Ok(Some(key))
    }
}

#[derive(Debug, Subcommand)]
pub enum AnchorCommand {
    /// Write the head (version and hash) of every stream to a file.
    Write {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        key: AnchorKeyArgs,
        /// Where to write; an existing file is not overwritten.
        #[arg(long)]
        output: PathBuf,
    },
    /// Check the log against an anchor file: every anchored stream must still hold its
    /// anchored event. Exits non-zero naming each stream that does not.
    Check {
        #[command(flatten)]
        db: DatabaseArgs,
        #[command(flatten)]
        key: AnchorKeyArgs,
        /// The anchor file.
        file: PathBuf,
    },
}

pub async fn run(command: AnchorCommand) -> Result<(), CliError> {
    match command {
        AnchorCommand::Write { db, key, output } => {
            let key = key.key()?;
            let store = open_store(&db, StoreConfig::default()).await?;
            let file = File::create_new(&output).map_err(|e| {
                CliError::config(format!("cannot create {}: {e}", output.display()))
            })?;
            let mut out = BufWriter::new(file);
            let summary = write_anchors(&store, key.as_deref(), &mut out)
                .await
                .map_err(|e| CliError::runtime(format!("cannot write anchors: {e}")))?;
            println!(
                "{} streams anchored at position {}{}",
                summary.streams,
                summary.head_position,
                if key.is_some() {
                    ", signed"
                } else {
                    ", unsigned"
                }
            );
            Ok(())
        }
        AnchorCommand::Check { db, key, file } => {
            let key = key.key()?;
            let store = open_store(&db, StoreConfig::default()).await?;
            let input = File::open(&file)
                .map_err(|e| CliError::config(format!("cannot open {}: {e}", file.display())))?;
            let report = check_anchors(&store, key.as_deref(), BufReader::new(input))
                .await
                .map_err(|e| CliError::runtime(format!("cannot check anchors: {e}")))?;
            for p in &report.problems {
                println!(
                    "{}/{} v{}: {}",
                    p.stream_type, p.stream_id, p.version, p.problem
                );
            }
            if report.is_ok() {
                println!(
                    "{} streams match their anchors (position {})",
                    report.streams, report.head_position
                );
                Ok(())
            } else {
                Err(CliError::runtime(format!(
                    "{} of {} anchored streams do not match",
                    report.problems.len(),
                    report.streams
                )))
            }
        }
    }
}
