//! The sales table's one search box: what a typed text means, and the words of a sale
//! it is matched against. Shared by the server, which stores each sale's words in
//! `sale_search_terms`, and the page, which decides whether a sale created elsewhere
//! would be listed.

/// The longest word kept, and the most of a search that is compared with it: a search
/// longer than this still finds what its first `TERM_LEN` characters find.
pub const TERM_LEN: usize = 100;

/// The fewest hex digits a search must have to be read as the start of a sale id
/// rather than as a word: four would catch ordinary words such as `cafe` or `face`.
pub const ID_PREFIX_MIN: usize = 8;

/// What a search looks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Search {
    /// A sale id, or its start (lower-case hex, `ID_PREFIX_MIN`..=24 digits).
    Id(String),
    /// A word, or the start of one, of the customer's address or of an item's name
    /// (lower-case, at most `TERM_LEN` characters).
    Word(String),
}

impl Search {
    /// The search a typed text asks for; `None` for blank input.
    pub fn parse(raw: &str) -> Option<Search> {
        // Control characters (a pasted line break) are never part of a term.
        let text: String = raw
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| !c.is_control())
            .take(TERM_LEN)
            .collect();
        if text.is_empty() {
            None
        } else if (ID_PREFIX_MIN..=24).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_hexdigit())
        {
            Some(Search::Id(text))
        } else {
            Some(Search::Word(text))
        }
    }

    /// As the user would type it again (for the search box and links).
    pub fn as_str(&self) -> &str {
        match self {
            Search::Id(s) | Search::Word(s) => s,
        }
    }

    /// Whether a sale with this id and customer address is found. Item names are not
    /// part of a table row, so a sale found only by an item answers false here; the
    /// page's live count, which asks the server, still counts it.
    pub fn matches(&self, id: &str, email: &str) -> bool {
        match self {
            Search::Id(prefix) => id.starts_with(prefix.as_str()),
            Search::Word(word) => email_terms(email)
                .iter()
                .any(|t| t.starts_with(word.as_str())),
        }
    }
}

/// The most characters of a sale's terms kept on its row (`probe_text`).
pub const PROBE_TEXT_LEN: usize = 2000;

/// A sale's terms in one text, each after a line break, so that a search for `w` is
/// `LOCATE('\nw', text) > 0` on the row itself: what a broad search checks of each sale
/// it walks past, without reading another table. Cut at `PROBE_TEXT_LEN` characters,
/// at a term's end.
pub fn probe_text(terms: &[String]) -> String {
    let mut text = String::from("\n");
    let mut length = 1;
    for term in terms {
        let n = term.chars().count() + 1;
        if length + n > PROBE_TEXT_LEN {
            break;
        }
        text.push_str(term);
        text.push('\n');
        length += n;
    }
    text
}

/// The terms a sale is found by: its customer's address's, then its items' names'.
pub fn sale_terms(
    email: &str,
    item_names: impl IntoIterator<Item = impl AsRef<str>>,
) -> Vec<String> {
    let mut terms = email_terms(email);
    for name in item_names {
        for term in item_terms(name.as_ref()) {
            if !terms.contains(&term) {
                terms.push(term);
            }
        }
    }
    terms
}

/// The terms an address is found by: the whole address, and what follows each
/// `@ . - + _`. A search matches a term it begins, so `smith` finds `j.smith@mail.com`
/// (through `smith@mail.com`) and `mail.co` finds it too, while `mith` does not.
pub fn email_terms(email: &str) -> Vec<String> {
    suffixes(email, |c| matches!(c, '@' | '.' | '-' | '+' | '_'))
}

/// The terms an item name is found by: the whole name and what follows each space or
/// hyphen, so `paper` finds "printer paper".
pub fn item_terms(name: &str) -> Vec<String> {
    suffixes(name, |c| c.is_whitespace() || c == '-')
}

fn suffixes(text: &str, separator: impl Fn(char) -> bool) -> Vec<String> {
    let lower = text.trim().to_lowercase();
    let mut terms: Vec<String> = Vec::new();
    let mut starts = vec![0];
    for (i, c) in lower.char_indices() {
        if separator(c) {
            starts.push(i + c.len_utf8());
        }
    }
    for start in starts {
        let term: String = lower[start..].chars().take(TERM_LEN).collect();
        // A run of separators starts a word only after its last one.
        let starts_a_word = term.chars().next().is_some_and(|c| !separator(c));
        if starts_a_word && !terms.contains(&term) {
            terms.push(term);
        }
    }
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_found_by_each_of_its_words_and_their_starts() {
        assert_eq!(
            email_terms("J.Smith-Jones@Mail.example.co.uk"),
            [
                "j.smith-jones@mail.example.co.uk",
                "smith-jones@mail.example.co.uk",
                "jones@mail.example.co.uk",
                "mail.example.co.uk",
                "example.co.uk",
                "co.uk",
                "uk",
            ]
        );
        let search = |s: &str| Search::parse(s).expect("a search");
        for found in ["smith", "SMI", "jones@", "example.co", "j.smith", "uk"] {
            assert!(
                search(found).matches("x", "j.smith-jones@mail.example.co.uk"),
                "{found}"
            );
        }
        for missed in ["mith", "ones", "xample"] {
            assert!(
                !search(missed).matches("x", "j.smith-jones@mail.example.co.uk"),
                "{missed}"
            );
        }
        assert_eq!(email_terms("a__b@c"), ["a__b@c", "b@c", "c"]);
    }

    #[test]
    fn an_item_is_found_by_each_word_of_its_name() {
        assert_eq!(item_terms("Printer Paper"), ["printer paper", "paper"]);
        assert_eq!(
            item_terms("x-ray  film"),
            ["x-ray  film", "ray  film", "film"]
        );
    }

    #[test]
    fn a_sales_terms_fit_its_row() {
        let terms = sale_terms("a.b@c.de", ["Pens", "Printer Paper", "pens"]);
        assert_eq!(
            terms,
            [
                "a.b@c.de",
                "b@c.de",
                "c.de",
                "de",
                "pens",
                "printer paper",
                "paper"
            ]
        );
        assert_eq!(probe_text(&terms[..2]), "\na.b@c.de\nb@c.de\n");
        let many: Vec<String> = (0..500).map(|i| format!("item number {i}")).collect();
        let text = probe_text(&many);
        assert!(text.chars().count() <= PROBE_TEXT_LEN && text.ends_with('\n'));
    }

    #[test]
    fn hex_of_eight_digits_or_more_is_an_id_and_anything_else_a_word() {
        assert_eq!(
            Search::parse(" 5BD761DC "),
            Some(Search::Id("5bd761dc".into()))
        );
        assert_eq!(Search::parse("cafe"), Some(Search::Word("cafe".into())));
        assert_eq!(
            Search::parse("5bd761dcae323e45a93ccfe8aa"),
            Some(Search::Word("5bd761dcae323e45a93ccfe8aa".into())),
            "longer than an id"
        );
        assert_eq!(Search::parse("   "), None);
        let long = "x".repeat(300);
        assert_eq!(
            Search::parse(&long).map(|s| s.as_str().len()),
            Some(TERM_LEN)
        );
        assert!(
            Search::parse("5bd761dc")
                .unwrap()
                .matches("5bd761dcae323e45a93ccfe8", "a@b.c")
        );
    }
}
