use super::*;
use crate::Decider;

impl Decider for Product {
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;

    fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match command {
            ProductCommand::CreateProduct(c) => {
                if self.exists() {
                    return Err(ProductError::AlreadyExists);
                }
                if c.name.trim().is_empty() {
                    return Err(ProductError::EmptyName);
                }
                if c.prices.is_empty() {
                    return Err(ProductError::NoPrice);
                }
                for (currency, price) in &c.prices {
                    if price.currency != *currency {
                        return Err(ProductError::PriceCurrencyMismatch {
                            key: *currency,
                            actual: price.currency,
                        });
                    }
                    if !price.is_positive() {
                        return Err(ProductError::NonPositivePrice(*price));
                    }
                }
                Ok(vec![ProductCreated {
                    product_id: c.product_id,
                    sku: c.sku,
                    name: c.name,
                    description: c.description,
                    category: c.category,
                    brand: c.brand,
                    attributes: c.attributes,
                    prices: c.prices,
                    at: c.at,
                }
                .into()])
            }
            ProductCommand::ChangeDetails(c) => {
                self.must_be_live()?;
                let name = c.name.unwrap_or_else(|| self.name.clone());
                if name.trim().is_empty() {
                    return Err(ProductError::EmptyName);
                }
                // Fields the command leaves out keep their current values.
                Ok(vec![ProductDetailsChanged {
                    name,
                    description: c.description.unwrap_or_else(|| self.description.clone()),
                    category: c.category.unwrap_or_else(|| self.category.clone()),
                    brand: c.brand.unwrap_or_else(|| self.brand.clone()),
                    attributes: c.attributes.unwrap_or_else(|| self.attributes.clone()),
                    at: c.at,
                }
                .into()])
            }
            ProductCommand::ChangePrice(c) => {
                self.must_be_live()?;
                if !c.price.is_positive() {
                    return Err(ProductError::NonPositivePrice(c.price));
                }
                Ok(vec![ProductPriceChanged {
                    sku: self.sku.clone().ok_or(ProductError::NotFound)?,
                    previous: self.prices.get(&c.price.currency).copied(),
                    price: c.price,
                    at: c.at,
                }
                .into()])
            }
            ProductCommand::DiscontinueProduct { at } => {
                self.must_be_live()?;
                Ok(vec![ProductDiscontinued {
                    sku: self.sku.clone().ok_or(ProductError::NotFound)?,
                    at,
                }
                .into()])
            }
        }
    }

    fn evolve(&mut self, event: &ProductEvent) {
        match event {
            ProductEvent::ProductCreated(e) => {
                self.id = Some(e.product_id);
                self.sku = Some(e.sku.clone());
                self.name = e.name.clone();
                self.description = e.description.clone();
                self.category = e.category.clone();
                self.brand = e.brand.clone();
                self.attributes = e.attributes.clone();
                self.prices = e.prices.clone();
            }
            ProductEvent::ProductDetailsChanged(e) => {
                self.name = e.name.clone();
                self.description = e.description.clone();
                self.category = e.category.clone();
                self.brand = e.brand.clone();
                self.attributes = e.attributes.clone();
            }
            ProductEvent::ProductPriceChanged(e) => {
                self.prices.insert(e.price.currency, e.price);
            }
            ProductEvent::ProductDiscontinued(_) => self.discontinued = true,
        }
    }
}

impl Product {
    fn must_be_live(&self) -> Result<(), ProductError> {
        if !self.exists() {
            Err(ProductError::NotFound)
        } else if self.discontinued {
            Err(ProductError::Discontinued)
        } else {
            Ok(())
        }
    }
}
