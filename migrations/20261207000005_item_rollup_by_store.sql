-- The analytics filter by store and purchase method, top items included: the item
-- rollup gains both columns. Its key leads with the day like `sales_daily`'s, and its
-- columns are in the order writers lock them (app/src/server/sales/rollups.rs).
DROP TABLE item_daily;

CREATE TABLE item_daily (
    day              DATE           NOT NULL,
    store_location   VARCHAR(64)    NOT NULL,
    purchase_method  ENUM('In store', 'Online', 'Phone') NOT NULL,
    name             VARCHAR(64)    NOT NULL,
    revenue          DECIMAL(20, 2) NOT NULL,
    quantity         BIGINT         NOT NULL,
    PRIMARY KEY (day, store_location, purchase_method, name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

INSERT INTO item_daily
SELECT DATE(s.sale_date), s.store_location, s.purchase_method, i.name, SUM(i.price * i.quantity), SUM(i.quantity)
FROM sale_items i JOIN sales s ON s.id = i.sale_id
GROUP BY DATE(s.sale_date), s.store_location, s.purchase_method, i.name;
