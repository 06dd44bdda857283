-- Billing schema of the central MariaDB (db pair). The profile tables are
-- provisioning data, replicated to the proxies' local MariaDB where the
-- billing daemon reads them; cdrs is written by every proxy pair's billing.
-- Money is BIGINT UNSIGNED in the smallest currency unit, times are Unix ms.

CREATE TABLE IF NOT EXISTS billing_profiles (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(64) NOT NULL UNIQUE,
    currency CHAR(3) NOT NULL DEFAULT 'EUR'
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS billing_fees (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    profile_id BIGINT UNSIGNED NOT NULL,
    destination_prefix VARCHAR(32) NOT NULL,
    rate_per_minute BIGINT UNSIGNED NOT NULL,
    connect_fee BIGINT UNSIGNED NOT NULL DEFAULT 0,
    first_interval INT UNSIGNED NOT NULL DEFAULT 60,
    next_interval INT UNSIGNED NOT NULL DEFAULT 60,
    UNIQUE KEY profile_prefix (profile_id, destination_prefix),
    CONSTRAINT fee_profile FOREIGN KEY (profile_id) REFERENCES billing_profiles (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS billing_customers (
    customer_id BIGINT UNSIGNED NOT NULL PRIMARY KEY,
    profile_id BIGINT UNSIGNED NOT NULL,
    CONSTRAINT customer_profile FOREIGN KEY (profile_id) REFERENCES billing_profiles (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS cdrs (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    cdr_key CHAR(64) NOT NULL,
    status VARCHAR(16) NOT NULL,
    call_id VARCHAR(255) NOT NULL,
    from_tag VARCHAR(128) NOT NULL,
    to_tag VARCHAR(128) NOT NULL,
    caller VARCHAR(255) NOT NULL,
    callee VARCHAR(255) NOT NULL,
    caller_customer BIGINT UNSIGNED NULL,
    callee_customer BIGINT UNSIGNED NULL,
    start_ms BIGINT UNSIGNED NULL,
    answer_ms BIGINT UNSIGNED NULL,
    end_ms BIGINT UNSIGNED NULL,
    duration_ms BIGINT UNSIGNED NOT NULL,
    reason VARCHAR(32) NULL,
    node VARCHAR(64) NOT NULL,
    error VARCHAR(255) NULL,
    source VARCHAR(255) NOT NULL,
    rated BOOLEAN NOT NULL,
    profile_id BIGINT UNSIGNED NULL,
    prefix VARCHAR(32) NULL,
    billed_secs BIGINT UNSIGNED NULL,
    cost BIGINT UNSIGNED NULL,
    currency CHAR(3) NULL,
    unrated_reason VARCHAR(255) NULL,
    inserted_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY cdr_key (cdr_key),
    KEY call_id (call_id),
    KEY start_ms (start_ms)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
