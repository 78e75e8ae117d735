-- Setting up a second factor proves the mailbox too: a code mailed to the address on
-- file, kept (hashed) as a link token of its own purpose.
ALTER TABLE email_tokens
    MODIFY purpose ENUM('verify_email', 'reset_password', 'factor_setup') NOT NULL;
