-- Run once by the postgres image on an empty data directory: one database per
-- component, so each can be backed up and restored on its own.
CREATE DATABASE trackflow;
CREATE DATABASE airflow;
CREATE DATABASE prefect;
