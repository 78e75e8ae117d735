//! Percent-encoding for the links both sides build: query values the UI puts in its
//! URLs, and the fields of the authenticator URI the server draws as a QR code.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 3986's unreserved characters stay as they are; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// As `COMPONENT`, and `/` stays too, so the paths carried in `next=` remain readable.
const QUERY_VALUE: &AsciiSet = &COMPONENT.remove(b'/');

/// A value for a query string (`?next=/worker%3Fpage%3D2`).
pub fn query_value(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// A path segment or a value in which `/` must be encoded as well.
pub fn component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_unreserved_characters_and_encode_the_rest() {
        assert_eq!(
            query_value("/worker?page=2&q=a b"),
            "/worker%3Fpage%3D2%26q%3Da%20b"
        );
        assert_eq!(query_value("ä-_.~"), "%C3%A4-_.~");
        assert_eq!(component("Supply Co./portal"), "Supply%20Co.%2Fportal");
    }
}
