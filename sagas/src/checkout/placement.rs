//! A checked-out cart as the order it becomes.

use aggregates::cart::CartCheckedOut;
use aggregates::order::{NewOrderLine, OrderCommand, PlaceOrder};
use aggregates::{Address, Money, MoneyError};

use crate::dispatch::{Dispatch, Target};
use crate::saga::Reaction;

/// The payment method token of an order placed with nothing due: the saga confirms such
/// an order without asking the provider, so the token is never used.
pub const NO_PAYMENT_DUE: &str = "no_payment_due";

/// The step name of the saga's `PlaceOrder`; its command id is derived from the
/// checkout event's id, so a redelivered checkout places the order once.
pub const PLACE_STEP: &str = "place-order";

/// What the saga does with a checked-out cart: place its order when the checkout
/// carries a payment (v2 events from `CheckOutWithPayment`); nothing otherwise (v1
/// events and plain `CheckOut`, whose caller places the order itself).
pub(super) fn on_checkout(cart: &CartCheckedOut) -> Reaction {
    let Some(payment) = &cart.payment else {
        return Reaction::none();
    };
    let token = payment
        .method_token
        .clone()
        .unwrap_or_else(|| NO_PAYMENT_DUE.to_string());
    // The cart's figures were computed by the cart; they cannot overflow here.
    let Ok(command) = place_order(cart, token, payment.billing_address.clone()) else {
        return Reaction::none();
    };
    Reaction::none().command(Dispatch::new(
        PLACE_STEP,
        Target::Order(cart.order_id.to_string(), OrderCommand::PlaceOrder(command)),
    ))
}

/// The [`PlaceOrder`] command for a checked-out cart, paid with `payment_method_token`.
///
/// The order's figures equal the cart's frozen ones: the cart's item discount is spread
/// over the lines in proportion to their gross amount (remainder on the last line), the
/// shipping charge is the shipping price after shipping discounts, redeemed points are
/// the points value, and the tax rate is the one the cart used, so the order's grand
/// total is the cart's.
pub fn place_order(
    cart: &CartCheckedOut,
    payment_method_token: impl Into<String>,
    billing_address: Option<Address>,
) -> Result<PlaceOrder, MoneyError> {
    let totals = &cart.totals;
    let gross = totals.subtotal;
    let mut left = totals.item_discount;
    let mut lines = Vec::with_capacity(cart.lines.len());
    for (i, line) in cart.lines.iter().enumerate() {
        let discount = if i + 1 == cart.lines.len() {
            left
        } else if gross.is_zero() {
            Money::zero(cart.currency)
        } else {
            totals
                .item_discount
                .share(line.line_total.amount, gross.amount)?
                .min(left)?
        };
        left = left.checked_sub(discount)?;
        lines.push(NewOrderLine {
            sku: line.sku.clone(),
            name: line.product_name.clone(),
            quantity: line.quantity,
            unit_price: line.unit_price,
            discount,
        });
    }
    Ok(PlaceOrder {
        order_id: cart.order_id,
        customer_id: cart.customer_id,
        cart_id: Some(cart.cart_id),
        currency: cart.currency,
        lines,
        shipping: totals.shipping_total,
        tax_rate_bp: totals.tax_rate_basis_points,
        points_value: totals.loyalty_value,
        billing_address: billing_address.unwrap_or_else(|| cart.shipping_address.clone()),
        shipping_address: cart.shipping_address.clone(),
        payment_method_token: payment_method_token.into(),
        draft: false,
        at: cart.at,
    })
}
