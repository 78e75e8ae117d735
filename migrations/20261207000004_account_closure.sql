-- Customers close their own accounts. The row stays as a tombstone with status `closed`
-- and no personal data (see app/src/server/auth/closure.rs), so the audit log keeps
-- whose events these were.
ALTER TABLE users MODIFY status ENUM('active', 'pending', 'disabled', 'closed') NOT NULL;
