-- Second-factor secrets are sealed at rest (AES-256-GCM, `auth::secret_keys`): a
-- sealed one reads `v<key id>:<nonce hex>:<ciphertext hex>`, about 100 characters.
ALTER TABLE second_factors
    MODIFY secret VARCHAR(255) CHARACTER SET ascii COLLATE ascii_general_ci NOT NULL;
