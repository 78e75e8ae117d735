-- The relational backup of the sales documents (MongoDB is the primary), and the
-- reporting side: every field of a sale is a typed column, no JSON blobs.
--
-- A sale's id is its MongoDB ObjectId in hex. `version` mirrors the document's
-- optimistic-concurrency counter, so reconciliation can tell stale rows apart.

CREATE TABLE sales (
    id                     CHAR(24)      CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL PRIMARY KEY,
    sale_date              DATETIME(3)   NOT NULL,
    store_location         VARCHAR(64)   NOT NULL,
    purchase_method        ENUM('In store', 'Online', 'Phone') NOT NULL,
    coupon_used            BOOLEAN       NOT NULL,
    customer_gender        ENUM('F', 'M') NOT NULL,
    customer_age           TINYINT UNSIGNED NOT NULL,
    customer_email         VARCHAR(254)  NOT NULL,
    customer_satisfaction  TINYINT UNSIGNED NOT NULL,
    -- Sum of price x quantity over the items, kept by the writer so lists can sort by it.
    total                  DECIMAL(16, 2) NOT NULL,
    version                BIGINT UNSIGNED NOT NULL,
    updated_at             DATETIME(6)   NOT NULL,
    KEY ix_sales_date (sale_date),
    KEY ix_sales_store_date (store_location, sale_date),
    KEY ix_sales_method_date (purchase_method, sale_date),
    KEY ix_sales_customer_email (customer_email, sale_date)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Line items in their original order. Prices are at most 1,000,000.00.
CREATE TABLE sale_items (
    sale_id   CHAR(24)     CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    position  SMALLINT UNSIGNED NOT NULL,
    name      VARCHAR(64)  NOT NULL,
    price     DECIMAL(9, 2) NOT NULL,
    quantity  SMALLINT UNSIGNED NOT NULL,
    PRIMARY KEY (sale_id, position),
    KEY ix_sale_items_name (name),
    CONSTRAINT fk_sale_items_sale FOREIGN KEY (sale_id) REFERENCES sales (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Each item's tags, one row per tag, in their original order.
CREATE TABLE sale_item_tags (
    sale_id       CHAR(24)     CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL,
    position      SMALLINT UNSIGNED NOT NULL,
    tag_position  TINYINT UNSIGNED NOT NULL,
    tag           VARCHAR(32)  NOT NULL,
    PRIMARY KEY (sale_id, position, tag_position),
    KEY ix_sale_item_tags_tag (tag),
    CONSTRAINT fk_sale_item_tags_item FOREIGN KEY (sale_id, position)
        REFERENCES sale_items (sale_id, position) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
