//! Sale ↔ BSON document, in the dataset's own shape (camelCase keys, Decimal128
//! prices, BSON dates), plus `version` and `updatedAt`.

use crate::model::{
    Age, Customer, Email, Gender, Item, ItemName, Price, PurchaseMethod, Quantity, Sale, SaleDraft,
    SaleId, Satisfaction, StoreLocation, Tag,
};
use bson::{Bson, Document, doc, oid::ObjectId};
use rust_decimal::Decimal;
use std::str::FromStr;

pub fn object_id(id: &SaleId) -> ObjectId {
    ObjectId::parse_str(id.as_str()).expect("SaleId is always 24 hex digits")
}

pub fn sale_id(oid: &ObjectId) -> SaleId {
    SaleId::parse(&oid.to_hex()).expect("an ObjectId's hex is a valid SaleId")
}

/// How prices are stored. MongoDB gets Decimal128, as in the dataset. FerretDB 1.x
/// rejects Decimal128 (it drops the connection), so there the exact decimal is stored
/// as its text, e.g. "40.01". Both are exact; readers accept either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoneyEncoding {
    Decimal128,
    Text,
}

fn money(d: Decimal, encoding: MoneyEncoding) -> Bson {
    match encoding {
        MoneyEncoding::Decimal128 => Bson::Decimal128(
            bson::Decimal128::from_str(&d.to_string())
                .expect("a Decimal formats as a valid Decimal128"),
        ),
        MoneyEncoding::Text => Bson::String(d.to_string()),
    }
}

fn date(d: chrono::DateTime<chrono::Utc>) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(d.timestamp_millis()))
}

/// The draft's fields as a document (no `_id`, `version` or `updatedAt`).
pub fn draft_to_document(d: &SaleDraft, encoding: MoneyEncoding) -> Document {
    let items: Vec<Bson> = d
        .items
        .iter()
        .map(|i| {
            Bson::Document(doc! {
                "name": i.name.as_str(),
                "tags": i.tags.iter().map(|t| Bson::String(t.to_string())).collect::<Vec<_>>(),
                "price": money(i.price.get(), encoding),
                "quantity": i32::from(i.quantity.get()),
            })
        })
        .collect();
    doc! {
        "saleDate": date(d.sale_date),
        "items": items,
        "storeLocation": d.store_location.as_str(),
        "customer": {
            "gender": d.customer.gender.as_str(),
            "age": i32::from(d.customer.age.get()),
            "email": d.customer.email.as_str(),
            "satisfaction": i32::from(d.customer.satisfaction.get()),
        },
        "couponUsed": d.coupon_used,
        "purchaseMethod": d.purchase_method.as_str(),
    }
}

pub fn sale_to_document(s: &Sale, encoding: MoneyEncoding) -> Document {
    let mut d = doc! { "_id": object_id(&s.id) };
    d.extend(draft_to_document(&s.draft, encoding));
    d.insert("version", s.version as i64);
    d.insert("updatedAt", date(s.updated_at));
    d
}

/// Why a document is not a valid sale, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DecodeError {
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> DecodeError {
    DecodeError {
        field: field.into(),
        message: message.into(),
    }
}

/// Field names MongoDB would read as operators or paths are refused outright.
fn check_keys(d: &Document, path: &str) -> Result<(), DecodeError> {
    for (k, v) in d {
        if k.starts_with('$') || k.contains('.') {
            return Err(err(
                path,
                format!("field name {k:?} may not start with '$' or contain '.'"),
            ));
        }
        if let Bson::Document(inner) = v {
            check_keys(inner, &format!("{path}.{k}"))?;
        }
    }
    Ok(())
}

fn only_keys(d: &Document, path: &str, allowed: &[&str]) -> Result<(), DecodeError> {
    match d.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(err(path, format!("unknown field {k:?}"))),
        None => Ok(()),
    }
}

fn get<'a>(d: &'a Document, key: &str, path: &str) -> Result<&'a Bson, DecodeError> {
    d.get(key)
        .ok_or_else(|| err(&join(path, key), "is missing"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.into()
    } else {
        format!("{path}.{key}")
    }
}

fn string<'a>(d: &'a Document, key: &str, path: &str) -> Result<&'a str, DecodeError> {
    match get(d, key, path)? {
        Bson::String(s) => Ok(s),
        other => Err(err(
            &join(path, key),
            format!("must be a string, not {:?}", other.element_type()),
        )),
    }
}

/// Integers arrive as Int32, Int64, or a Double with no fraction (relaxed JSON).
fn integer(d: &Document, key: &str, path: &str) -> Result<i64, DecodeError> {
    match get(d, key, path)? {
        Bson::Int32(n) => Ok(i64::from(*n)),
        Bson::Int64(n) => Ok(*n),
        Bson::Double(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(*f as i64),
        other => Err(err(
            &join(path, key),
            format!("must be a whole number, not {:?}", other.element_type()),
        )),
    }
}

fn decimal(d: &Document, key: &str, path: &str) -> Result<Decimal, DecodeError> {
    let field = join(path, key);
    match get(d, key, path)? {
        Bson::Decimal128(v) => {
            Decimal::from_str(&v.to_string()).map_err(|_| err(&field, "is not a finite decimal"))
        }
        Bson::String(s) => Decimal::from_str(s).map_err(|_| err(&field, "is not a decimal number")),
        Bson::Int32(n) => Ok(Decimal::from(*n)),
        Bson::Int64(n) => Ok(Decimal::from(*n)),
        // A JSON number such as 12.5: read through its shortest text, not as binary.
        Bson::Double(f) => {
            Decimal::from_str(&f.to_string()).map_err(|_| err(&field, "is not a decimal number"))
        }
        other => Err(err(
            &field,
            format!("must be a decimal, not {:?}", other.element_type()),
        )),
    }
}

fn datetime(
    d: &Document,
    key: &str,
    path: &str,
) -> Result<chrono::DateTime<chrono::Utc>, DecodeError> {
    match get(d, key, path)? {
        Bson::DateTime(t) => chrono::DateTime::from_timestamp_millis(t.timestamp_millis())
            .ok_or_else(|| err(&join(path, key), "is out of range")),
        other => Err(err(
            &join(path, key),
            format!("must be a date, not {:?}", other.element_type()),
        )),
    }
}

fn parsed<T>(field: &str, r: Result<T, String>) -> Result<T, DecodeError> {
    r.map_err(|m| err(field, m))
}

/// Decodes the sale fields of a document and validates them with the shared rules.
pub fn document_to_draft(d: &Document) -> Result<SaleDraft, DecodeError> {
    check_keys(d, "")?;
    only_keys(
        d,
        "",
        &[
            "_id",
            "saleDate",
            "items",
            "storeLocation",
            "customer",
            "couponUsed",
            "purchaseMethod",
            "version",
            "updatedAt",
        ],
    )?;
    let items = match get(d, "items", "")? {
        Bson::Array(a) => a,
        _ => return Err(err("items", "must be an array")),
    };
    if items.is_empty() || items.len() > crate::model::sale::MAX_ITEMS {
        return Err(err("items", "a sale has 1 to 100 items"));
    }
    let items = items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let path = format!("items.{i}");
            let Bson::Document(item) = b else {
                return Err(err(&path, "must be an object"));
            };
            only_keys(item, &path, &["name", "tags", "price", "quantity"])?;
            let tags = match get(item, "tags", &path)? {
                Bson::Array(tags) if tags.len() <= crate::model::sale::MAX_TAGS => tags
                    .iter()
                    .map(|t| match t {
                        Bson::String(s) => parsed(&format!("{path}.tags"), Tag::parse(s)),
                        _ => Err(err(&format!("{path}.tags"), "tags must be strings")),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                Bson::Array(_) => {
                    return Err(err(&format!("{path}.tags"), "an item has at most 20 tags"));
                }
                _ => return Err(err(&format!("{path}.tags"), "must be an array")),
            };
            Ok(Item {
                name: parsed(
                    &format!("{path}.name"),
                    ItemName::parse(string(item, "name", &path)?),
                )?,
                tags,
                price: parsed(
                    &format!("{path}.price"),
                    Price::parse(decimal(item, "price", &path)?),
                )?,
                quantity: parsed(
                    &format!("{path}.quantity"),
                    Quantity::parse(integer(item, "quantity", &path)?),
                )?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let customer = match get(d, "customer", "")? {
        Bson::Document(c) => c,
        _ => return Err(err("customer", "must be an object")),
    };
    only_keys(
        customer,
        "customer",
        &["gender", "age", "email", "satisfaction"],
    )?;
    let coupon_used = match get(d, "couponUsed", "")? {
        Bson::Boolean(b) => *b,
        _ => return Err(err("couponUsed", "must be true or false")),
    };
    Ok(SaleDraft {
        sale_date: datetime(d, "saleDate", "")?,
        items,
        store_location: parsed(
            "storeLocation",
            StoreLocation::parse(string(d, "storeLocation", "")?),
        )?,
        customer: Customer {
            gender: parsed(
                "customer.gender",
                Gender::parse(string(customer, "gender", "customer")?),
            )?,
            age: parsed(
                "customer.age",
                Age::parse(integer(customer, "age", "customer")?),
            )?,
            email: parsed(
                "customer.email",
                Email::parse(string(customer, "email", "customer")?),
            )?,
            satisfaction: parsed(
                "customer.satisfaction",
                Satisfaction::parse(integer(customer, "satisfaction", "customer")?),
            )?,
        },
        coupon_used,
        purchase_method: parsed(
            "purchaseMethod",
            PurchaseMethod::parse(string(d, "purchaseMethod", "")?),
        )?,
    })
}

pub fn document_to_sale(d: &Document) -> Result<Sale, DecodeError> {
    let id = match get(d, "_id", "")? {
        Bson::ObjectId(oid) => sale_id(oid),
        _ => return Err(err("_id", "must be an ObjectId")),
    };
    let version = integer(d, "version", "")
        .ok()
        .and_then(|v| u64::try_from(v).ok())
        .unwrap_or(1);
    let updated_at = datetime(d, "updatedAt", "").unwrap_or_else(|_| id_time(&id));
    Ok(Sale {
        id,
        version,
        updated_at,
        draft: document_to_draft(d)?,
    })
}

fn id_time(id: &SaleId) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(object_id(id).timestamp().timestamp_millis())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Sale {
        let draft = crate::model::SaleInput {
            sale_date: "2015-03-23T21:06:49.506Z".into(),
            items: vec![
                crate::model::ItemInput {
                    name: "printer paper".into(),
                    tags: vec!["office".into(), "stationary".into()],
                    price: "40.01".into(),
                    quantity: "2".into(),
                },
                crate::model::ItemInput {
                    name: "notepad".into(),
                    tags: vec![],
                    price: "10".into(),
                    quantity: "1".into(),
                },
            ],
            store_location: "Denver".into(),
            customer_gender: "F".into(),
            customer_age: "42".into(),
            customer_email: "cauho@witwuta.sv".into(),
            customer_satisfaction: "4".into(),
            coupon_used: false,
            purchase_method: "In store".into(),
        }
        .parse()
        .unwrap();
        Sale {
            id: SaleId::parse("5bd761dcae323e45a93ccfe8").unwrap(),
            version: 3,
            updated_at: chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap(),
            draft,
        }
    }

    #[test]
    fn bson_round_trip_is_lossless_in_both_encodings() {
        let sale = sample();
        let price = |doc: &Document| {
            doc.get_array("items").unwrap()[0]
                .as_document()
                .unwrap()
                .get("price")
                .cloned()
        };
        let doc = sale_to_document(&sale, MoneyEncoding::Decimal128);
        assert!(matches!(price(&doc), Some(Bson::Decimal128(_))));
        assert_eq!(document_to_sale(&doc).unwrap(), sale);
        let doc = sale_to_document(&sale, MoneyEncoding::Text);
        assert_eq!(price(&doc), Some(Bson::String("40.01".into())));
        assert_eq!(document_to_sale(&doc).unwrap(), sale);
    }

    #[test]
    fn operator_and_dotted_keys_are_refused() {
        let mut doc = sale_to_document(&sample(), MoneyEncoding::Decimal128);
        doc.insert("$where", "1");
        assert!(
            document_to_sale(&doc)
                .unwrap_err()
                .message
                .contains("may not start with '$'")
        );
        let mut doc = sale_to_document(&sample(), MoneyEncoding::Decimal128);
        doc.get_document_mut("customer").unwrap().insert("a.b", 1);
        assert!(document_to_sale(&doc).is_err());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let mut doc = sale_to_document(&sample(), MoneyEncoding::Decimal128);
        doc.insert("couponUsed", "yes");
        assert_eq!(document_to_sale(&doc).unwrap_err().field, "couponUsed");
        let mut doc = sale_to_document(&sample(), MoneyEncoding::Decimal128);
        doc.get_array_mut("items").unwrap()[0]
            .as_document_mut()
            .unwrap()
            .insert("quantity", 2.5);
        assert_eq!(
            document_to_sale(&doc).unwrap_err().field,
            "items.0.quantity"
        );
        let mut doc = sale_to_document(&sample(), MoneyEncoding::Decimal128);
        doc.remove("storeLocation");
        assert_eq!(
            document_to_sale(&doc).unwrap_err().to_string(),
            "storeLocation: is missing"
        );
    }
}
