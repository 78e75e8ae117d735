-- The words the sales table's search box finds a sale by (app/src/model/search.rs): each
-- suffix of the customer's address that starts a word (after `@ . - + _`), and of each
-- item's name (after a space or `-`), lower-cased and cut to 100 characters.
--
-- A selective search reads the range `term LIKE 'w%'` of the primary key. A broad one
-- (`paper`: a third of all sales) walks the list in its sort order instead and checks
-- each sale's own copy of its terms (`sales.search_text`, below). Written with the
-- sale's other rows, in the same transaction, by `backup::replace`; deleted with it by
-- cascade.
CREATE TABLE sale_search_terms (
    term     VARCHAR(100) NOT NULL,
    sale_id  CHAR(24)     CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    PRIMARY KEY (term, sale_id),
    -- For the cascade from `sales`.
    KEY ix_sale_search_terms_sale (sale_id),
    CONSTRAINT fk_sale_search_terms_sale FOREIGN KEY (sale_id) REFERENCES sales (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The sales already backed up. IGNORE: the collation holds `é` and `e` equal, so two
-- items of one sale may give the same key.
INSERT IGNORE INTO sale_search_terms (term, sale_id)
WITH RECURSIVE cut (sale_id, text, pos) AS (
    SELECT id, LOWER(TRIM(customer_email)), 1 FROM sales
    UNION ALL
    SELECT sale_id, text, pos + 1 FROM cut WHERE pos < CHAR_LENGTH(text)
)
SELECT LEFT(SUBSTRING(text, pos), 100), sale_id FROM cut
WHERE (pos = 1 OR SUBSTRING(text, pos - 1, 1) IN ('@', '.', '-', '+', '_'))
  AND SUBSTRING(text, pos, 1) NOT IN ('@', '.', '-', '+', '_');

INSERT IGNORE INTO sale_search_terms (term, sale_id)
WITH RECURSIVE cut (sale_id, text, pos) AS (
    SELECT sale_id, LOWER(TRIM(name)), 1 FROM sale_items
    UNION ALL
    SELECT sale_id, text, pos + 1 FROM cut WHERE pos < CHAR_LENGTH(text)
)
SELECT LEFT(SUBSTRING(text, pos), 100), sale_id FROM cut
WHERE (pos = 1 OR SUBSTRING(text, pos - 1, 1) IN (' ', '-'))
  AND SUBSTRING(text, pos, 1) NOT IN (' ', '-');

-- The same terms on the sale's row, each after a line break (`model::search::probe_text`):
-- a broad search walks the list in its order and checks `LOCATE('\nw', search_text)` on
-- each row it reads anyway, rather than looking each sale up in the terms.
ALTER TABLE sales ADD COLUMN search_text VARCHAR(2000) NOT NULL DEFAULT '' AFTER customer_satisfaction;

SET SESSION group_concat_max_len = 8192;
UPDATE sales s
JOIN (SELECT sale_id, CONCAT('\n', GROUP_CONCAT(term ORDER BY term SEPARATOR '\n'), '\n') AS text
      FROM sale_search_terms GROUP BY sale_id) t ON t.sale_id = s.id
SET s.search_text = LEFT(t.text, 2000);
