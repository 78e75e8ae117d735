-- Daily rollups for the management analytics. Summing a date range of these rows
-- answers every KPI and chart without touching the (possibly millions of) sales rows.
--
-- Maintained in the same transaction as every backup write (`backup::replace` and
-- `backup::delete` subtract the old rows' contribution and add the new ones), and
-- rebuilt from the sales tables at the end of every repairing sync.

CREATE TABLE sales_daily (
    day              DATE          NOT NULL,
    store_location   VARCHAR(64)   NOT NULL,
    purchase_method  ENUM('In store', 'Online', 'Phone') NOT NULL,
    coupon_used      BOOLEAN       NOT NULL,
    sales            BIGINT        NOT NULL,
    revenue          DECIMAL(20, 2) NOT NULL,
    satisfaction_sum BIGINT        NOT NULL,
    -- How many of these sales got each satisfaction score.
    sat_1            BIGINT        NOT NULL,
    sat_2            BIGINT        NOT NULL,
    sat_3            BIGINT        NOT NULL,
    sat_4            BIGINT        NOT NULL,
    sat_5            BIGINT        NOT NULL,
    PRIMARY KEY (day, store_location, purchase_method, coupon_used)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

CREATE TABLE item_daily (
    day       DATE           NOT NULL,
    name      VARCHAR(64)    NOT NULL,
    revenue   DECIMAL(20, 2) NOT NULL,
    quantity  BIGINT         NOT NULL,
    PRIMARY KEY (day, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Existing sales (before this migration) are counted once here.
INSERT INTO sales_daily
SELECT DATE(sale_date), store_location, purchase_method, coupon_used, COUNT(*), SUM(total),
       SUM(customer_satisfaction), SUM(customer_satisfaction = 1), SUM(customer_satisfaction = 2),
       SUM(customer_satisfaction = 3), SUM(customer_satisfaction = 4), SUM(customer_satisfaction = 5)
FROM sales GROUP BY DATE(sale_date), store_location, purchase_method, coupon_used;

INSERT INTO item_daily
SELECT DATE(s.sale_date), i.name, SUM(i.price * i.quantity), SUM(i.quantity)
FROM sale_items i JOIN sales s ON s.id = i.sale_id
GROUP BY DATE(s.sale_date), i.name;
