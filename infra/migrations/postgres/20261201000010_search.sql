-- Search (infra/src/search). The documents the search projection folds events into, one
-- row per product (by SKU) and per order, with the columns queries filter, facet and sort
-- on. Without Meilisearch these rows are the search index (PostgreSQL full text over the
-- generated `tsv` columns); with it they are the source the indexer sends documents
-- from: `position` is the log position of the newest event folded into a row, so "every
-- row above a checkpoint" is what a Meilisearch index still lacks.

CREATE TABLE search_products (
    id          text    PRIMARY KEY,
    name        text    NOT NULL,
    description text    NOT NULL,
    brand       text    NOT NULL,
    category    text    NOT NULL,
    active      boolean NOT NULL,
    in_stock    boolean NOT NULL,
    available   bigint  NOT NULL,
    created_at  bigint,
    doc         text    NOT NULL,
    position    bigint  NOT NULL,
    tsv         tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', id || ' ' || name || ' ' || description || ' ' || brand
                              || ' ' || category)
    ) STORED
);
CREATE INDEX search_products_position_idx ON search_products (position);
CREATE INDEX search_products_category_idx ON search_products (category);
CREATE INDEX search_products_brand_idx ON search_products (brand);
CREATE INDEX search_products_tsv_idx ON search_products USING gin (tsv);

-- Price per currency in minor units, for filters and sorts in the caller's currency.
CREATE TABLE search_product_prices (
    sku      text   NOT NULL,
    currency text   NOT NULL,
    amount   bigint NOT NULL,
    PRIMARY KEY (sku, currency)
);

-- Warehouses holding available units of a SKU.
CREATE TABLE search_product_warehouses (
    sku       text NOT NULL,
    warehouse text NOT NULL,
    PRIMARY KEY (sku, warehouse)
);
CREATE INDEX search_product_warehouses_idx ON search_product_warehouses (warehouse, sku);

CREATE TABLE search_orders (
    id            text   PRIMARY KEY,
    customer_id   text   NOT NULL,
    customer_name text   NOT NULL,
    status        text   NOT NULL,
    skus          text   NOT NULL,
    grand_total   bigint NOT NULL,
    placed_at     bigint,
    doc           text   NOT NULL,
    position      bigint NOT NULL,
    tsv           tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', id || ' ' || customer_id || ' ' || customer_name || ' '
                              || status || ' ' || skus)
    ) STORED
);
CREATE INDEX search_orders_position_idx ON search_orders (position);
CREATE INDEX search_orders_tsv_idx ON search_orders USING gin (tsv);

-- How far each stage has got: `documents` (events folded into the rows above) and
-- `meilisearch/<index>` (rows acknowledged by Meilisearch), with the last failure.
CREATE TABLE search_checkpoints (
    name       text        PRIMARY KEY,
    position   bigint      NOT NULL CHECK (position >= 0),
    last_error text,
    updated_at timestamptz NOT NULL
);
