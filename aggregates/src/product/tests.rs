use std::collections::BTreeMap;

use cqrs_es::test::TestFramework;

use super::*;
use crate::product::event::example_time;
use crate::{Currency, EventExample, Money};

type Given = TestFramework<Product>;

fn eur(amount: i64) -> Money {
    Money::new(amount, Currency::EUR)
}

fn create() -> CreateProduct {
    let e = ProductCreated::example();
    CreateProduct {
        product_id: e.product_id,
        sku: e.sku,
        name: e.name,
        description: e.description,
        category: e.category,
        brand: e.brand,
        attributes: e.attributes,
        prices: e.prices,
        at: e.at,
    }
}

fn created() -> ProductEvent {
    ProductCreated::example().into()
}

#[test]
fn creates_a_product() {
    Given::with(())
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct(create()))
        .then_expect_events(vec![created()]);
}

#[test]
fn refuses_to_create_twice() {
    Given::with(())
        .given(vec![created()])
        .when(ProductCommand::CreateProduct(create()))
        .then_expect_error(ProductError::AlreadyExists);
}

#[test]
fn refuses_an_empty_name() {
    let mut c = create();
    c.name = "  ".into();
    Given::with(())
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct(c))
        .then_expect_error(ProductError::EmptyName);
}

#[test]
fn refuses_a_product_without_price() {
    let mut c = create();
    c.prices.clear();
    Given::with(())
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct(c))
        .then_expect_error(ProductError::NoPrice);
}

#[test]
fn refuses_a_price_keyed_under_another_currency() {
    let mut c = create();
    c.prices = BTreeMap::from([(Currency::USD, eur(100))]);
    Given::with(())
        .given_no_previous_events()
        .when(ProductCommand::CreateProduct(c))
        .then_expect_error(ProductError::PriceCurrencyMismatch {
            key: Currency::USD,
            actual: Currency::EUR,
        });
}

#[test]
fn refuses_a_zero_price() {
    Given::with(())
        .given(vec![created()])
        .when(ProductCommand::ChangePrice(ChangePrice {
            price: eur(0),
            at: example_time(),
        }))
        .then_expect_error(ProductError::NonPositivePrice(eur(0)));
}

#[test]
fn records_the_previous_price() {
    Given::with(())
        .given(vec![created()])
        .when(ProductCommand::ChangePrice(ChangePrice {
            price: eur(1799),
            at: example_time(),
        }))
        .then_expect_events(vec![ProductPriceChanged::example().into()]);
}

#[test]
fn a_missing_product_cannot_be_priced() {
    Given::with(())
        .given_no_previous_events()
        .when(ProductCommand::ChangePrice(ChangePrice {
            price: eur(100),
            at: example_time(),
        }))
        .then_expect_error(ProductError::NotFound);
}

#[test]
fn a_discontinued_product_cannot_be_priced_or_sold() {
    let discontinued: ProductEvent = ProductDiscontinued::example().into();
    Given::with(())
        .given(vec![created(), discontinued.clone()])
        .when(ProductCommand::ChangePrice(ChangePrice {
            price: eur(100),
            at: example_time(),
        }))
        .then_expect_error(ProductError::Discontinued);

    let mut state = Product::default();
    crate::Decider::evolve(&mut state, &created());
    assert_eq!(state.price_in(Currency::EUR), Some(eur(1999)));
    crate::Decider::evolve(&mut state, &discontinued);
    assert_eq!(state.price_in(Currency::EUR), None);
}

#[test]
fn details_not_given_keep_their_values() {
    let events = Given::with(())
        .given(vec![created()])
        .when(ProductCommand::ChangeDetails(ChangeDetails {
            name: Some("Blue T-shirt".into()),
            description: None,
            category: None,
            brand: None,
            attributes: None,
            at: example_time(),
        }))
        .inspect_result()
        .unwrap();
    let ProductEvent::ProductCreated(before) = created() else {
        unreachable!("created() is a ProductCreated")
    };
    match &events[..] {
        [ProductEvent::ProductDetailsChanged(e)] => {
            assert_eq!(e.name, "Blue T-shirt");
            assert_eq!(
                (&e.description, &e.category, &e.brand, &e.attributes),
                (
                    &before.description,
                    &before.category,
                    &before.brand,
                    &before.attributes
                )
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn details_keep_the_name_when_not_given() {
    let events = Given::with(())
        .given(vec![created()])
        .when(ProductCommand::ChangeDetails(ChangeDetails {
            name: None,
            description: Some("New".into()),
            category: None,
            brand: None,
            attributes: None,
            at: example_time(),
        }))
        .inspect_result()
        .unwrap();
    match &events[..] {
        [ProductEvent::ProductDetailsChanged(e)] => {
            assert_eq!(e.name, "Red T-shirt");
            assert_eq!(e.description, "New");
        }
        other => panic!("unexpected {other:?}"),
    }
}
