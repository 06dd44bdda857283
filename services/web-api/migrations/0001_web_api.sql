-- Tables only the provisioning API uses, next to sip-proxy's customers and
-- subscribers (services/sip-proxy/migrations/0001_subscribers.sql, applied
-- first by web-api). Lives in the central MariaDB on the db pair.

-- SIP domains served by the platform; each is the digest realm of its
-- subscribers (sip-proxy: realm = domain).
CREATE TABLE IF NOT EXISTS domains (
    id   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(128)    NOT NULL,
    UNIQUE KEY domain_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- API administrators (HTTP Basic); password_hash is
-- $pbkdf2-sha256$i=<iterations>$<salt b64>$<hash b64>.
CREATE TABLE IF NOT EXISTS admins (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username      VARCHAR(64)     NOT NULL,
    password_hash VARCHAR(255)    NOT NULL,
    created_at    TIMESTAMP       NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE KEY admin_username (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
