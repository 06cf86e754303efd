-- The weights the server answered with, per experiment, variant and hour:
-- the sum of each answer's weight for the variant and how many answers
-- (a read form a page chooses a variant by). Their average is what the
-- decision's sample-ratio check compares the views with. Written by an
-- additive upsert about once a minute (several instances add up); reset
-- and delete forget an experiment's rows. One row per variant and hour.
CREATE TABLE served_weights (
    experiment TEXT NOT NULL,
    variant    TEXT NOT NULL,
    hour_ms    INTEGER NOT NULL,
    weight_sum REAL NOT NULL,
    answers    INTEGER NOT NULL,
    PRIMARY KEY (experiment, variant, hour_ms)
) WITHOUT ROWID;
