-- Search (infra/src/search). The documents the search projection folds events into, one
-- row per product (by SKU) and per order, with the columns queries filter, facet and sort
-- on. These rows are the embedded search index (with the FTS5 tables below) and the
-- source the Meilisearch indexer sends documents from: `position` is the log position of
-- the newest event folded into a row, so "every row above a checkpoint" is what a
-- Meilisearch index still lacks.

CREATE TABLE search_products (
    seq         INTEGER PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    brand       TEXT    NOT NULL,
    category    TEXT    NOT NULL,
    active      INTEGER NOT NULL,
    in_stock    INTEGER NOT NULL,
    available   INTEGER NOT NULL,
    created_at  INTEGER,
    doc         TEXT    NOT NULL CHECK (json_valid(doc)),
    position    INTEGER NOT NULL
);
CREATE INDEX search_products_position_idx ON search_products (position);
CREATE INDEX search_products_category_idx ON search_products (category);
CREATE INDEX search_products_brand_idx ON search_products (brand);

-- Price per currency in minor units, for filters and sorts in the caller's currency.
CREATE TABLE search_product_prices (
    sku      TEXT    NOT NULL,
    currency TEXT    NOT NULL,
    amount   INTEGER NOT NULL,
    PRIMARY KEY (sku, currency)
);

-- Warehouses holding available units of a SKU.
CREATE TABLE search_product_warehouses (
    sku       TEXT NOT NULL,
    warehouse TEXT NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE INDEX search_product_warehouses_idx ON search_product_warehouses (warehouse, sku);

-- Full text over the searchable fields; rowid = search_products.seq.
CREATE VIRTUAL TABLE search_products_fts USING fts5 (
    sku, name, description, brand, category,
    tokenize = 'unicode61'
);

CREATE TABLE search_orders (
    seq           INTEGER PRIMARY KEY,
    id            TEXT    NOT NULL UNIQUE,
    customer_id   TEXT    NOT NULL,
    status        TEXT    NOT NULL,
    grand_total   INTEGER NOT NULL,
    placed_at     INTEGER,
    doc           TEXT    NOT NULL CHECK (json_valid(doc)),
    position      INTEGER NOT NULL
);
CREATE INDEX search_orders_position_idx ON search_orders (position);

CREATE VIRTUAL TABLE search_orders_fts USING fts5 (
    order_id, customer_id, customer_name, status, skus,
    tokenize = 'unicode61'
);

-- How far each stage has got: `documents` (events folded into the rows above) and
-- `meilisearch/<index>` (rows acknowledged by Meilisearch), with the last failure.
CREATE TABLE search_checkpoints (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL CHECK (position >= 0),
    last_error TEXT,
    updated_at TEXT    NOT NULL
);
