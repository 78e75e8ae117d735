-- A lease's intents are read and closed through their holder: (lease_owner, state)
-- answers `WHERE lease_owner = ? AND state = 'pending'` from this lease's own entries.
-- With only (lease_owner), InnoDB sometimes walked (state, updated_at) instead and
-- locked every pending intent on the way, other import batches' among them, which
-- deadlocked batches in flight together (issue 25).
ALTER TABLE sale_intents
    ADD KEY ix_sale_intents_holder (lease_owner, state),
    DROP KEY ix_sale_intents_owner;
