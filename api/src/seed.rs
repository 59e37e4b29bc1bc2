//! `commerce seed`: a demo shop loaded through the command layer, so every product,
//! receipt and promotion is an ordinary event with an actor (`seed`) and a command id.
//!
//! The data is generated from a fixed random seed and every command id is derived from
//! the item it creates, so running the command twice changes nothing the second time:
//! each command answers its first outcome.

use std::collections::BTreeMap;
use std::time::Instant;

use aggregates::product::{CreateProduct, Product, ProductCommand};
use aggregates::promotion::{
    CreatePromotion, DiscountKind, DiscountTier, Promotion, PromotionCommand, PromotionTarget,
    TierReward,
};
use aggregates::stock::{ReceiveStock, Stock, StockCommand};
use aggregates::{Currency, Money, ProductId, PromotionId, Quantity, Sku, WarehouseId};
use clap::Args;
use futures_util::stream::{self, StreamExt};
use infra::command::facts::{setting, write_setting};
use infra::command::{CommandContext, CommandError, Commands, ShippingOption};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::{open_store, CliError, DatabaseArgs};

/// Settings document listing the shop's warehouses (`[{code, name}]`, as
/// `PUT /admin/settings/warehouses` writes it).
pub const WAREHOUSES_SETTING: &str = "warehouses";

/// The demo shop's warehouses.
pub const WAREHOUSES: [&str; 3] = ["BER-1", "AMS-1", "NYC-1"];

const CATEGORIES: [(&str, &[&str]); 12] = [
    ("apparel/t-shirts", &["Tee", "Shirt", "Tank Top"]),
    ("apparel/hoodies", &["Hoodie", "Sweatshirt", "Zip Jacket"]),
    ("footwear/sneakers", &["Sneaker", "Runner", "Court Shoe"]),
    ("home/kitchen", &["Pan", "Knife", "Kettle", "Mug"]),
    ("home/decor", &["Lamp", "Vase", "Cushion", "Frame"]),
    ("electronics/audio", &["Headphones", "Speaker", "Earbuds"]),
    (
        "electronics/accessories",
        &["Charger", "Cable", "Power Bank"],
    ),
    ("sports/outdoor", &["Tent", "Backpack", "Water Bottle"]),
    ("sports/fitness", &["Yoga Mat", "Kettlebell", "Jump Rope"]),
    ("beauty/skincare", &["Serum", "Moisturiser", "Cleanser"]),
    ("books/fiction", &["Novel", "Short Stories", "Anthology"]),
    ("toys/games", &["Puzzle", "Board Game", "Card Game"]),
];

const ADJECTIVES: [&str; 16] = [
    "Classic",
    "Urban",
    "Alpine",
    "Coastal",
    "Midnight",
    "Sunny",
    "Nordic",
    "Vintage",
    "Essential",
    "Studio",
    "Trail",
    "Harbour",
    "Electric",
    "Quiet",
    "Bold",
    "Everyday",
];

const BRANDS: [&str; 8] = [
    "Northwind",
    "Acme",
    "Lumen",
    "Fjord",
    "Tidal",
    "Kestrel",
    "Oakline",
    "Verve",
];

/// Options of `commerce seed`.
#[derive(Debug, Args, Clone)]
pub struct SeedArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Products to create (spread over a dozen categories).
    #[arg(long, env = "COMMERCE_SEED_PRODUCTS", default_value_t = 1000)]
    pub products: usize,
}

/// What a seed run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    /// Commands that appended events.
    pub applied: usize,
    /// Commands that had run before (nothing appended).
    pub replayed: usize,
    pub products: usize,
    pub stock_receipts: usize,
    pub promotions: usize,
}

pub async fn run(args: SeedArgs) -> Result<(), CliError> {
    let store = open_store(&args.db, infra::StoreConfig::default()).await?;
    store
        .migrate()
        .await
        .map_err(|e| CliError::runtime(format!("migration failed: {e}")))?;
    let started = Instant::now();
    let report = seed(&Commands::new(store), args.products)
        .await
        .map_err(|e| CliError::runtime(format!("seeding failed: {e}")))?;
    println!(
        "seeded {} products, {} stock receipts in {} warehouses, {} promotions, tax rates and \
         shipping methods: {} commands applied, {} already there ({:.1} s)",
        report.products,
        report.stock_receipts,
        WAREHOUSES.len(),
        report.promotions,
        report.applied,
        report.replayed,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Loads the demo shop through `commands`. Idempotent.
pub async fn seed(commands: &Commands, products: usize) -> Result<SeedReport, CommandError> {
    write_settings(commands).await?;
    let mut report = SeedReport::default();
    let catalogue = catalogue(products);
    let now = commands.store().clock().now();

    let results: Vec<Result<bool, CommandError>> = stream::iter(catalogue.iter())
        .map(|item| async move {
            let ctx = seed_context(&format!("product/{}", item.sku));
            let command = ProductCommand::CreateProduct(CreateProduct {
                product_id: ProductId::from_uuid(ctx.command_id),
                sku: item.sku.clone(),
                name: item.name.clone(),
                description: item.description.clone(),
                category: item.category.to_string(),
                brand: item.brand.to_string(),
                attributes: BTreeMap::from([("colour".to_string(), item.colour.to_string())]),
                prices: item.prices.clone(),
                at: now,
            });
            let done = commands
                .execute::<Product>(&ctx, item.sku.as_str(), command)
                .await?;
            Ok(done.replayed)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    tally(&mut report, results)?;
    report.products = catalogue.len();

    let receipts: Vec<(&CatalogueItem, &str, u32)> = catalogue
        .iter()
        .flat_map(|item| {
            WAREHOUSES
                .iter()
                .zip(item.stock)
                .filter(|(_, quantity)| *quantity > 0)
                .map(move |(warehouse, quantity)| (item, *warehouse, quantity))
        })
        .collect();
    let results: Vec<Result<bool, CommandError>> = stream::iter(receipts.iter())
        .map(|(item, warehouse, quantity)| async move {
            let ctx = seed_context(&format!("stock/{}/{warehouse}", item.sku));
            let command = StockCommand::ReceiveStock(ReceiveStock {
                sku: item.sku.clone(),
                warehouse: WarehouseId::new(*warehouse),
                quantity: Quantity::new(*quantity),
                at: now,
            });
            let done = commands
                .execute::<Stock>(&ctx, item.sku.as_str(), command)
                .await?;
            Ok(done.replayed)
        })
        .buffer_unordered(16)
        .collect()
        .await;
    tally(&mut report, results)?;
    report.stock_receipts = receipts.len();

    for promotion in promotions(now) {
        let ctx = seed_context(&format!("promotion/{}", promotion.code));
        let code = promotion.code.clone();
        let command = PromotionCommand::CreatePromotion(CreatePromotion {
            promotion_id: PromotionId::from_uuid(ctx.command_id),
            ..promotion
        });
        let done = commands.execute::<Promotion>(&ctx, &code, command).await?;
        tally(&mut report, vec![Ok(done.replayed)])?;
        report.promotions += 1;
    }
    Ok(report)
}

fn seed_context(key: &str) -> CommandContext {
    let id = CommandContext::derived_id("seed", key);
    CommandContext::new("seed")
        .with_command_id(id)
        .with_correlation_id(CommandContext::derived_id("seed", "run"))
}

fn tally(
    report: &mut SeedReport,
    results: Vec<Result<bool, CommandError>>,
) -> Result<(), CommandError> {
    for result in results {
        if result? {
            report.replayed += 1;
        } else {
            report.applied += 1;
        }
    }
    Ok(())
}

async fn write_settings(commands: &Commands) -> Result<(), CommandError> {
    let store = commands.store();
    let tax_rates: BTreeMap<String, u32> = [
        ("DE", 1900),
        ("AT", 2000),
        ("FR", 2000),
        ("NL", 2100),
        ("IT", 2200),
        ("ES", 2100),
        ("GB", 2000),
        ("US", 0),
        ("US-CA", 725),
        ("US-NY", 400),
        ("US-TX", 625),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    write_setting(store, setting::TAX_RATES, &tax_rates).await?;
    let shipping = vec![
        ShippingOption {
            code: "standard".into(),
            name: "Standard (3-5 days)".into(),
            prices: prices(490, 590),
        },
        ShippingOption {
            code: "express".into(),
            name: "Express (next day)".into(),
            prices: prices(990, 1290),
        },
    ];
    write_setting(store, setting::SHIPPING_METHODS, &shipping).await?;
    write_setting(store, setting::POINT_VALUES, &prices(1, 1)).await?;
    let warehouses: Vec<serde_json::Value> = WAREHOUSES
        .iter()
        .zip(["Berlin", "Amsterdam", "New York"])
        .map(|(code, city)| serde_json::json!({ "code": code, "name": format!("{city} fulfilment centre") }))
        .collect();
    write_setting(store, WAREHOUSES_SETTING, &warehouses).await?;
    Ok(())
}

fn prices(eur_minor: i64, usd_minor: i64) -> BTreeMap<Currency, Money> {
    BTreeMap::from([
        (Currency::EUR, Money::new(eur_minor, Currency::EUR)),
        (Currency::USD, Money::new(usd_minor, Currency::USD)),
    ])
}

/// One generated product.
#[derive(Debug, Clone)]
struct CatalogueItem {
    sku: Sku,
    name: String,
    description: String,
    category: &'static str,
    brand: &'static str,
    colour: &'static str,
    prices: BTreeMap<Currency, Money>,
    /// Units per warehouse, in the order of [`WAREHOUSES`].
    stock: [u32; 3],
}

/// The SKU of the `n`-th seeded product (1-based), e.g. `APP-00001`.
pub fn sku_for(n: usize) -> Sku {
    let (category, _) = CATEGORIES[n.saturating_sub(1) % CATEGORIES.len()];
    let prefix: String = category.chars().take(3).collect::<String>().to_uppercase();
    // Three ASCII letters, a dash and digits: always a valid SKU.
    Sku::parse(format!("{prefix}-{n:05}")).unwrap_or_else(|e| unreachable!("{e:?}"))
}

/// `count` products, the same every time.
fn catalogue(count: usize) -> Vec<CatalogueItem> {
    const COLOURS: [&str; 6] = ["black", "white", "navy", "olive", "sand", "red"];
    let mut rng = StdRng::seed_from_u64(0x5eed_c0de);
    (0..count)
        .map(|n| {
            let (category, nouns) = CATEGORIES[n % CATEGORIES.len()];
            let noun = nouns[rng.random_range(0..nouns.len())];
            let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
            let brand = BRANDS[rng.random_range(0..BRANDS.len())];
            let colour = COLOURS[rng.random_range(0..COLOURS.len())];
            // Prices end in .99 (EUR 4.99 .. 199.99); USD about 10 % higher.
            let eur_minor = i64::from(rng.random_range(4u32..200)) * 100 + 99;
            let usd_minor = (eur_minor * 11 / 10) / 100 * 100 + 99;
            let stock = [
                rng.random_range(0..120),
                rng.random_range(0..80),
                rng.random_range(0..60),
            ];
            let sku = sku_for(n + 1);
            CatalogueItem {
                name: format!("{adjective} {noun}"),
                description: format!(
                    "The {brand} {adjective} {noun} in {colour}: a demo product of the seeded shop."
                ),
                sku,
                category,
                brand,
                colour,
                prices: prices(eur_minor, usd_minor),
                stock,
            }
        })
        .collect()
}

fn promotions(now: chrono::DateTime<chrono::Utc>) -> Vec<CreatePromotion> {
    let eur_amount = |minor| Money::new(minor, Currency::EUR);
    let base = |code: &str, kind: DiscountKind| CreatePromotion {
        promotion_id: PromotionId::from_uuid(uuid::Uuid::nil()),
        code: code.to_string(),
        kind,
        minimum_subtotal: None,
        starts_at: now - chrono::Duration::days(1),
        ends_at: None,
        usage_limit: None,
        per_customer_limit: None,
        stackable: false,
        target: PromotionTarget::default(),
        at: now,
    };
    vec![
        CreatePromotion {
            per_customer_limit: Some(1),
            ..base("WELCOME10", DiscountKind::Percentage { basis_points: 1000 })
        },
        CreatePromotion {
            minimum_subtotal: Some(eur_amount(5000)),
            ..base(
                "SAVE5",
                DiscountKind::FixedAmount {
                    amount: eur_amount(500),
                },
            )
        },
        CreatePromotion {
            minimum_subtotal: Some(eur_amount(3000)),
            stackable: true,
            ..base("FREESHIP", DiscountKind::FreeShipping)
        },
        CreatePromotion {
            target: PromotionTarget {
                categories: ["footwear".to_string()].into(),
                ..PromotionTarget::default()
            },
            ..base("SNEAKERS3FOR2", DiscountKind::BuyXGetY { buy: 2, get: 1 })
        },
        base(
            "BIGBASKET",
            DiscountKind::Tiered {
                tiers: vec![
                    DiscountTier {
                        threshold: eur_amount(10_000),
                        reward: TierReward::Percentage { basis_points: 500 },
                    },
                    DiscountTier {
                        threshold: eur_amount(20_000),
                        reward: TierReward::Percentage { basis_points: 1000 },
                    },
                ],
            },
        ),
        CreatePromotion {
            usage_limit: Some(10),
            ..base("FIRST10", DiscountKind::Percentage { basis_points: 2000 })
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_the_same_every_time() {
        let a = catalogue(50);
        let b = catalogue(50);
        assert_eq!(a.len(), 50);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(
                (&x.sku, &x.name, &x.prices, x.stock),
                (&y.sku, &y.name, &y.prices, y.stock)
            );
        }
        let categories: std::collections::BTreeSet<_> = a.iter().map(|i| i.category).collect();
        assert_eq!(categories.len(), CATEGORIES.len());
        assert!(a
            .iter()
            .all(|i| i.prices.len() == 2 && i.prices.values().all(|m| m.amount > 0)));
    }
}
