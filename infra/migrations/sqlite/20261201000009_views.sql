-- The SQL read side (docs/projections.md): each projection's checkpoint and the view
-- tables it folds the log into. Same table shapes on PostgreSQL. Money is integer minor
-- units (`*_minor`) beside an ISO currency; nested data a view shows whole (return lines,
-- product attributes) is JSON text.

-- One row per projection version. `live` is the version queries read; `building` is a
-- rebuild filling shadow tables. A view is exactly as fresh as `position`: rows and
-- checkpoint commit in one transaction. A projection that failed on an event keeps the
-- error and the event's position here until it succeeds.
CREATE TABLE projection_checkpoints (
    name            TEXT        NOT NULL,
    version         INTEGER     NOT NULL CHECK (version >= 1),
    state           TEXT        NOT NULL CHECK (state IN ('live', 'building')),
    position        INTEGER     NOT NULL CHECK (position >= 0),
    updated_at      TEXT        NOT NULL,
    error           TEXT,
    failed_position INTEGER,
    failed_at       TEXT,
    PRIMARY KEY (name, version)
);
-- At most one live version per projection (a second process starting cannot add one).
CREATE UNIQUE INDEX projection_checkpoints_live_idx ON projection_checkpoints (name) WHERE state = 'live';

-- Projection `order_summaries`: one row per order.
CREATE TABLE order_summaries (
    order_id           TEXT        PRIMARY KEY,
    customer_id        TEXT        NOT NULL,
    cart_id            TEXT,
    status             TEXT        NOT NULL,
    fulfilment         TEXT        NOT NULL,
    draft              BOOLEAN     NOT NULL,
    currency           TEXT        NOT NULL,
    subtotal_minor     INTEGER     NOT NULL,
    discount_minor     INTEGER     NOT NULL,
    shipping_minor     INTEGER     NOT NULL,
    tax_minor          INTEGER     NOT NULL,
    points_value_minor INTEGER     NOT NULL,
    grand_total_minor  INTEGER     NOT NULL,
    paid_minor         INTEGER     NOT NULL,
    refunded_minor     INTEGER     NOT NULL,
    shipping_country   TEXT        NOT NULL,
    cancel_reason      TEXT,
    placed_at          TEXT        NOT NULL,
    confirmed_at       TEXT,
    cancelled_at       TEXT,
    delivered_at       TEXT,
    completed_at       TEXT,
    updated_at         TEXT        NOT NULL
);
-- A customer's order history, newest first.
CREATE INDEX order_summaries_customer_idx ON order_summaries (customer_id, placed_at, order_id);

CREATE TABLE order_lines (
    order_id           TEXT   NOT NULL,
    sku                TEXT   NOT NULL,
    name               TEXT   NOT NULL,
    quantity           INTEGER NOT NULL,
    currency           TEXT   NOT NULL,
    unit_price_minor   INTEGER NOT NULL,
    discount_minor     INTEGER NOT NULL,
    line_total_minor   INTEGER NOT NULL,
    shipped_quantity   INTEGER NOT NULL,
    delivered_quantity INTEGER NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- Shipments of an order, from the order's and the shipment's events.
CREATE TABLE order_shipments (
    shipment_id     TEXT        PRIMARY KEY,
    order_id        TEXT        NOT NULL,
    status          TEXT,
    warehouse_id    TEXT,
    carrier         TEXT,
    tracking_number TEXT,
    lines           TEXT,
    shipped_at      TEXT,
    delivered_at    TEXT,
    updated_at      TEXT        NOT NULL
);
CREATE INDEX order_shipments_order_idx ON order_shipments (order_id);

-- Projection `carts`: one row per cart; a customer's open cart is status 'open'.
CREATE TABLE carts (
    cart_id             TEXT        PRIMARY KEY,
    customer_id         TEXT        NOT NULL,
    currency            TEXT        NOT NULL,
    status              TEXT        NOT NULL,
    item_count          INTEGER     NOT NULL,
    subtotal_minor      INTEGER     NOT NULL,
    shipping_method     TEXT,
    shipping_minor      INTEGER,
    shipping_country    TEXT,
    loyalty_points      INTEGER     NOT NULL,
    loyalty_value_minor INTEGER     NOT NULL,
    item_discount_minor INTEGER,
    tax_minor           INTEGER,
    grand_total_minor   INTEGER,
    order_id            TEXT,
    opened_at           TEXT        NOT NULL,
    checked_out_at      TEXT,
    abandoned_at        TEXT,
    updated_at          TEXT        NOT NULL
);
CREATE INDEX carts_customer_idx ON carts (customer_id, status);

CREATE TABLE cart_lines (
    cart_id          TEXT   NOT NULL,
    sku              TEXT   NOT NULL,
    product_name     TEXT   NOT NULL,
    category         TEXT   NOT NULL,
    quantity         INTEGER NOT NULL,
    currency         TEXT   NOT NULL,
    unit_price_minor INTEGER NOT NULL,
    line_total_minor INTEGER NOT NULL,
    PRIMARY KEY (cart_id, sku)
);

CREATE TABLE cart_coupons (
    cart_id                 TEXT   NOT NULL,
    code                    TEXT   NOT NULL,
    promotion_id            TEXT   NOT NULL,
    currency                TEXT   NOT NULL,
    item_discount_minor     INTEGER NOT NULL,
    shipping_discount_minor INTEGER NOT NULL,
    PRIMARY KEY (cart_id, code)
);

-- Projection `stock_levels`: one row per SKU and warehouse...
CREATE TABLE stock_levels (
    sku          TEXT        NOT NULL,
    warehouse_id TEXT        NOT NULL,
    on_hand      INTEGER     NOT NULL,
    reserved     INTEGER     NOT NULL,
    available    INTEGER     NOT NULL,
    updated_at   TEXT        NOT NULL,
    PRIMARY KEY (sku, warehouse_id)
);

-- ...and one per SKU over all warehouses: backorders and the low-stock flag.
CREATE TABLE stock_items (
    sku                 TEXT        PRIMARY KEY,
    on_hand             INTEGER     NOT NULL,
    reserved            INTEGER     NOT NULL,
    backordered         INTEGER     NOT NULL,
    available           INTEGER     NOT NULL,
    backorder_limit     INTEGER,
    low_stock_threshold INTEGER,
    low_stock           BOOLEAN     GENERATED ALWAYS AS
                            (low_stock_threshold IS NOT NULL AND available <= low_stock_threshold) STORED,
    updated_at          TEXT        NOT NULL
);

-- Projection `product_catalog`: one row per SKU, with availability from stock events
-- (a row may exist for stock received before the product was created: name is null).
CREATE TABLE product_catalog (
    sku          TEXT        PRIMARY KEY,
    product_id   TEXT,
    name         TEXT,
    description  TEXT,
    category     TEXT,
    brand        TEXT,
    attributes   TEXT,
    discontinued BOOLEAN     NOT NULL,
    available    INTEGER     NOT NULL,
    in_stock     BOOLEAN     GENERATED ALWAYS AS (available > 0) STORED,
    created_at   TEXT,
    updated_at   TEXT        NOT NULL
);
CREATE INDEX product_catalog_category_idx ON product_catalog (category);

CREATE TABLE product_prices (
    sku          TEXT        NOT NULL,
    currency     TEXT        NOT NULL,
    amount_minor INTEGER     NOT NULL,
    updated_at   TEXT        NOT NULL,
    PRIMARY KEY (sku, currency)
);

-- Projection `loyalty_accounts`: one row per customer's account...
CREATE TABLE loyalty_accounts (
    customer_id     TEXT        PRIMARY KEY,
    account_id      TEXT        NOT NULL,
    currency        TEXT        NOT NULL,
    tier            TEXT        NOT NULL,
    balance         INTEGER     NOT NULL,
    lifetime_points INTEGER     NOT NULL,
    redeemed_points INTEGER     NOT NULL,
    expired_points  INTEGER     NOT NULL,
    referral_code   TEXT        NOT NULL,
    referred_by     TEXT,
    enrolled_at     TEXT        NOT NULL,
    updated_at      TEXT        NOT NULL
);

-- ...and its lots: points credited together, expiring together. Points expiring in the
-- next 30 days are the unexpired lots' `remaining` with `expires_at` before now + 30 days.
CREATE TABLE loyalty_lots (
    customer_id TEXT        NOT NULL,
    lot         INTEGER     NOT NULL,
    points      INTEGER     NOT NULL,
    remaining   INTEGER     NOT NULL,
    expires_at  TEXT        NOT NULL,
    expired     BOOLEAN     NOT NULL,
    PRIMARY KEY (customer_id, lot)
);

-- Projection `payments_ledger`: one row per payment of an order.
CREATE TABLE payments_ledger (
    payment_id         TEXT        PRIMARY KEY,
    order_id           TEXT        NOT NULL,
    provider           TEXT        NOT NULL,
    status             TEXT        NOT NULL,
    currency           TEXT        NOT NULL,
    amount_minor       INTEGER     NOT NULL,
    authorized_minor   INTEGER     NOT NULL,
    captured_minor     INTEGER     NOT NULL,
    refunded_minor     INTEGER     NOT NULL,
    charged_back_minor INTEGER     NOT NULL,
    fraud_score        INTEGER,
    fraud_outcome      TEXT,
    decline_reason     TEXT,
    provider_reference TEXT,
    initiated_at       TEXT        NOT NULL,
    authorized_at      TEXT,
    updated_at         TEXT        NOT NULL
);
CREATE INDEX payments_ledger_order_idx ON payments_ledger (order_id);

-- Projection `sales`: per UTC day and currency...
CREATE TABLE sales_daily (
    day                       TEXT   NOT NULL,
    currency                  TEXT   NOT NULL,
    orders                    INTEGER NOT NULL,
    revenue_minor             INTEGER NOT NULL,
    units                     INTEGER NOT NULL,
    cancelled_orders          INTEGER NOT NULL,
    refunds_minor             INTEGER NOT NULL,
    average_order_value_minor INTEGER GENERATED ALWAYS AS
                                  (CASE WHEN orders > 0 THEN revenue_minor / orders ELSE 0 END) STORED,
    PRIMARY KEY (day, currency)
);

-- ...and per customer, the month of the first order (the cohort) and the order count.
CREATE TABLE customer_cohorts (
    customer_id    TEXT        PRIMARY KEY,
    cohort_month   TEXT        NOT NULL,
    orders         INTEGER     NOT NULL,
    first_order_at TEXT        NOT NULL,
    last_order_at  TEXT        NOT NULL
);
CREATE INDEX customer_cohorts_month_idx ON customer_cohorts (cohort_month);

-- Projection `returns`: one row per return request.
CREATE TABLE returns (
    return_id            TEXT        PRIMARY KEY,
    order_id             TEXT        NOT NULL,
    status               TEXT        NOT NULL,
    reason               TEXT        NOT NULL,
    lines                TEXT        NOT NULL,
    window_days          INTEGER     NOT NULL,
    rejection_reason     TEXT,
    currency             TEXT,
    refunded_minor       INTEGER     NOT NULL,
    replacement_order_id TEXT,
    requested_at         TEXT        NOT NULL,
    approved_at          TEXT,
    rejected_at          TEXT,
    received_at          TEXT,
    updated_at           TEXT        NOT NULL
);
CREATE INDEX returns_order_idx ON returns (order_id);
