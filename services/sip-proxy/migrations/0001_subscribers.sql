-- Subscriber data the proxy reads from its local replica (read-only).
-- Written on the db pair by provisioning; replicated to every proxy node.
-- The proxy never writes these tables.

CREATE TABLE IF NOT EXISTS customers (
    id                   BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    name                 VARCHAR(128)    NOT NULL,
    -- NULL = no limit on concurrent calls for the whole customer.
    max_concurrent_calls INT UNSIGNED    NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS subscribers (
    id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username             VARCHAR(64)     NOT NULL,
    domain               VARCHAR(128)    NOT NULL,
    -- Either the clear password or the precomputed HA1 values must be set.
    password             VARCHAR(128)    NULL,
    -- MD5(username ":" realm ":" password), lower-case hex (RFC 2617 / 7616).
    ha1_md5              CHAR(32)        NULL,
    -- SHA-256(username ":" realm ":" password), lower-case hex (RFC 7616 / 8760).
    ha1_sha256           CHAR(64)        NULL,
    customer_id          BIGINT UNSIGNED NOT NULL,
    -- NULL = no limit on concurrent calls for this subscriber.
    max_concurrent_calls INT UNSIGNED    NULL,
    UNIQUE KEY subscriber_aor (username, domain),
    KEY subscriber_customer (customer_id),
    CONSTRAINT subscriber_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
