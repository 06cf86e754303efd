-- The weights the server answered with, per experiment, variant and hour:
-- the sum of each answer's weight for the variant and how many answers
-- (a read form a page chooses a variant by). Their average is what the
-- decision's sample-ratio check compares the views with. Written by an
-- additive upsert about once a minute (several instances add up); reset
-- and delete forget an experiment's rows. One row per variant and hour.
-- No foreign key: an upsert racing a delete must not fail the others'.
CREATE TABLE served_weights (
    experiment UUID NOT NULL,
    variant    TEXT NOT NULL,
    hour_ms    BIGINT NOT NULL,
    weight_sum DOUBLE PRECISION NOT NULL,
    answers    BIGINT NOT NULL,
    PRIMARY KEY (experiment, variant, hour_ms)
);
