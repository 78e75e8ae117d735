-- No query reads tags by value (the UI and the reports read a sale's tags by its key),
-- while every backed-up sale writes about a dozen tag rows: the secondary index on
-- `tag` only slowed imports and syncs down.
DROP INDEX ix_sale_item_tags_tag ON sale_item_tags;
