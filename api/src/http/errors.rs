//! The problem table: every error the API can answer, as an RFC 9457 problem with a
//! stable `code`, an HTTP status and a title.
//!
//! The table is one macro invocation: each domain error enum gets an exhaustive `match`
//! (no catch-all arm), so a new variant does not compile until it has a row, and
//! [`PROBLEMS`] / [`PROBLEM_CODES`] list every row for the OpenAPI document and tests.

use aggregates::cart::CartError;
use aggregates::loyalty::LoyaltyError;
use aggregates::order::OrderError;
use aggregates::payment::PaymentError;
use aggregates::product::ProductError;
use aggregates::promotion::PromotionError;
use aggregates::shipment::ShipmentError;
use aggregates::stock::StockError;
use aggregates::DomainError;
use axum::http::StatusCode;
use infra::command::{CommandError, LookupError};
use infra::StoreError;

use super::problem::Problem;

/// One row of the problem table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemRow {
    /// Stable snake_case code clients branch on.
    pub code: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Short human title, the same for every occurrence of the code.
    pub title: &'static str,
}

impl ProblemRow {
    /// A problem of this row with `detail`.
    pub fn problem(&self, detail: impl Into<String>) -> Problem {
        Problem::new(
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            self.code,
            self.title,
            detail,
        )
    }
}

macro_rules! problem_table {
    (
        standalone {
            $( $s_name:ident = ($s_status:literal, $s_code:literal, $s_title:literal), )*
        }
        $(
            $(#[$doc:meta])*
            $fn_name:ident($ty:ty) => $codes:ident {
                $( $pat:pat => ($status:literal, $code:literal, $title:literal), )*
            }
        )*
    ) => {
        /// Rows that no error enum produces (HTTP, command-layer and auth problems), by
        /// name.
        pub mod row {
            use super::ProblemRow;
            $(
                #[doc = $s_title]
                pub const $s_name: ProblemRow =
                    ProblemRow { code: $s_code, status: $s_status, title: $s_title };
            )*
        }

        /// Every row of the table.
        pub const PROBLEMS: &[ProblemRow] = &[
            $( row::$s_name, )*
            $( $( ProblemRow { code: $code, status: $status, title: $title }, )* )*
        ];

        /// Every problem code the API can answer.
        pub const PROBLEM_CODES: &[&str] = &[ $( $s_code, )* $( $( $code, )* )* ];

        $(
            $(#[$doc])*
            pub const $codes: &[&str] = &[ $( $code, )* ];

            /// The row of an error of this enum; the match is exhaustive on purpose.
            pub fn $fn_name(err: &$ty) -> &'static ProblemRow {
                match err {
                    $( $pat => &ProblemRow { code: $code, status: $status, title: $title }, )*
                }
            }
        )*
    };
}

problem_table! {
    standalone {
        UNAUTHENTICATED = (401, "unauthenticated", "Authentication required"),
        FORBIDDEN = (403, "forbidden", "Forbidden"),
        RATE_LIMITED = (429, "rate_limited", "Too many requests"),
        MALFORMED_JSON = (400, "malformed_json", "Malformed JSON"),
        INVALID_BODY = (422, "invalid_body", "Invalid request body"),
        UNREADABLE_BODY = (400, "unreadable_body", "Unreadable request body"),
        UNSUPPORTED_MEDIA_TYPE = (415, "unsupported_media_type", "Unsupported media type"),
        PAYLOAD_TOO_LARGE = (413, "payload_too_large", "Payload too large"),
        INVALID_PATH = (400, "invalid_path", "Invalid path parameter"),
        INVALID_ID = (400, "invalid_id", "Invalid id"),
        INVALID_QUERY = (400, "invalid_query", "Invalid query parameters"),
        INVALID_CURRENCY = (422, "invalid_currency", "Unknown currency"),
        UNKNOWN_WAREHOUSE = (422, "unknown_warehouse", "Unknown warehouse"),
        ROUTE_NOT_FOUND = (404, "route_not_found", "No such route"),
        METHOD_NOT_ALLOWED = (405, "method_not_allowed", "Method not allowed"),
        INVALID_IDEMPOTENCY_KEY = (400, "invalid_idempotency_key", "Invalid Idempotency-Key"),
        IDEMPOTENCY_KEY_REUSED = (422, "idempotency_key_reused", "Idempotency-Key reused"),
        INVALID_IF_MATCH = (400, "invalid_if_match", "Invalid If-Match"),
        NOT_FOUND = (404, "not_found", "Not found"),
        VERSION_MISMATCH = (412, "version_mismatch", "Version mismatch"),
        CONTENTION = (503, "contention", "Busy, retry"),
        INTERNAL_ERROR = (500, "internal_error", "Internal error"),
        NOT_READY = (503, "not_ready", "Not ready"),
        REQUEST_TIMEOUT = (503, "request_timeout", "Request timed out"),
        INVALID_WEBHOOK = (400, "invalid_webhook", "Invalid webhook subscription"),
        INVALID_REQUEST = (400, "invalid_request", "Invalid request"),
        WEBHOOK_NOT_FOUND = (404, "webhook_not_found", "Webhook not found"),
        DELIVERY_NOT_FOUND = (404, "delivery_not_found", "Delivery not found"),
        REPLAY_NOT_FOUND = (404, "replay_not_found", "Replay not found"),
        UNKNOWN_AGGREGATE = (404, "unknown_aggregate", "Unknown aggregate type"),
        INVALID_AS_OF = (400, "invalid_as_of", "Invalid as_of"),
        SEARCH_UNAVAILABLE = (503, "search_unavailable", "Search unavailable"),
        SEARCH_BEHIND = (504, "search_behind", "Search index behind"),
        VIEW_BEHIND = (504, "view_behind", "View behind"),
        INVALID_CONSISTENCY_POSITION = (400, "invalid_consistency_position", "Invalid Consistency-Position"),
        POSITION_BEYOND_LOG = (400, "position_beyond_log", "Position beyond the log"),
        CALLBACK_NOT_CONFIGURED = (503, "callback_not_configured", "Callbacks not configured"),
        CALLBACK_SOURCE_UNKNOWN = (404, "callback_source_unknown", "Unknown provider or carrier"),
        CALLBACK_SIGNATURE_INVALID = (400, "callback_signature_invalid", "Callback signature invalid"),
        CALLBACK_STALE = (400, "callback_stale", "Callback timestamp outside the window"),
        CALLBACK_REPLAYED = (409, "callback_replayed", "Callback already accepted"),
        CALLBACK_REFERENCE_UNKNOWN = (404, "callback_reference_unknown", "Unknown payment or shipment"),
    }

    /// Codes a cart command can answer.
    cart_row(CartError) => CART_CODES {
        CartError::AlreadyOpened => (409, "cart_already_opened", "Cart already open"),
        CartError::NotOpened => (404, "cart_not_found", "Cart not found"),
        CartError::AlreadyCheckedOut(_) => (409, "cart_already_checked_out", "Cart already checked out"),
        CartError::AlreadyAbandoned => (409, "cart_abandoned", "Cart abandoned"),
        CartError::CurrencyMismatch { .. } => (422, "cart_currency_mismatch", "Wrong currency for this cart"),
        CartError::AmountOutOfRange => (422, "cart_amount_invalid", "Amount out of range"),
        CartError::NonPositiveUnitPrice(_) => (422, "cart_unit_price_not_positive", "Unit price not positive"),
        CartError::InvalidQuantity { .. } => (422, "cart_quantity_invalid", "Invalid quantity"),
        CartError::TooManyLines { .. } => (422, "cart_too_many_lines", "Too many cart lines"),
        CartError::ItemNotInCart(_) => (404, "cart_item_not_found", "Item not in cart"),
        CartError::CouponAlreadyApplied(_) => (409, "coupon_already_applied", "Coupon already applied"),
        CartError::CouponNotStackable(_) => (422, "coupon_not_stackable", "Coupon cannot be combined"),
        CartError::TooManyCoupons { .. } => (422, "cart_too_many_coupons", "Too many coupons"),
        CartError::CouponNotInCart(_) => (404, "coupon_not_in_cart", "Coupon not applied to the cart"),
        CartError::CouponNotApplicable { .. } => (422, "coupon_not_applicable", "Coupon does not apply"),
        CartError::EmptyShippingMethodCode => (422, "shipping_method_code_empty", "Shipping method code missing"),
        CartError::NegativeShippingPrice(_) => (422, "shipping_price_negative", "Negative shipping price"),
        CartError::InvalidLoyaltyRedemption { .. } => (422, "loyalty_redemption_invalid", "Invalid points redemption"),
        CartError::LoyaltyValueExceedsAmountDue { .. } => (422, "loyalty_value_exceeds_amount_due", "Points exceed the amount due"),
        CartError::EmptyCart => (422, "cart_empty", "Cart empty"),
        CartError::MissingShippingAddress => (422, "shipping_address_missing", "Shipping address missing"),
        CartError::MissingShippingMethod => (422, "shipping_method_missing", "Shipping method missing"),
        CartError::MissingTaxRate { .. } => (422, "tax_rate_missing", "No tax rate for the address"),
        CartError::PaymentMethodRequired { .. } => (422, "payment_method_required", "Payment method required"),
        CartError::IdleThresholdOutOfRange(_) => (422, "cart_idle_threshold_invalid", "Idle threshold out of range"),
        CartError::StillActive { .. } => (409, "cart_still_active", "Cart still active"),
    }

    /// Codes an order command can answer.
    order_row(OrderError) => ORDER_CODES {
        OrderError::AlreadyPlaced => (409, "order_already_placed", "Order already placed"),
        OrderError::NotFound => (404, "order_not_found", "Order not found"),
        OrderError::NoLines => (422, "order_no_lines", "Order without lines"),
        OrderError::DuplicateLine(_) => (422, "order_duplicate_line", "SKU on several lines"),
        OrderError::ZeroQuantity(_) => (422, "order_line_quantity_zero", "Line quantity zero"),
        OrderError::NegativeUnitPrice(_) => (422, "order_unit_price_negative", "Negative unit price"),
        OrderError::InvalidLineDiscount(_) => (422, "order_line_discount_invalid", "Invalid line discount"),
        OrderError::NegativeCharge(_) => (422, "order_charge_negative", "Negative charge"),
        OrderError::PointsExceedTotal { .. } => (422, "order_points_exceed_total", "Points exceed the order total"),
        OrderError::Money(_) => (422, "order_amount_invalid", "Invalid amount"),
        OrderError::MissingPaymentMethod => (422, "payment_method_missing", "Payment method missing"),
        OrderError::NotADraft => (409, "order_not_a_draft", "Order not a draft"),
        OrderError::DraftNotFinalised => (409, "order_still_draft", "Order still a draft"),
        OrderError::AlreadyConfirmed => (409, "order_already_confirmed", "Order already confirmed"),
        OrderError::OrderCancelled => (409, "order_cancelled", "Order cancelled"),
        OrderError::OrderCompleted => (409, "order_completed", "Order completed"),
        OrderError::EditAfterShipment => (409, "order_edit_after_shipment", "Order already shipping"),
        OrderError::UnknownLine(_) => (404, "order_line_not_found", "Order line not found"),
        OrderError::CannotRemoveLastLine => (422, "order_last_line", "Cannot remove the last line"),
        OrderError::NotConfirmed => (409, "order_not_confirmed", "Order not confirmed"),
        OrderError::CancelAfterShipment => (409, "order_cancel_after_shipment", "Order already shipping"),
        OrderError::DuplicateShipment(_) => (409, "order_shipment_already_recorded", "Shipment already recorded"),
        OrderError::EmptyShipment => (422, "order_shipment_empty", "Shipment without lines"),
        OrderError::OverShipment { .. } => (422, "order_over_shipment", "More shipped than ordered"),
        OrderError::UnknownShipment(_) => (404, "order_shipment_not_found", "Shipment not part of the order"),
        OrderError::ShipmentAlreadyDelivered(_) => (409, "order_shipment_already_delivered", "Shipment already delivered"),
        OrderError::ShipmentAlreadyReturned(_) => (409, "order_shipment_already_returned", "Shipment already returned to sender"),
        OrderError::EmptyReturn => (422, "return_empty", "Return without lines"),
        OrderError::DuplicateReturn(_) => (409, "return_already_requested", "Return already requested"),
        OrderError::ReturnExceedsDelivered { .. } => (422, "return_exceeds_delivered", "More returned than delivered"),
        OrderError::ReturnWindowClosed { .. } => (422, "return_window_closed", "Return window closed"),
        OrderError::UnknownReturn(_) => (404, "return_not_found", "Return not found"),
        OrderError::ReturnNotPending(_) => (409, "return_not_pending", "Return already decided"),
        OrderError::ReturnNotApproved(_) => (409, "return_not_approved", "Return not approved"),
        OrderError::NonPositiveAmount(_) => (422, "order_amount_not_positive", "Amount not positive"),
        OrderError::RefundExceedsPaid { .. } => (422, "refund_exceeds_paid", "Refund exceeds the amount paid"),
        OrderError::ExchangeForRejectedReturn(_) => (409, "exchange_for_rejected_return", "Return was rejected"),
        OrderError::ExchangeAlreadyRequested(_) => (409, "exchange_already_requested", "Exchange already requested"),
        OrderError::ExchangeOrderIsThisOrder => (422, "exchange_order_is_this_order", "Replacement is this order"),
        OrderError::NotDelivered => (409, "order_not_delivered", "Order not delivered"),
        OrderError::OpenReturn(_) => (409, "order_return_open", "A return is still open"),
    }

    /// Codes a payment command can answer.
    payment_row(PaymentError) => PAYMENT_CODES {
        PaymentError::AlreadyInitiated => (409, "payment_already_initiated", "Payment already initiated"),
        PaymentError::NotFound => (404, "payment_not_found", "Payment not found"),
        PaymentError::NonPositiveAmount(_) => (422, "payment_amount_not_positive", "Amount not positive"),
        PaymentError::MissingMethodToken => (422, "payment_method_token_missing", "Payment method token missing"),
        PaymentError::MissingProvider => (422, "payment_provider_missing", "Payment provider missing"),
        PaymentError::Money(_) => (422, "payment_amount_invalid", "Invalid amount"),
        PaymentError::InconsistentFraudPolicy => (422, "fraud_policy_inconsistent", "Inconsistent fraud policy"),
        PaymentError::FraudAlreadyAssessed => (409, "fraud_already_assessed", "Fraud already assessed"),
        PaymentError::FraudNotAssessed => (409, "fraud_not_assessed", "Fraud not assessed yet"),
        PaymentError::FraudRejected => (409, "payment_fraud_rejected", "Payment rejected by the fraud check"),
        PaymentError::FraudReviewPending => (409, "fraud_review_pending", "Fraud review pending"),
        PaymentError::NoFraudReviewPending => (409, "no_fraud_review_pending", "No fraud review pending"),
        PaymentError::NotAwaitingAuthorization(_) => (409, "payment_not_awaiting_authorization", "Payment not awaiting authorization"),
        PaymentError::MissingProviderReference => (422, "provider_reference_missing", "Provider reference missing"),
        PaymentError::AuthorizationExceedsAmount { .. } => (422, "authorization_exceeds_amount", "Authorization exceeds the amount"),
        PaymentError::NotAuthorized(_) => (409, "payment_not_authorized", "Payment not authorized"),
        PaymentError::CaptureExceedsAuthorized { .. } => (422, "capture_exceeds_authorized", "Capture exceeds the authorization"),
        PaymentError::VoidAfterCapture { .. } => (409, "void_after_capture", "Payment already captured"),
        PaymentError::AuthorizationBelowCaptured { .. } => (409, "authorization_below_captured", "Authorization below captured amount"),
        PaymentError::RefundExceedsCaptured { .. } => (422, "refund_exceeds_captured", "Refund exceeds the captured amount"),
        PaymentError::ChargebackExceedsCaptured { .. } => (422, "chargeback_exceeds_captured", "Chargeback exceeds the held amount"),
    }

    /// Codes a product command can answer.
    product_row(ProductError) => PRODUCT_CODES {
        ProductError::AlreadyExists => (409, "product_already_exists", "Product already exists"),
        ProductError::NotFound => (404, "product_not_found", "Product not found"),
        ProductError::Discontinued => (409, "product_discontinued", "Product discontinued"),
        ProductError::NonPositivePrice(_) => (422, "product_price_not_positive", "Price not positive"),
        ProductError::PriceCurrencyMismatch { .. } => (422, "product_price_currency_mismatch", "Price in the wrong currency"),
        ProductError::NoPrice => (422, "product_no_price", "Product without a price"),
        ProductError::EmptyName => (422, "product_name_empty", "Product name empty"),
    }

    /// Codes a promotion command can answer.
    promotion_row(PromotionError) => PROMOTION_CODES {
        PromotionError::AlreadyExists => (409, "promotion_already_exists", "Promotion already exists"),
        PromotionError::NotFound => (404, "promotion_not_found", "Promotion not found"),
        PromotionError::Deactivated => (409, "promotion_deactivated", "Promotion deactivated"),
        PromotionError::InvalidCode(_) => (422, "coupon_code_invalid", "Invalid coupon code"),
        PromotionError::InvalidPercentage(_) => (422, "promotion_percentage_invalid", "Invalid percentage"),
        PromotionError::NonPositiveAmount(_) => (422, "promotion_amount_not_positive", "Amount not positive"),
        PromotionError::MixedCurrencies { .. } => (422, "promotion_mixed_currencies", "Mixed currencies"),
        PromotionError::InvalidBuyXGetY { .. } => (422, "promotion_buy_x_get_y_invalid", "Invalid buy-X-get-Y"),
        PromotionError::NoTiers => (422, "promotion_no_tiers", "Tiered promotion without tiers"),
        PromotionError::DuplicateTierThreshold(_) => (422, "promotion_duplicate_tier", "Two tiers share a threshold"),
        PromotionError::EmptyValidityWindow => (422, "promotion_validity_empty", "Empty validity window"),
        PromotionError::ZeroUsageLimit => (422, "promotion_usage_limit_zero", "Usage limit zero"),
        PromotionError::EmptyTargetCategory => (422, "promotion_target_category_empty", "Target category empty"),
        PromotionError::NotYetActive { .. } => (422, "promotion_not_yet_active", "Promotion not yet active"),
        PromotionError::Expired { .. } => (422, "promotion_expired", "Promotion expired"),
        PromotionError::UsageLimitReached { .. } => (422, "promotion_usage_limit_reached", "Promotion used up"),
        PromotionError::CustomerLimitReached { .. } => (422, "promotion_customer_limit_reached", "Promotion used up for this customer"),
        PromotionError::OrderReservedForAnotherCustomer(_) => (409, "promotion_order_reserved", "Order reserved for another customer"),
    }

    /// Codes a shipment command can answer.
    shipment_row(ShipmentError) => SHIPMENT_CODES {
        ShipmentError::AlreadyCreated(_) => (409, "shipment_already_created", "Shipment already exists"),
        ShipmentError::NotFound => (404, "shipment_not_found", "Shipment not found"),
        ShipmentError::NoLines => (422, "shipment_no_lines", "Shipment without lines"),
        ShipmentError::ZeroQuantity(_) => (422, "shipment_quantity_zero", "Line quantity zero"),
        ShipmentError::DuplicateLine(_) => (422, "shipment_duplicate_line", "SKU on several lines"),
        ShipmentError::MissingWarehouse => (422, "shipment_warehouse_missing", "Warehouse missing"),
        ShipmentError::NotAwaitingPick(_) => (409, "shipment_not_awaiting_pick", "Shipment not awaiting pick"),
        ShipmentError::NothingToShip => (409, "shipment_nothing_to_ship", "Shipment has nothing to ship"),
        ShipmentError::NotPicked(_) => (409, "shipment_not_picked", "Shipment not picked"),
        ShipmentError::NotPacked(_) => (409, "shipment_not_packed", "Shipment not packed"),
        ShipmentError::MissingCarrierCode => (422, "carrier_code_missing", "Carrier code missing"),
        ShipmentError::MissingTrackingNumber => (422, "tracking_number_missing", "Tracking number missing"),
        ShipmentError::NotLabelled(_) => (409, "shipment_not_labelled", "Shipment not labelled"),
        ShipmentError::NotOnTheWay(_) => (409, "shipment_not_on_the_way", "Shipment not on its way"),
        ShipmentError::NoFailedDelivery(_) => (409, "shipment_no_failed_delivery", "No failed delivery"),
    }

    /// Codes a stock command can answer.
    stock_row(StockError) => STOCK_CODES {
        StockError::SkuMismatch { .. } => (422, "stock_sku_mismatch", "SKU does not match"),
        StockError::NotTracked => (404, "stock_not_tracked", "No stock recorded"),
        StockError::ZeroQuantity => (422, "stock_quantity_zero", "Quantity zero"),
        StockError::UnknownWarehouse(_) => (422, "stock_warehouse_unknown", "Warehouse holds no stock of this SKU"),
        StockError::ReasonContradictsDelta { .. } => (422, "adjustment_reason_contradicts_delta", "Reason contradicts the delta"),
        StockError::BelowReserved { .. } => (409, "stock_below_reserved", "On-hand below reserved"),
        StockError::QuantityOverflow => (422, "stock_quantity_out_of_range", "Quantity out of range"),
        StockError::InsufficientStock { .. } => (409, "insufficient_stock", "Insufficient stock"),
        StockError::ExpiryNotInFuture { .. } => (422, "reservation_expiry_not_in_future", "Expiry not in the future"),
        StockError::ReservationNotFound(_) => (404, "reservation_not_found", "Reservation not found"),
        StockError::ReservationNotActive(_) => (409, "reservation_not_active", "Reservation no longer active"),
        StockError::ReservationBackordered { .. } => (409, "reservation_backordered", "Reservation waits for backorders"),
        StockError::ReservationNotExpired { .. } => (409, "reservation_not_expired", "Reservation not expired"),
        StockError::BackorderLimitBelowOutstanding { .. } => (422, "backorder_limit_below_outstanding", "Backorder limit below outstanding"),
    }

    /// Codes a loyalty command can answer.
    loyalty_row(LoyaltyError) => LOYALTY_CODES {
        LoyaltyError::AlreadyEnrolled => (409, "loyalty_already_enrolled", "Already enrolled"),
        LoyaltyError::NotEnrolled => (404, "loyalty_not_enrolled", "Not enrolled"),
        LoyaltyError::InvalidReferralCode(_) => (422, "referral_code_invalid", "Invalid referral code"),
        LoyaltyError::ReferredBySelf => (422, "referred_by_self", "Own referral code"),
        LoyaltyError::ReferralCodeNotOurs(_) => (422, "referral_code_not_ours", "Referral code of another account"),
        LoyaltyError::SelfReferral => (422, "self_referral", "Self referral"),
        LoyaltyError::CurrencyMismatch { .. } => (422, "loyalty_currency_mismatch", "Wrong currency for this account"),
        LoyaltyError::NonPositiveAmount(_) => (422, "loyalty_amount_not_positive", "Amount not positive"),
        LoyaltyError::PointsOverflow => (422, "loyalty_points_out_of_range", "Points out of range"),
        LoyaltyError::ZeroPoints => (422, "loyalty_points_zero", "Zero points"),
        LoyaltyError::InsufficientPoints { .. } => (409, "insufficient_points", "Insufficient points"),
        LoyaltyError::HoldAlreadyExists(_) => (409, "points_hold_exists", "Points already held"),
        LoyaltyError::HoldNotFound(_) => (404, "points_hold_not_found", "No points held"),
        LoyaltyError::HoldAlreadyReturned(_) => (409, "points_hold_returned", "Points hold returned"),
        LoyaltyError::HoldAlreadyCommitted(_) => (409, "points_hold_committed", "Points hold spent"),
        LoyaltyError::OrderNotEarned(_) => (404, "loyalty_order_not_earned", "Order earned no points"),
        LoyaltyError::RefundExceedsOrder { .. } => (422, "loyalty_refund_exceeds_order", "Refund exceeds the order"),
        LoyaltyError::InvalidTierThresholds { .. } => (422, "loyalty_tier_thresholds_invalid", "Invalid tier thresholds"),
    }

    /// Codes a missing outside fact can answer.
    lookup_row(LookupError) => LOOKUP_CODES {
        LookupError::UnknownProduct(_) => (422, "unknown_product", "Unknown product"),
        LookupError::NotSoldIn { .. } => (422, "product_not_sold_in_currency", "Not sold in this currency"),
        LookupError::UnknownCoupon(_) => (422, "unknown_coupon", "Unknown coupon"),
        LookupError::CouponDeactivated(_) => (422, "coupon_deactivated", "Coupon ended"),
        LookupError::UnknownShippingMethod(_) => (422, "unknown_shipping_method", "Unknown shipping method"),
        LookupError::NoShippingPrice { .. } => (422, "shipping_method_not_priced", "Shipping method not priced in this currency"),
        LookupError::NoPointValue(_) => (422, "points_not_redeemable", "Points not redeemable in this currency"),
        LookupError::BadSetting { .. } => (500, "setting_malformed", "Shop setting malformed"),
    }
}

/// The row of a domain error: the row of the aggregate's error inside it.
pub fn domain_row(err: &DomainError) -> &'static ProblemRow {
    match err {
        DomainError::Cart(e) => cart_row(e),
        DomainError::Order(e) => order_row(e),
        DomainError::Payment(e) => payment_row(e),
        DomainError::Product(e) => product_row(e),
        DomainError::Promotion(e) => promotion_row(e),
        DomainError::Shipment(e) => shipment_row(e),
        DomainError::Stock(e) => stock_row(e),
        DomainError::Loyalty(e) => loyalty_row(e),
    }
}

/// The row for an error response that is not a problem (a rejection of axum's own
/// extractors, a bare status from a handler), chosen by its status and text.
pub fn stray_row(status: StatusCode, text: &str) -> &'static ProblemRow {
    match status.as_u16() {
        400 if text.starts_with("Failed to deserialize query string") => &row::INVALID_QUERY,
        400 if text.starts_with("Invalid URL") || text.starts_with("Wrong number of path") => {
            &row::INVALID_PATH
        }
        401 => &row::UNAUTHENTICATED,
        403 => &row::FORBIDDEN,
        404 => &row::NOT_FOUND,
        405 => &row::METHOD_NOT_ALLOWED,
        413 => &row::PAYLOAD_TOO_LARGE,
        415 => &row::UNSUPPORTED_MEDIA_TYPE,
        422 => &row::INVALID_BODY,
        429 => &row::RATE_LIMITED,
        400..=499 => &row::INVALID_REQUEST,
        _ => &row::INTERNAL_ERROR,
    }
}

/// The row of `code`, if the table has one.
pub fn row(code: &str) -> Option<&'static ProblemRow> {
    PROBLEMS.iter().find(|r| r.code == code)
}

/// How long a client should wait after losing to concurrent writers, in seconds.
const CONTENTION_RETRY_AFTER: u32 = 1;

impl From<CommandError> for Problem {
    fn from(err: CommandError) -> Self {
        match &err {
            CommandError::Domain(e) => domain_row(e).problem(e.to_string()),
            CommandError::Lookup(e) => {
                let row = lookup_row(e);
                if row.status >= 500 {
                    row.problem("the shop is misconfigured; see the server log")
                        .with_internal(e.to_string())
                } else {
                    row.problem(e.to_string())
                }
            }
            CommandError::NotFound { .. } => row::NOT_FOUND.problem(err.to_string()),
            CommandError::VersionMismatch { current, .. } => row::VERSION_MISMATCH
                .problem(err.to_string())
                .with_current_version(*current),
            CommandError::Contention { .. } => row::CONTENTION
                .problem(err.to_string())
                .with_retry_after(CONTENTION_RETRY_AFTER),
            CommandError::Store(StoreError::TooLarge { .. }) => {
                row::PAYLOAD_TOO_LARGE.problem(err.to_string())
            }
            CommandError::Decode { .. } | CommandError::Store(_) => row::INTERNAL_ERROR
                .problem("the request could not be completed")
                .with_internal(err.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use aggregates::MoneyError;
    use axum::http::header::{ETAG, RETRY_AFTER};
    use axum::response::IntoResponse;
    use infra::StreamRef;

    use super::*;

    fn code_of(err: impl Into<DomainError>) -> (&'static str, u16) {
        let row = domain_row(&err.into());
        (row.code, row.status)
    }

    #[test]
    fn no_two_rows_share_a_code_and_codes_are_listed_once() {
        let mut seen = HashSet::new();
        for row in PROBLEMS {
            assert!(seen.insert(row.code), "code {} has two rows", row.code);
        }
        assert_eq!(PROBLEM_CODES.len(), PROBLEMS.len());
        for (row, code) in PROBLEMS.iter().zip(PROBLEM_CODES) {
            assert_eq!(row.code, *code);
        }
    }

    #[test]
    fn every_row_is_a_snake_case_error_with_a_title() {
        for row in PROBLEMS {
            assert!(
                row.code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !row.code.starts_with('_')
                    && !row.code.ends_with('_'),
                "{} is not snake_case",
                row.code
            );
            assert!((400..600).contains(&row.status), "{}", row.code);
            assert!(!row.title.is_empty(), "{}", row.code);
            assert!(StatusCode::from_u16(row.status).is_ok(), "{}", row.code);
        }
    }

    #[test]
    fn per_enum_code_lists_are_rows_of_the_table() {
        for list in [
            CART_CODES,
            ORDER_CODES,
            PAYMENT_CODES,
            PRODUCT_CODES,
            PROMOTION_CODES,
            SHIPMENT_CODES,
            STOCK_CODES,
            LOYALTY_CODES,
            LOOKUP_CODES,
        ] {
            assert!(!list.is_empty());
            for code in list {
                assert!(row(code).is_some(), "{code}");
            }
        }
    }

    #[test]
    fn a_representative_variant_of_each_enum_maps_as_documented() {
        use aggregates::cart::CartError;
        assert_eq!(code_of(CartError::NotOpened), ("cart_not_found", 404));
        assert_eq!(code_of(CartError::EmptyCart), ("cart_empty", 422));
        assert_eq!(code_of(OrderError::NotADraft), ("order_not_a_draft", 409));
        assert_eq!(
            code_of(OrderError::Money(MoneyError::Overflow)),
            ("order_amount_invalid", 422)
        );
        assert_eq!(
            code_of(PaymentError::FraudRejected),
            ("payment_fraud_rejected", 409)
        );
        assert_eq!(code_of(ProductError::NotFound), ("product_not_found", 404));
        assert_eq!(
            code_of(PromotionError::Deactivated),
            ("promotion_deactivated", 409)
        );
        assert_eq!(
            code_of(ShipmentError::MissingCarrierCode),
            ("carrier_code_missing", 422)
        );
        assert_eq!(
            code_of(StockError::ZeroQuantity),
            ("stock_quantity_zero", 422)
        );
        assert_eq!(
            code_of(LoyaltyError::AlreadyEnrolled),
            ("loyalty_already_enrolled", 409)
        );
        let lookup = lookup_row(&LookupError::UnknownCoupon("SPRING".into()));
        assert_eq!((lookup.code, lookup.status), ("unknown_coupon", 422));
    }

    #[test]
    fn stray_errors_get_a_row_of_their_status_or_a_general_one() {
        let row = stray_row(
            StatusCode::BAD_REQUEST,
            "Failed to deserialize query string: x",
        );
        assert_eq!(row.code, "invalid_query");
        let row = stray_row(StatusCode::BAD_REQUEST, "Invalid URL: Cannot parse `x`");
        assert_eq!(row.code, "invalid_path");
        assert_eq!(stray_row(StatusCode::NOT_FOUND, "").code, "not_found");
        assert_eq!(
            stray_row(StatusCode::IM_A_TEAPOT, "").code,
            "invalid_request"
        );
        assert_eq!(
            stray_row(StatusCode::BAD_GATEWAY, "").code,
            "internal_error"
        );
    }

    #[test]
    fn domain_and_lookup_errors_answer_their_row_with_the_message_as_detail() {
        let problem = Problem::from(CommandError::Domain(ProductError::EmptyName.into()));
        assert_eq!(problem.code, "product_name_empty");
        assert_eq!(problem.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem.detail, ProductError::EmptyName.to_string());

        let problem = Problem::from(CommandError::Lookup(LookupError::BadSetting {
            name: "tax_rates",
            reason: "secret internals".into(),
        }));
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem.detail.contains("secret internals"));
        assert!(problem.internal().unwrap().contains("secret internals"));
    }

    #[test]
    fn version_mismatch_carries_the_current_version_in_body_and_etag() {
        let problem = Problem::from(CommandError::VersionMismatch {
            stream: StreamRef::new("cart", "c1"),
            expected: 2,
            current: 5,
        });
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(response.headers()[ETAG], "\"5\"");
        let problem = response.extensions().get::<Problem>().unwrap();
        assert_eq!(problem.current_version, Some(5));
        let body = serde_json::to_value(problem).unwrap();
        assert_eq!(body["current_version"], 5);
        assert_eq!(body["code"], "version_mismatch");
    }

    #[test]
    fn contention_asks_to_retry_later() {
        let response = Problem::from(CommandError::Contention {
            stream: StreamRef::new("stock", "SKU-1"),
            attempts: 8,
        })
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }

    #[test]
    fn store_errors_are_internal_and_never_echoed() {
        let problem = Problem::from(CommandError::Store(StoreError::InvalidAppend(
            "table commands is on fire".into(),
        )));
        assert_eq!(problem.code, "internal_error");
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_string(&problem).unwrap();
        assert!(!body.contains("on fire"), "{body}");
        assert!(problem.internal().unwrap().contains("on fire"));
    }

    #[test]
    fn an_oversized_event_is_a_413_naming_the_limit() {
        let problem = Problem::from(CommandError::Store(StoreError::TooLarge {
            what: "event ItemAdded (version 3)".into(),
            bytes: 300_000,
            limit: 262_144,
        }));
        assert_eq!(problem.code, "payload_too_large");
        assert_eq!(problem.status, StatusCode::PAYLOAD_TOO_LARGE);
        let body = serde_json::to_string(&problem).unwrap();
        assert!(body.contains("262144"), "{body}");
    }
}
