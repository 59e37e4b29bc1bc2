-- The SQL read side (docs/projections.md): each projection's checkpoint and the view
-- tables it folds the log into. Same table shapes on SQLite. Money is integer minor
-- units (`*_minor`) beside an ISO currency; nested data a view shows whole (return lines,
-- product attributes) is JSON text.

-- One row per projection version. `live` is the version queries read; `building` is a
-- rebuild filling shadow tables. A view is exactly as fresh as `position`: rows and
-- checkpoint commit in one transaction. A projection that failed on an event keeps the
-- error and the event's position here until it succeeds.
CREATE TABLE projection_checkpoints (
    name            text        NOT NULL,
    version         bigint      NOT NULL CHECK (version >= 1),
    state           text        NOT NULL CHECK (state IN ('live', 'building')),
    position        bigint      NOT NULL CHECK (position >= 0),
    updated_at      timestamptz NOT NULL,
    error           text,
    failed_position bigint,
    failed_at       timestamptz,
    PRIMARY KEY (name, version)
);
-- At most one live version per projection (a second process starting cannot add one).
CREATE UNIQUE INDEX projection_checkpoints_live_idx ON projection_checkpoints (name) WHERE state = 'live';

-- Projection `order_summaries`: one row per order.
CREATE TABLE order_summaries (
    order_id           text        PRIMARY KEY,
    customer_id        text        NOT NULL,
    cart_id            text,
    status             text        NOT NULL,
    fulfilment         text        NOT NULL,
    draft              boolean     NOT NULL,
    currency           text        NOT NULL,
    subtotal_minor     bigint      NOT NULL,
    discount_minor     bigint      NOT NULL,
    shipping_minor     bigint      NOT NULL,
    tax_minor          bigint      NOT NULL,
    points_value_minor bigint      NOT NULL,
    grand_total_minor  bigint      NOT NULL,
    paid_minor         bigint      NOT NULL,
    refunded_minor     bigint      NOT NULL,
    shipping_country   text        NOT NULL,
    cancel_reason      text,
    placed_at          timestamptz NOT NULL,
    confirmed_at       timestamptz,
    cancelled_at       timestamptz,
    delivered_at       timestamptz,
    completed_at       timestamptz,
    updated_at         timestamptz NOT NULL
);
-- A customer's order history, newest first.
CREATE INDEX order_summaries_customer_idx ON order_summaries (customer_id, placed_at, order_id);

CREATE TABLE order_lines (
    order_id           text   NOT NULL,
    sku                text   NOT NULL,
    name               text   NOT NULL,
    quantity           bigint NOT NULL,
    currency           text   NOT NULL,
    unit_price_minor   bigint NOT NULL,
    discount_minor     bigint NOT NULL,
    line_total_minor   bigint NOT NULL,
    shipped_quantity   bigint NOT NULL,
    delivered_quantity bigint NOT NULL,
    PRIMARY KEY (order_id, sku)
);

-- Shipments of an order, from the order's and the shipment's events.
CREATE TABLE order_shipments (
    shipment_id     text        PRIMARY KEY,
    order_id        text        NOT NULL,
    status          text,
    warehouse_id    text,
    carrier         text,
    tracking_number text,
    lines           text,
    shipped_at      timestamptz,
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX order_shipments_order_idx ON order_shipments (order_id);

-- Projection `carts`: one row per cart; a customer's open cart is status 'open'.
CREATE TABLE carts (
    cart_id             text        PRIMARY KEY,
    customer_id         text        NOT NULL,
    currency            text        NOT NULL,
    status              text        NOT NULL,
    item_count          bigint      NOT NULL,
    subtotal_minor      bigint      NOT NULL,
    shipping_method     text,
    shipping_minor      bigint,
    shipping_country    text,
    loyalty_points      bigint      NOT NULL,
    loyalty_value_minor bigint      NOT NULL,
    item_discount_minor bigint,
    tax_minor           bigint,
    grand_total_minor   bigint,
    order_id            text,
    opened_at           timestamptz NOT NULL,
    checked_out_at      timestamptz,
    abandoned_at        timestamptz,
    updated_at          timestamptz NOT NULL
);
CREATE INDEX carts_customer_idx ON carts (customer_id, status);

CREATE TABLE cart_lines (
    cart_id          text   NOT NULL,
    sku              text   NOT NULL,
    product_name     text   NOT NULL,
    category         text   NOT NULL,
    quantity         bigint NOT NULL,
    currency         text   NOT NULL,
    unit_price_minor bigint NOT NULL,
    line_total_minor bigint NOT NULL,
    PRIMARY KEY (cart_id, sku)
);

CREATE TABLE cart_coupons (
    cart_id                 text   NOT NULL,
    code                    text   NOT NULL,
    promotion_id            text   NOT NULL,
    currency                text   NOT NULL,
    item_discount_minor     bigint NOT NULL,
    shipping_discount_minor bigint NOT NULL,
    PRIMARY KEY (cart_id, code)
);

-- Projection `stock_levels`: one row per SKU and warehouse...
CREATE TABLE stock_levels (
    sku          text        NOT NULL,
    warehouse_id text        NOT NULL,
    on_hand      bigint      NOT NULL,
    reserved     bigint      NOT NULL,
    available    bigint      NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (sku, warehouse_id)
);

-- ...and one per SKU over all warehouses: backorders and the low-stock flag.
CREATE TABLE stock_items (
    sku                 text        PRIMARY KEY,
    on_hand             bigint      NOT NULL,
    reserved            bigint      NOT NULL,
    backordered         bigint      NOT NULL,
    available           bigint      NOT NULL,
    backorder_limit     bigint,
    low_stock_threshold bigint,
    low_stock           boolean     GENERATED ALWAYS AS
                            (low_stock_threshold IS NOT NULL AND available <= low_stock_threshold) STORED,
    updated_at          timestamptz NOT NULL
);

-- Projection `product_catalog`: one row per SKU, with availability from stock events
-- (a row may exist for stock received before the product was created: name is null).
CREATE TABLE product_catalog (
    sku          text        PRIMARY KEY,
    product_id   text,
    name         text,
    description  text,
    category     text,
    brand        text,
    attributes   text,
    discontinued boolean     NOT NULL,
    available    bigint      NOT NULL,
    in_stock     boolean     GENERATED ALWAYS AS (available > 0) STORED,
    created_at   timestamptz,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX product_catalog_category_idx ON product_catalog (category);

CREATE TABLE product_prices (
    sku          text        NOT NULL,
    currency     text        NOT NULL,
    amount_minor bigint      NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (sku, currency)
);

-- Projection `loyalty_accounts`: one row per customer's account...
CREATE TABLE loyalty_accounts (
    customer_id     text        PRIMARY KEY,
    account_id      text        NOT NULL,
    currency        text        NOT NULL,
    tier            text        NOT NULL,
    balance         bigint      NOT NULL,
    lifetime_points bigint      NOT NULL,
    redeemed_points bigint      NOT NULL,
    expired_points  bigint      NOT NULL,
    referral_code   text        NOT NULL,
    referred_by     text,
    enrolled_at     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- ...and its lots: points credited together, expiring together. Points expiring in the
-- next 30 days are the unexpired lots' `remaining` with `expires_at` before now + 30 days.
CREATE TABLE loyalty_lots (
    customer_id text        NOT NULL,
    lot         bigint      NOT NULL,
    points      bigint      NOT NULL,
    remaining   bigint      NOT NULL,
    expires_at  timestamptz NOT NULL,
    expired     boolean     NOT NULL,
    PRIMARY KEY (customer_id, lot)
);

-- Projection `payments_ledger`: one row per payment of an order.
CREATE TABLE payments_ledger (
    payment_id         text        PRIMARY KEY,
    order_id           text        NOT NULL,
    provider           text        NOT NULL,
    status             text        NOT NULL,
    currency           text        NOT NULL,
    amount_minor       bigint      NOT NULL,
    authorized_minor   bigint      NOT NULL,
    captured_minor     bigint      NOT NULL,
    refunded_minor     bigint      NOT NULL,
    charged_back_minor bigint      NOT NULL,
    fraud_score        bigint,
    fraud_outcome      text,
    decline_reason     text,
    provider_reference text,
    initiated_at       timestamptz NOT NULL,
    authorized_at      timestamptz,
    updated_at         timestamptz NOT NULL
);
CREATE INDEX payments_ledger_order_idx ON payments_ledger (order_id);

-- Projection `sales`: per UTC day and currency...
CREATE TABLE sales_daily (
    day                       text   NOT NULL,
    currency                  text   NOT NULL,
    orders                    bigint NOT NULL,
    revenue_minor             bigint NOT NULL,
    units                     bigint NOT NULL,
    cancelled_orders          bigint NOT NULL,
    refunds_minor             bigint NOT NULL,
    average_order_value_minor bigint GENERATED ALWAYS AS
                                  (CASE WHEN orders > 0 THEN revenue_minor / orders ELSE 0 END) STORED,
    PRIMARY KEY (day, currency)
);

-- ...and per customer, the month of the first order (the cohort) and the order count.
CREATE TABLE customer_cohorts (
    customer_id    text        PRIMARY KEY,
    cohort_month   text        NOT NULL,
    orders         bigint      NOT NULL,
    first_order_at timestamptz NOT NULL,
    last_order_at  timestamptz NOT NULL
);
CREATE INDEX customer_cohorts_month_idx ON customer_cohorts (cohort_month);

-- Projection `returns`: one row per return request.
CREATE TABLE returns (
    return_id            text        PRIMARY KEY,
    order_id             text        NOT NULL,
    status               text        NOT NULL,
    reason               text        NOT NULL,
    lines                text        NOT NULL,
    window_days          bigint      NOT NULL,
    rejection_reason     text,
    currency             text,
    refunded_minor       bigint      NOT NULL,
    replacement_order_id text,
    requested_at         timestamptz NOT NULL,
    approved_at          timestamptz,
    rejected_at          timestamptz,
    received_at          timestamptz,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX returns_order_idx ON returns (order_id);
