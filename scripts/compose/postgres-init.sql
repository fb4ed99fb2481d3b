-- Runs once, when the postgres container initialises an empty data directory.
-- The registry keeps its artifacts in a database of its own so that resetting the
-- gatekeeper tables never touches registered contracts, and vice versa.
CREATE DATABASE registry OWNER gatekeeper;
