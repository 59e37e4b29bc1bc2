//! `commerce reconcile`: figures that are derived independently must agree.
//!
//! * Per order and currency: Σ captured − Σ refunded over the payment streams = what
//!   the order stream recorded as paid and refunded = the `payments_ledger` view (when
//!   it exists).
//! * Per SKU and warehouse: on hand = received − shipped ± adjustments, folded from the
//!   stock movements = the levels the stock stream itself reported last = the
//!   `stock_levels` view (when it exists).
//! * Per loyalty account: the balance the account reported last = Σ remaining points of
//!   its unexpired lots (Σ lots − Σ spent), folded from the stream.
//!
//! Every mismatch is printed; any mismatch makes the command exit non-zero. A view is
//! exactly as fresh as its projection's checkpoint, so it is compared with the log
//! folded up to that position (a projection catching up is not a mismatch); a view
//! whose projection has no live checkpoint yet is not compared.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;

use aggregates::loyalty::LoyaltyAccount;
use aggregates::order::OrderEvent;
use aggregates::payment::PaymentEvent;
use aggregates::stock::StockEvent;
use aggregates::Decider;
use clap::Args;
use infra::store::ScanFilter;
use infra::{RecordedEvent, Store};

use super::aggregate::{decode, AggregateKind, AnyEvent};
use super::ReplayError;
use crate::cli::DatabaseArgs;

/// Options of `commerce reconcile`.
#[derive(Debug, Args, Clone)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// One figure that disagrees with another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `payments`, `stock` or `loyalty`.
    pub check: &'static str,
    /// What the figures are about, e.g. `order 0193…` or `SKU-1 @ BER-1`.
    pub subject: String,
    /// The figures, each with where it came from.
    pub detail: String,
}

/// What a reconciliation compared and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub orders: usize,
    pub stock_items: usize,
    pub loyalty_accounts: usize,
    /// Views compared (`payments_ledger`, `stock_levels`).
    pub views: Vec<&'static str>,
    pub mismatches: Vec<Mismatch>,
}

/// Calls `f` with every decoded event of one aggregate up to `to` (inclusive), page by
/// page.
async fn each_event(
    store: &Store,
    kind: AggregateKind,
    types: &[&str],
    to: Option<i64>,
    mut f: impl FnMut(&RecordedEvent, AnyEvent),
) -> Result<(), ReplayError> {
    let filter = ScanFilter {
        stream_type: Some(kind.stream_type().to_string()),
        event_types: types.iter().map(|t| t.to_string()).collect(),
        to_position: to,
        ..ScanFilter::default()
    };
    let mut after = 0;
    loop {
        let page = store.scan(&filter, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for e in &page {
            f(e, decode(e)?);
        }
    }
    Ok(())
}

/// The position a view is exactly as fresh as: its projection's live checkpoint, when
/// the view table and a live checkpoint exist.
async fn view_position(store: &Store, view: &'static str) -> Result<Option<i64>, ReplayError> {
    let exists = |table: &'static str| async move {
        let exists: bool = match store.backend_name() {
            "postgres" => infra::on_db!(store.db_read(), pool => {
                sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(pool)
                    .await?
            }),
            _ => infra::on_db!(store.db_read(), pool => {
                sqlx::query_scalar(
                    "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = $1",
                )
                .bind(table)
                .fetch_one(pool)
                .await?
            }),
        };
        Ok::<bool, ReplayError>(exists)
    };
    if !exists("projection_checkpoints").await? || !exists(view).await? {
        return Ok(None);
    }
    let position: Option<i64> = infra::on_db!(store.db_read(), pool => {
        sqlx::query_scalar(
            "SELECT position FROM projection_checkpoints WHERE name = $1 AND state = 'live'",
        )
        .bind(view)
        .fetch_optional(pool)
        .await?
    });
    Ok(position)
}

/// (order id, currency) → minor units.
type PerOrder = BTreeMap<(String, String), i64>;

/// Σ captured − Σ refunded per order, from the payment streams up to `to`.
async fn from_payments(store: &Store, to: Option<i64>) -> Result<PerOrder, ReplayError> {
    let mut sums: PerOrder = BTreeMap::new();
    each_event(
        store,
        AggregateKind::Payment,
        &["PaymentCaptured", "PaymentRefunded"],
        to,
        |_, e| match e {
            AnyEvent::Payment(PaymentEvent::PaymentCaptured(c)) => {
                *sums
                    .entry((c.order_id.to_string(), c.amount.currency.to_string()))
                    .or_default() += c.amount.amount;
            }
            AnyEvent::Payment(PaymentEvent::PaymentRefunded(c)) => {
                *sums
                    .entry((c.order_id.to_string(), c.amount.currency.to_string()))
                    .or_default() -= c.amount.amount;
            }
            _ => {}
        },
    )
    .await?;
    Ok(sums)
}

/// Paid − refunded per order, as the order streams recorded it.
async fn from_orders(store: &Store) -> Result<PerOrder, ReplayError> {
    let mut sums: PerOrder = BTreeMap::new();
    each_event(
        store,
        AggregateKind::Order,
        &["OrderPaymentCaptured", "OrderRefundRecorded"],
        None,
        |raw, e| match e {
            AnyEvent::Order(OrderEvent::OrderPaymentCaptured(c)) => {
                *sums
                    .entry((raw.stream_id.clone(), c.amount.currency.to_string()))
                    .or_default() += c.amount.amount;
            }
            AnyEvent::Order(OrderEvent::OrderRefundRecorded(c)) => {
                *sums
                    .entry((raw.stream_id.clone(), c.amount.currency.to_string()))
                    .or_default() -= c.amount.amount;
            }
            _ => {}
        },
    )
    .await?;
    Ok(sums)
}

/// Every key of two figure maps, each with its value in both (0 where absent).
fn pairs<'a, K: Ord>(
    a: &'a BTreeMap<K, i64>,
    b: &'a BTreeMap<K, i64>,
) -> impl Iterator<Item = (&'a K, i64, i64)> + 'a {
    let keys: BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    keys.into_iter().map(move |k| {
        (
            k,
            a.get(k).copied().unwrap_or(0),
            b.get(k).copied().unwrap_or(0),
        )
    })
}

async fn payments(store: &Store, r: &mut Reconciliation) -> Result<(), ReplayError> {
    let payments = from_payments(store, None).await?;
    let orders = from_orders(store).await?;
    r.orders = payments
        .keys()
        .chain(orders.keys())
        .map(|(o, _)| o)
        .collect::<BTreeSet<_>>()
        .len();
    for ((order, currency), p, o) in pairs(&payments, &orders) {
        if p != o {
            r.mismatches.push(Mismatch {
                check: "payments",
                subject: format!("order {order} ({currency})"),
                detail: format!(
                    "captured − refunded: payment streams {p}, order stream {o} (minor units)"
                ),
            });
        }
    }
    let Some(at) = view_position(store, "payments_ledger").await? else {
        return Ok(());
    };
    r.views.push("payments_ledger");
    let rows: Vec<(String, String, i64)> = infra::on_db!(store.db_read(), pool => {
        sqlx::query_as(
            "SELECT order_id, currency, CAST(sum(captured_minor - refunded_minor) AS BIGINT) \
               FROM payments_ledger GROUP BY order_id, currency",
        )
        .fetch_all(pool)
        .await?
    });
    let view: PerOrder = rows.into_iter().map(|(o, c, v)| ((o, c), v)).collect();
    let at_view = from_payments(store, Some(at)).await?;
    for ((order, currency), p, v) in pairs(&at_view, &view) {
        if p != v {
            r.mismatches.push(Mismatch {
                check: "payments",
                subject: format!("order {order} ({currency})"),
                detail: format!(
                    "captured − refunded at position {at}: payment streams {p}, payments_ledger {v} (minor units)"
                ),
            });
        }
    }
    Ok(())
}

/// (SKU, warehouse) → units.
type PerStock = BTreeMap<(String, String), i64>;

/// On hand per SKU and warehouse up to `to`: summed from the movements, and as the
/// stream last reported it.
async fn stock_figures(
    store: &Store,
    to: Option<i64>,
) -> Result<(PerStock, PerStock), ReplayError> {
    let mut moved: PerStock = BTreeMap::new();
    let mut reported: PerStock = BTreeMap::new();
    each_event(store, AggregateKind::Stock, &[], to, |_, e| {
        let AnyEvent::Stock(e) = e else { return };
        let (sku, levels) = match &e {
            StockEvent::StockReceived(x) => {
                *moved
                    .entry((x.sku.to_string(), x.warehouse.to_string()))
                    .or_default() += i64::from(x.quantity.0);
                (&x.sku, Some(&x.levels))
            }
            StockEvent::StockAdjusted(x) => {
                *moved
                    .entry((x.sku.to_string(), x.warehouse.to_string()))
                    .or_default() += x.delta;
                (&x.sku, Some(&x.levels))
            }
            StockEvent::StockReservationCommitted(x) => {
                for a in &x.shipped {
                    *moved
                        .entry((x.sku.to_string(), a.warehouse.to_string()))
                        .or_default() -= i64::from(a.quantity.0);
                }
                (&x.sku, Some(&x.levels))
            }
            StockEvent::StockReserved(x) => (&x.sku, Some(&x.levels)),
            StockEvent::StockReservationReleased(x) => (&x.sku, Some(&x.levels)),
            StockEvent::StockReservationChanged(x) => (&x.sku, Some(&x.levels)),
            StockEvent::StockReservationExpired(x) => (&x.sku, Some(&x.levels)),
            StockEvent::StockBackorderFilled(x) => (&x.sku, Some(&x.levels)),
            StockEvent::LowStockThresholdCrossed(x) => (&x.sku, Some(&x.levels)),
            StockEvent::StockBackorderLimitSet(x) => (&x.sku, None),
            StockEvent::LowStockThresholdSet(x) => (&x.sku, None),
        };
        if let Some(levels) = levels {
            for (warehouse, level) in &levels.warehouses {
                reported.insert(
                    (sku.to_string(), warehouse.to_string()),
                    i64::from(level.on_hand.0),
                );
            }
        }
    })
    .await?;
    Ok((moved, reported))
}

async fn stock(store: &Store, r: &mut Reconciliation) -> Result<(), ReplayError> {
    let (moved, reported) = stock_figures(store, None).await?;
    r.stock_items = moved
        .keys()
        .chain(reported.keys())
        .collect::<BTreeSet<_>>()
        .len();
    for ((sku, warehouse), m, s) in pairs(&moved, &reported) {
        if m != s {
            r.mismatches.push(Mismatch {
                check: "stock",
                subject: format!("{sku} @ {warehouse}"),
                detail: format!(
                    "on hand: received − shipped ± adjusted {m}, stock stream reported {s}"
                ),
            });
        }
    }
    let Some(at) = view_position(store, "stock_levels").await? else {
        return Ok(());
    };
    r.views.push("stock_levels");
    let rows: Vec<(String, String, i64)> = infra::on_db!(store.db_read(), pool => {
        sqlx::query_as("SELECT sku, warehouse_id, on_hand FROM stock_levels")
            .fetch_all(pool)
            .await?
    });
    let view: PerStock = rows.into_iter().map(|(s, w, v)| ((s, w), v)).collect();
    let (at_view, _) = stock_figures(store, Some(at)).await?;
    for ((sku, warehouse), m, v) in pairs(&at_view, &view) {
        if m != v {
            r.mismatches.push(Mismatch {
                check: "stock",
                subject: format!("{sku} @ {warehouse}"),
                detail: format!(
                    "on hand at position {at}: received − shipped ± adjusted {m}, stock_levels {v}"
                ),
            });
        }
    }
    Ok(())
}

async fn loyalty(store: &Store, r: &mut Reconciliation) -> Result<(), ReplayError> {
    let mut accounts: HashMap<String, LoyaltyAccount> = HashMap::new();
    each_event(store, AggregateKind::Loyalty, &[], None, |raw, e| {
        if let AnyEvent::Loyalty(e) = e {
            accounts
                .entry(raw.stream_id.clone())
                .or_default()
                .evolve(&e);
        }
    })
    .await?;
    r.loyalty_accounts = accounts.len();
    let mut ids: Vec<&String> = accounts.keys().collect();
    ids.sort();
    for id in ids {
        let account = &accounts[id];
        let lots: u64 = account
            .lots
            .iter()
            .filter(|l| !l.expired)
            .map(|l| l.remaining)
            .sum();
        if lots != account.balance {
            r.mismatches.push(Mismatch {
                check: "loyalty",
                subject: format!("account {id}"),
                detail: format!(
                    "balance reported {}, Σ remaining points of unexpired lots {lots}",
                    account.balance
                ),
            });
        }
    }
    Ok(())
}

/// Runs every check over the whole log.
pub async fn reconcile(store: &Store) -> Result<Reconciliation, ReplayError> {
    let mut r = Reconciliation::default();
    payments(store, &mut r).await?;
    stock(store, &mut r).await?;
    loyalty(store, &mut r).await?;
    Ok(r)
}

pub async fn run(args: ReconcileArgs, out: &mut impl Write) -> Result<(), ReplayError> {
    let store = super::open(&args.db).await?;
    let r = reconcile(&store).await?;
    writeln!(
        out,
        "checked {} orders, {} stock items, {} loyalty accounts; views: {}",
        r.orders,
        r.stock_items,
        r.loyalty_accounts,
        if r.views.is_empty() {
            "none".to_string()
        } else {
            r.views.join(", ")
        }
    )?;
    for m in &r.mismatches {
        writeln!(out, "MISMATCH {} {}: {}", m.check, m.subject, m.detail)?;
    }
    if r.mismatches.is_empty() {
        writeln!(out, "everything reconciles")?;
        Ok(())
    } else {
        let n = r.mismatches.len();
        Err(ReplayError::Failed(format!(
            "{n} {} found",
            if n == 1 { "mismatch" } else { "mismatches" }
        )))
    }
}
